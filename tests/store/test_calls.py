"""Registrations, CDRs and tokens on both backends."""

import time
from dataclasses import replace

import pytest

from tongdai.store import Cdr, Conflict, Invalid, NotFound, Registration, TokenRec
from tongdai.store.sql import SqlStore, open_store

REALM = "pbx.test"


async def _app_with(store: SqlStore, *users: str) -> str:
    app = await store.create_app("a")
    for u in users:
        await store.add_device(app.app_id, u, "pw", realm=REALM)
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
        await store.save_registration(r)
    assert await store.load_registrations(now) == [a1, a2, b1]

    # Refreshing the same (sip_user, contact) replaces the binding.
    a1b = replace(a1, expires_at=now + 120, cseq=2, source_port=6000)
    await store.save_registration(a1b)
    assert await store.load_registrations(now) == [a1b, a2, b1]

    # Expired bindings are not loaded, and purge removes exactly those.
    assert await store.load_registrations(now + 10) == [a1b, b1]  # expires_at == now is gone
    assert await store.purge_registrations(now + 10) == 1
    assert await store.purge_registrations(now + 10) == 0
    assert await store.load_registrations(0) == [a1b, b1]

    await store.delete_registration("alice", a1.contact)
    await store.delete_registration("alice", a1.contact)  # already gone: no error
    assert await store.load_registrations(now) == [b1]

    with pytest.raises(NotFound):
        await store.save_registration(_reg("ghost", "sip:ghost@x", now + 60))
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
    got = await store.get_cdr("call-1")
    assert got == cdr
    assert got is not None and got.to_api()["caller"] == {
        "number": "01693608879", "type": "realnumber"
    }
    assert await store.get_cdr("nope") is None
    with pytest.raises(Conflict):
        await store.add_cdr(cdr)
    with pytest.raises(NotFound):
        await store.add_cdr(_cdr("ghost-app", "call-2", 1.0))


async def test_cdr_is_committed_when_add_returns(db_url: str) -> None:
    writer, reader = await open_store(db_url), await open_store(db_url)
    try:
        app_id = await _app_with(writer)
        await writer.add_cdr(_cdr(app_id, "durable", 100.0))
        # Another connection pool sees it at once.
        assert await reader.get_cdr("durable") == _cdr(app_id, "durable", 100.0)
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

    await store.revoke_tokens(a, "alice")
    assert (await store.get_token("h1")) == replace(t1, revoked=True)
    assert (await store.get_token("h2")) == t2
    await store.revoke_tokens(a)
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
