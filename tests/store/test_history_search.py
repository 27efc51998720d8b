"""History search on both backends: filters, number forms, positions, batches."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.store.support import STORE_KEY

from tongdai.numbers import normalize
from tongdai.store import Cdr, CdrPosition, CdrQuery
from tongdai.store.engine import alembic_config
from tongdai.store.history import _count, _page, _params, _shape
from tongdai.store.sql import SqlStore, open_store

REVISION = "0008"  # the migration that adds the number columns
T0 = 1_790_000_000.0


def _cdr(app_id: str, call_id: str, started_at: float, **kw: Any) -> Cdr:
    fields: dict[str, Any] = {
        "caller": {"number": "101", "type": "user", "username": "alice"},
        "callee": {"number": "0912345678", "type": "realnumber"},
        "klass": "trunking", "did_number": None, "direction": "from_ab",
        "status_detail": "SUCCESS", "duration_seconds": 5, "unix_timestamp": int(started_at),
        "billing_seconds": 3, "started_at": started_at, "ended_at": started_at + 5,
        "sip_users": ("alice",),
    } | kw
    return Cdr(call_id=call_id, app_id=app_id, **fields)


def _q(app_id: str, **kw: Any) -> CdrQuery:
    return CdrQuery(app_id=app_id, start_ts=T0 - 86400, end_ts=T0 + 86400, **kw)


async def _ids(store: SqlStore, q: CdrQuery) -> tuple[int, list[str]]:
    total, rows = await store.search_cdrs(q, limit=100)
    return total, [c.call_id for c in rows]


def _realnumber(n: str) -> dict[str, str]:
    return {"number": n, "type": "realnumber"}


async def test_a_number_finds_its_calls_in_every_written_form(store: SqlStore) -> None:
    a = (await store.create_app("a")).app_id
    b = (await store.create_app("b")).app_id
    # The same Viettel mobile as the carrier, a CRM and a person wrote it, before
    # and after the 2018 renumbering (0169 -> 039).
    forms = ["01693608879", "0393608879", "+84393608879", "84393608879", "+84 169 360 8879",
             "393608879"]
    cdrs = [_cdr(a, f"in{i}", T0 + i, caller=_realnumber(f), direction="to_ab")
            for i, f in enumerate(forms)]
    cdrs.append(_cdr(a, "out", T0 + 50, callee=_realnumber("0393608879")))
    cdrs.append(_cdr(a, "other", T0 + 60, callee=_realnumber("0393608870")))
    cdrs.append(_cdr(b, "tenant-b", T0 + 70, callee=_realnumber("0393608879")))
    # Ha Noi landline before and after the 2017 area-code change (04 -> 024).
    cdrs.append(_cdr(a, "hn-old", T0 + 80, callee=_realnumber("0438251234")))
    cdrs.append(_cdr(a, "hn-new", T0 + 81, callee=_realnumber("+842438251234")))
    await store.write_calls(cdrs=cdrs[:3])
    for c in cdrs[3:]:
        await store.add_cdr(c)  # both write paths fill the search columns

    expected = ["out", "in5", "in4", "in3", "in2", "in1", "in0"]
    for written in ("01693608879", "0393608879", "+84 39 360 8879"):
        assert await _ids(store, _q(a, number=normalize(written))) == (7, expected)
    assert await _ids(store, _q(b, number="0393608879")) == (1, ["tenant-b"])
    assert await _ids(store, _q(a, number=normalize("(04) 3825 1234"))) == (
        2, ["hn-new", "hn-old"])
    assert await _ids(store, _q(a, number="0999999999")) == (0, [])
    # Extensions are numbers too.
    assert (await _ids(store, _q(a, number="101")))[0] == 4


async def test_filters_combine(store: SqlStore) -> None:
    a = (await store.create_app("a")).app_id
    await store.write_calls(cdrs=[
        _cdr(a, "c1", T0 + 1, status_detail="BUSY", sip_users=("alice", "anna")),
        _cdr(a, "c2", T0 + 2, direction="to_ab", did_number="02873019555",
             sip_users=("anna",)),
        _cdr(a, "c3", T0 + 3, status_detail="BUSY", direction="to_ab",
             did_number="02873019555", sip_users=("al_ce",)),
        _cdr(a, "c4", T0 + 4, sip_users=("alice",)),
    ])
    assert await _ids(store, _q(a, status_detail="BUSY")) == (2, ["c3", "c1"])
    assert await _ids(store, _q(a, direction="to_ab")) == (2, ["c3", "c2"])
    assert await _ids(store, _q(a, did="02873019555", status_detail="BUSY")) == (1, ["c3"])
    assert await _ids(store, _q(a, device="alice")) == (2, ["c4", "c1"])
    # "_" and "%" are names, not wildcards; a name is matched whole.
    assert await _ids(store, _q(a, device="al_ce")) == (1, ["c3"])
    assert await _ids(store, _q(a, device="ali")) == (0, [])
    assert await _ids(store, _q(a, device="%")) == (0, [])
    # Unfiltered totals still come from the daily counts and agree.
    assert await _ids(store, _q(a)) == (4, ["c4", "c3", "c2", "c1"])


async def test_a_position_walk_sees_every_record_once(store: SqlStore) -> None:
    a = (await store.create_app("a")).app_id
    # Many equal start times: the walk must order ties by call_id, never skip them.
    cdrs = [_cdr(a, f"c{i:04d}", T0 + (i // 7), callee=_realnumber("0912345678"))
            for i in range(250)]
    await store.write_calls(cdrs=cdrs)
    expected = [c.call_id for c in sorted(cdrs, key=lambda c: (-c.started_at, c.call_id))]
    for q in (_q(a), _q(a, number="0912345678")):
        seen: list[str] = []
        after: CdrPosition | None = None
        while True:
            total, rows = await store.search_cdrs(q, limit=9, after=after)
            assert total == 250
            if not rows:
                break
            seen += [c.call_id for c in rows]
            after = CdrPosition.of(rows[-1])
        assert seen == expected
    batches = [b async for b in store.iter_cdrs(_q(a), batch=100)]
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [c.call_id for b in batches for c in b] == expected


async def test_migration_fills_the_numbers_of_existing_cdrs(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        a = (await store.create_app("a")).app_id
        await store.write_calls(cdrs=[
            _cdr(a, "old", T0, caller=_realnumber("01693608879")),
            _cdr(a, "anon", T0 + 1, caller=_realnumber("anonymous")),
        ])

        def down_and_up(conn: Connection) -> None:
            cfg = alembic_config(conn)
            command.downgrade(cfg, ScriptDirectory.from_config(cfg).get_revision(REVISION)
                              .down_revision)
            conn.execute(text("INSERT INTO cdrs (call_id, app_id, caller, callee, klass, "
                              "direction, status_detail, duration_seconds, unix_timestamp, "
                              "billing_seconds, recording, started_at, ended_at, sip_code, "
                              "hangup_by, sip_users) VALUES ('raw', :a, "
                              "'{\"number\": \"+84 39 360 8879\"}', '{\"number\": \"101\"}', "
                              "'trunking', 'to_ab', 'SUCCESS', 1, 1, 1, '', :t, :t, 0, '', "
                              "'[]')"), {"a": a, "t": T0 + 2})
            command.upgrade(alembic_config(conn), "head")

        async with store._engine.begin() as conn:
            await conn.run_sync(down_and_up)
        assert await _ids(store, _q(a, number="0393608879")) == (2, ["raw", "old"])
        assert await _ids(store, _q(a, number="0912345678")) == (2, ["anon", "old"])
        assert await _ids(store, _q(a, number="101")) == (1, ["raw"])
    finally:
        await store.close()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_a_number_search_walks_the_number_indexes_without_statistics(
    store: SqlStore,
) -> None:
    """Nobody runs ANALYZE on a tongdai database: the plan must not depend on it."""
    q = CdrQuery(app_id="a", start_ts=T0, end_ts=T0 + 31 * 86400, number="0393608879")
    plans = []
    async with store._engine.connect() as conn:
        assert not (await conn.execute(text(
            "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"))).all()
        for stmt, after in ((_page(_shape(q, None)), None),
                            (_page(_shape(q, CdrPosition(T0 + 9, "c"))), CdrPosition(T0 + 9, "c")),
                            (_count(_shape(q, None)), None)):
            c = stmt.compile(dialect=conn.dialect)
            values = {**c.params, **_params(q, after), "lim": 20, "off": 0, "upto": 20}
            params = tuple(values[k] for k in c.positiontup or ())
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(c), params)
            plans.append(" | ".join(str(r[-1]) for r in rows))
    for plan in plans:
        assert "ix_cdrs_app_caller_number" in plan and "ix_cdrs_app_callee_number" in plan, plan
        assert "ix_cdrs_app_started" not in plan, plan


async def test_a_call_from_a_number_to_itself_counts_once(store: SqlStore) -> None:
    a = (await store.create_app("a")).app_id
    n = "0393608879"
    await store.write_calls(cdrs=[
        _cdr(a, "self", T0 + 3, caller=_realnumber("+84393608879"), callee=_realnumber(n)),
        _cdr(a, "from", T0 + 2, caller=_realnumber(n), direction="to_ab"),
        _cdr(a, "to", T0 + 1, callee=_realnumber("01693608879")),
        _cdr(a, "else", T0, callee=_realnumber("0393608870")),
    ])
    assert await _ids(store, _q(a, number=n)) == (3, ["self", "from", "to"])
    # With another filter the total comes from the branches' union: the same answer.
    assert await _ids(store, _q(a, number=n, status_detail="SUCCESS")) == (
        3, ["self", "from", "to"])


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_the_total_of_a_number_search_reads_the_number_indexes_only(
    store: SqlStore,
) -> None:
    q = CdrQuery(app_id="a", start_ts=T0, end_ts=T0 + 31 * 86400, number="0393608879")
    c = _count(_shape(q, None)).compile(dialect=store._engine.dialect)
    values = _params(q, None)
    async with store._engine.connect() as conn:
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(c),
                                          tuple(values[k] for k in c.positiontup or ()))
        searches = [str(r[-1]) for r in rows if str(r[-1]).startswith("SEARCH")]
    assert searches and all("USING COVERING INDEX ix_cdrs_app_c" in s for s in searches), searches
