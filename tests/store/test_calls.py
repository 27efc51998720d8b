"""Registrations, CDRs and tokens on both backends."""

import math
import time
from dataclasses import replace

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.store.support import STORE_KEY, revoke_tokens, stored_cdr

from tongdai.pbx.credentials import digest_keys
from tongdai.store import Cdr, Conflict, Invalid, NotFound, Registration, TokenRec
from tongdai.store.cdrs import utc_day
from tongdai.store.engine import alembic_config
from tongdai.store.sql import SqlStore, open_store

REALM = "pbx.test"


async def _app_with(store: SqlStore, *users: str) -> str:
    app = await store.create_app("a")
    for u in users:
        await store.add_device(app.app_id, u, digest_keys(u, REALM, "pw"))
    return app.app_id


def _reg(sip_user: str, contact: str, expires_at: float, **kw: object) -> Registration:
    args: dict[str, object] = {
        "sip_user": sip_user, "contact": contact, "source_host": "192.0.2.10",
        "source_port": 5062, "transport": "udp", "expires_at": expires_at,
    } | kw
    return Registration(**args)  # type: ignore[arg-type]


def _cdr(app_id: str, call_id: str, started_at: float, **kw: object) -> Cdr:
    args: dict[str, object] = {
        "call_id": call_id, "app_id": app_id,
        "caller": {"number": "01693608879", "type": "realnumber"},
        "callee": {"number": "thutranhtkbee", "type": "user", "username": "thutran"},
        "klass": "trunking", "did_number": "02873019555", "direction": "to_ab",
        "status_detail": "SUCCESS", "duration_seconds": 50,
        "unix_timestamp": int(started_at), "billing_seconds": 43,
        "started_at": started_at, "ended_at": started_at + 50,
    } | kw
    return Cdr(**args)  # type: ignore[arg-type]


async def test_registrations_upsert_expire_purge(store: SqlStore) -> None:
    await _app_with(store, "alice", "bob")
    now = 1_800_000_000.0
    a1 = _reg("alice", "sip:alice@192.0.2.10:5062", now + 60, call_id="c1", cseq=1,
              user_agent="baresip")
    a2 = _reg("alice", "sip:alice@198.51.100.7:5060;transport=tcp", now + 10, transport="tcp")
    b1 = _reg("bob", "sip:bob@192.0.2.11", now + 3600)
    for r in (a1, a2, b1):
        await store.sync_registrations([r], [])
    assert await store.load_registrations(now) == [a1, a2, b1]

    # Refreshing the same (sip_user, contact) replaces the binding.
    a1b = replace(a1, expires_at=now + 120, cseq=2, source_port=6000)
    await store.sync_registrations([a1b], [])
    assert await store.load_registrations(now) == [a1b, a2, b1]

    # Expired bindings are not loaded, and purge removes exactly those.
    assert await store.load_registrations(now + 10) == [a1b, b1]  # expires_at == now is gone
    assert await store.purge_registrations(now + 10) == 1
    assert await store.purge_registrations(now + 10) == 0
    assert await store.load_registrations(0) == [a1b, b1]

    await store.sync_registrations([], [("alice", a1.contact)])
    await store.sync_registrations([], [("alice", a1.contact)])  # already gone: no error
    assert await store.load_registrations(now) == [b1]

    # A binding of a device removed meanwhile is skipped, the rest of the batch kept.
    await store.sync_registrations([_reg("ghost", "sip:ghost@x", now + 60), a1], [])
    assert await store.load_registrations(now) == [a1, b1]
    await store.sync_registrations([], [("alice", a1.contact)])
    # Removing a device takes its bindings with it.
    await store.remove_device("bob")
    assert await store.load_registrations(now) == []


async def test_sync_registrations_batches_upserts_and_deletes(store: SqlStore) -> None:
    await _app_with(store, "a", "b")
    now = time.time()
    batch = [_reg("a", f"sip:a@h:{p}", now + 60) for p in range(5000, 5050)]
    await store.sync_registrations(batch, [])
    assert len(await store.load_registrations(now)) == 50
    # refresh some, delete some, one for a device that no longer exists: it is skipped
    refreshed = [replace(r, expires_at=now + 600) for r in batch[:10]]
    gone = [("a", r.contact) for r in batch[10:20]]
    await store.sync_registrations([*refreshed, _reg("ghost", "sip:g@h", now + 60),
                                    _reg("b", "sip:b@h", now + 60)], gone)
    regs = await store.load_registrations(now)
    assert len(regs) == 41
    assert {r.sip_user for r in regs} == {"a", "b"}
    assert sum(1 for r in regs if r.expires_at > now + 300) == 10
    await store.sync_registrations([], [])


async def test_cdr_round_trip(store: SqlStore) -> None:
    app_id = await _app_with(store)
    cdr = _cdr(
        app_id, "call-1", 1_800_000_000.25, recording="call_recording_abc.mp3",
        answered_at=1_800_000_007.5, sip_code=200, hangup_by="callee",
        sip_users=("alice", "bob"),
    )
    await store.add_cdr(cdr)
    got = await stored_cdr(store, "call-1")
    assert got == cdr
    assert got is not None and got.to_api()["caller"] == {
        "number": "01693608879", "type": "realnumber"
    }
    assert await stored_cdr(store, "nope") is None
    with pytest.raises(Conflict):
        await store.add_cdr(cdr)
    with pytest.raises(NotFound):
        await store.add_cdr(_cdr("ghost-app", "call-2", 1.0))


async def test_cdr_is_committed_when_add_returns(db_url: str) -> None:
    writer = await open_store(db_url, key=STORE_KEY)
    reader = await open_store(db_url, key=STORE_KEY)
    try:
        app_id = await _app_with(writer)
        await writer.add_cdr(_cdr(app_id, "durable", 100.0))
        # Another connection pool sees it at once.
        assert await stored_cdr(reader, "durable") == _cdr(app_id, "durable", 100.0)
    finally:
        await writer.close()
        await reader.close()


async def test_list_cdrs_window_order_and_tenants(store: SqlStore) -> None:
    a, b = await _app_with(store), await _app_with(store)
    await store.add_cdr(_cdr(a, "old", 100.0))
    await store.add_cdr(_cdr(a, "mid", 200.0))
    await store.add_cdr(_cdr(a, "new", 300.0))
    await store.add_cdr(_cdr(a, "later", 400.0))
    await store.add_cdr(_cdr(b, "b-mid", 200.0))

    total, page = await store.list_cdrs(a, 100.0, 300.0, limit=10, offset=0)
    assert total == 3  # both bounds are inclusive
    assert [c.call_id for c in page] == ["new", "mid", "old"]
    total, page = await store.list_cdrs(a, 150.0, 250.0, limit=10, offset=0)
    assert (total, [c.call_id for c in page]) == (1, ["mid"])
    total, page = await store.list_cdrs(b, 0.0, 1000.0, limit=10, offset=0)
    assert (total, [c.call_id for c in page]) == (1, ["b-mid"])
    total, page = await store.list_cdrs(a, 0.0, 1000.0, limit=2, offset=3)
    assert (total, [c.call_id for c in page]) == (4, ["old"])
    assert await store.list_cdrs(a, 0.0, 1000.0, limit=2, offset=10) == (4, [])
    assert await store.list_cdrs("nope", 0.0, 1000.0, limit=2, offset=0) == (0, [])
    with pytest.raises(Invalid):
        await store.list_cdrs(a, 0.0, 1.0, limit=-1, offset=0)


async def test_cdr_paging_is_stable_with_equal_timestamps(store: SqlStore) -> None:
    app_id = await _app_with(store)
    # 23 calls in three bursts with identical start times, inserted out of order.
    ids = [f"c{i:02d}" for i in range(23)]
    order = ids[7:] + ids[:7]
    for cid in order:
        started = 1000.0 + 10 * (int(cid[1:]) % 3)
        await store.add_cdr(_cdr(app_id, cid, started))
    expected = sorted(ids, key=lambda c: (-(1000.0 + 10 * (int(c[1:]) % 3)), c))
    for limit in (1, 4, 5, 23, 100):
        seen: list[str] = []
        offset = 0
        while True:
            total, page = await store.list_cdrs(app_id, 0.0, 2000.0, limit=limit, offset=offset)
            assert total == 23
            if not page:
                break
            seen += [c.call_id for c in page]
            offset += limit
        assert seen == expected, limit  # no duplicates, no gaps, newest first, call_id ties
        # Asking again gives the same pages.
        again = await store.list_cdrs(app_id, 0.0, 2000.0, limit=limit, offset=0)
        assert [c.call_id for c in again[1]] == expected[:limit]


async def test_cdr_by_recording_is_per_app(store: SqlStore) -> None:
    a, b = await _app_with(store), await _app_with(store)
    await store.add_cdr(_cdr(a, "with", 10.0, recording="call_recording_x.mp3"))
    await store.add_cdr(_cdr(a, "without", 11.0))
    got = await store.cdr_by_recording(a, "call_recording_x.mp3")
    assert got is not None and got.call_id == "with"
    assert await store.cdr_by_recording(b, "call_recording_x.mp3") is None
    assert await store.cdr_by_recording(a, "call_recording_y.mp3") is None
    assert await store.cdr_by_recording(a, "") is None  # "no recording" is not a name


async def test_tokens(store: SqlStore) -> None:
    a = await _app_with(store, "alice", "bob")
    b = await _app_with(store, "carol")
    later = time.time() + 3600
    t1 = TokenRec(token_hash="h1", app_id=a, sip_user="alice", expires_at=later)
    t2 = TokenRec(token_hash="h2", app_id=a, sip_user="bob", expires_at=later)
    t3 = TokenRec(token_hash="h3", app_id=b, sip_user="carol", expires_at=later)
    for t in (t1, t2, t3):
        await store.add_token(t)
    assert await store.get_token("h1") == t1
    assert await store.get_token("nope") is None
    with pytest.raises(Conflict):
        await store.add_token(t1)

    await revoke_tokens(store, a, "alice")
    assert (await store.get_token("h1")) == replace(t1, revoked=True)
    assert (await store.get_token("h2")) == t2
    await revoke_tokens(store, a)
    assert (await store.get_token("h2")) == replace(t2, revoked=True)
    assert (await store.get_token("h3")) == t3  # another app's token

    # Rotating the app secret revokes the app's tokens.
    await store.rotate_secret(b)
    assert (await store.get_token("h3")) == replace(t3, revoked=True)


async def test_long_expired_tokens_are_dropped(store: SqlStore) -> None:
    a = await _app_with(store, "alice")
    now = time.time()
    stale = TokenRec(token_hash="stale", app_id=a, sip_user="alice", expires_at=now - 7200)
    recent = TokenRec(token_hash="recent", app_id=a, sip_user="alice", expires_at=now - 60)
    await store.add_token(stale)
    await store.add_token(recent)
    await store.add_token(TokenRec(token_hash="new", app_id=a, sip_user="alice",
                                   expires_at=now + 60))
    assert await store.get_token("stale") is None
    assert await store.get_token("recent") == recent  # expired, still reported as such


async def test_device_removal_drops_its_tokens(store: SqlStore) -> None:
    a = await _app_with(store, "alice")
    await store.add_token(TokenRec(token_hash="h", app_id=a, sip_user="alice",
                                   expires_at=time.time() + 60))
    await store.remove_device("alice")
    assert await store.get_token("h") is None
    with pytest.raises(Conflict):  # unknown device
        await store.add_token(TokenRec(token_hash="h", app_id=a, sip_user="alice",
                                       expires_at=time.time() + 60))


# Daily counts behind the histories total ---------------------------------------------

MIDNIGHT = 20_000 * 86400.0  # a UTC midnight (2024-10-04)
DAY = 86400.0
# Start times around midnights: exactly on them, a hair either side of them (the largest
# double below a midnight), early and late in a day (PostgreSQL's cast to integer rounds
# the day number up past noon), several days apart, before 1970 (SQLite's cast truncates
# towards zero).
TIMES = [
    MIDNIGHT - 1.0, math.nextafter(MIDNIGHT, 0.0), MIDNIGHT, MIDNIGHT, MIDNIGHT + 0.5,
    MIDNIGHT + 3600.0, MIDNIGHT + DAY - 0.001, math.nextafter(MIDNIGHT + DAY, 0.0),
    MIDNIGHT + DAY, MIDNIGHT + 2 * DAY + 100.0, MIDNIGHT + 2 * DAY + 100.0,
    math.nextafter(MIDNIGHT + 3 * DAY, 0.0), MIDNIGHT + 5 * DAY, MIDNIGHT + 5 * DAY + 86399.0,
    MIDNIGHT + 40 * DAY + 7.25, 12.5, -100.5,
]


def _brute(cdrs: list[Cdr], app_id: str, lo: float, hi: float) -> int:
    return sum(1 for c in cdrs if c.app_id == app_id and lo <= c.started_at <= hi)


def _windows() -> list[tuple[float, float]]:
    """Every pair of interesting bounds: same day, across midnight, many days, exactly
    on midnights, a hair off them, empty, reversed."""
    points = [-DAY, 0.0, MIDNIGHT - DAY, math.nextafter(MIDNIGHT, 0.0), MIDNIGHT,
              math.nextafter(MIDNIGHT, 1e18), MIDNIGHT + 10, MIDNIGHT + 20_000,
              MIDNIGHT + DAY, MIDNIGHT + 2 * DAY + 100.0, math.nextafter(MIDNIGHT + 3 * DAY, 0.0),
              MIDNIGHT + 5 * DAY, MIDNIGHT + 6 * DAY, MIDNIGHT + 50 * DAY]
    return [(lo, hi) for lo in points for hi in points]


async def _daily_rows(store: SqlStore) -> set[tuple[str, int, int]]:
    async with store._engine.connect() as conn:
        rows = await conn.execute(text("SELECT app_id, day, count FROM cdr_daily"))
        return {(r[0], int(r[1]), int(r[2])) for r in rows}


def _expected_daily(cdrs: list[Cdr]) -> set[tuple[str, int, int]]:
    per: dict[tuple[str, int], int] = {}
    for c in cdrs:
        key = (c.app_id, math.floor(c.started_at / DAY))
        per[key] = per.get(key, 0) + 1
    return {(a, d, n) for (a, d), n in per.items()}


async def _check_totals(
    store: SqlStore, cdrs: list[Cdr], apps: list[str], every: int = 1
) -> None:
    for app_id in apps:
        for lo, hi in _windows()[::every]:
            total, _ = await store.list_cdrs(app_id, lo, hi, limit=1, offset=0)
            assert total == _brute(cdrs, app_id, lo, hi), (app_id, lo, hi)


def test_utc_day_is_the_exact_floor() -> None:
    assert utc_day(MIDNIGHT) == 20_000
    assert utc_day(math.nextafter(MIDNIGHT, 0.0)) == 19_999
    assert utc_day(math.nextafter(MIDNIGHT + 3 * DAY, 0.0)) == 20_002
    assert (utc_day(0.0), utc_day(-0.5), utc_day(-DAY), utc_day(DAY - 1)) == (0, -1, -1, 0)


async def test_totals_match_a_brute_force_count(store: SqlStore) -> None:
    a, b = await _app_with(store), await _app_with(store)
    cdrs = [_cdr(a, f"a{i}", t) for i, t in enumerate(TIMES)]
    cdrs += [_cdr(b, f"b{i}", t) for i, t in enumerate(TIMES[::3])]
    for c in cdrs[:5]:
        await store.add_cdr(c)
    await store.write_calls(cdrs=cdrs[5:9])  # a batch with several CDRs on one day
    await store.write_calls(cdrs=cdrs[9:])  # a batch over many days and both apps
    await store.write_calls(cdrs=[])
    assert await _daily_rows(store) == _expected_daily(cdrs)
    await _check_totals(store, cdrs, [a, b])
    assert (await store.list_cdrs("no-such-app", 0.0, 1e10, limit=1, offset=0))[0] == 0
    # The page is unchanged: still the window's rows, newest first.
    total, page = await store.list_cdrs(a, MIDNIGHT, MIDNIGHT + DAY, limit=100, offset=0)
    assert total == len(page) == 7
    assert [c.started_at for c in page] == sorted(
        (t for t in TIMES if MIDNIGHT <= t <= MIDNIGHT + DAY), reverse=True)


async def test_a_rejected_cdr_leaves_the_counts_alone(store: SqlStore) -> None:
    a = await _app_with(store)
    cdrs = [_cdr(a, "c1", MIDNIGHT + 10), _cdr(a, "c2", MIDNIGHT + DAY + 10)]
    await store.write_calls(cdrs=cdrs)
    before = await _daily_rows(store)
    with pytest.raises(Conflict):
        await store.add_cdr(_cdr(a, "c1", MIDNIGHT + 20))
    with pytest.raises(Conflict):  # one duplicate sinks the batch, counts included
        await store.write_calls(cdrs=[_cdr(a, "c3", MIDNIGHT + 30), _cdr(a, "c2", MIDNIGHT + 40)])
    with pytest.raises(NotFound):
        await store.add_cdr(_cdr("ghost-app", "c4", MIDNIGHT + 50))
    assert await _daily_rows(store) == before
    assert await stored_cdr(store, "c3") is None
    assert (await store.list_cdrs(a, MIDNIGHT, MIDNIGHT + 3 * DAY, limit=1, offset=0))[0] == 2


async def test_deleting_an_app_deletes_its_counts(store: SqlStore) -> None:
    a, b = await _app_with(store), await _app_with(store)
    await store.write_calls(cdrs=[_cdr(a, "a1", MIDNIGHT), _cdr(b, "b1", MIDNIGHT)])
    await store.delete_app(a)
    assert await _daily_rows(store) == {(b, 20_000, 1)}


def _head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_migration_backfills_the_counts(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        a, b = await _app_with(store), await _app_with(store)
        cdrs = [_cdr(a, f"a{i}", t) for i, t in enumerate(TIMES)]
        cdrs += [_cdr(b, f"b{i}", t) for i, t in enumerate(TIMES[1::2])]
        await store.write_calls(cdrs=cdrs)
        kept = await _daily_rows(store)

        def down_and_up(conn: Connection) -> None:
            command.downgrade(alembic_config(conn), "0002")
            # Through 0003 to the newest: the store reads CDRs with today's columns.
            command.upgrade(alembic_config(conn), "head")

        async with store._engine.begin() as conn:
            await conn.run_sync(down_and_up)
        assert await store.schema_revision() == _head_revision()
        # The SQL backfill computes the same days as the store, to the last double.
        assert await _daily_rows(store) == kept == _expected_daily(cdrs)
        await _check_totals(store, cdrs, [a, b], every=7)
    finally:
        await store.close()
