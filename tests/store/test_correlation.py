"""A click-to-call's external_id and metadata in the store, on both backends: kept with
its CDR (every write path), with its checkpoint (so a crash keeps them in the
recovered CDR), and found by external_id through the partial index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tongdai.pbx.recovery import recover
from tongdai.store import Cdr, CdrQuery
from tongdai.store.history import _page, _params, _shape
from tongdai.store.records import CallCheckpoint
from tongdai.store.sql import SqlStore

T0 = 1_800_000_000.0
META: dict[str, Any] = {"ticket": "T-1042", "nested": {"vip": True, "n": [1, 2.5]},
                        "ghi chú": "gọi lại"}


def _cdr(app_id: str, call_id: str, at: float, **kw: Any) -> Cdr:
    return Cdr(
        call_id=call_id, app_id=app_id, caller={"number": "101"},
        callee={"number": "0901234567"}, klass="trunking", did_number=None,
        direction="from_ab", status_detail="SUCCESS", duration_seconds=10,
        unix_timestamp=int(at), billing_seconds=7, started_at=at, answered_at=at + 3,
        ended_at=at + 10, **kw)


def _q(app_id: str, **kw: Any) -> CdrQuery:
    return CdrQuery(app_id=app_id, start_ts=T0 - 60, end_ts=T0 + 3600, **kw)


async def test_every_cdr_write_keeps_the_correlation(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    await store.add_cdr(_cdr(app, "orm", T0, external_id="crm-1", metadata=META))
    await store.write_calls(cdrs=[_cdr(app, "core", T0 + 1, external_id="crm-2"),
                                  _cdr(app, "none", T0 + 2)])
    _, listed = await store.list_cdrs(app, T0 - 60, T0 + 60, limit=10, offset=0)
    _, searched = await store.search_cdrs(_q(app, direction="from_ab"), limit=10)
    for rows in (listed, searched):
        got = {c.call_id: (c.external_id, c.metadata) for c in rows}
        assert got == {"orm": ("crm-1", META), "core": ("crm-2", None), "none": (None, None)}


async def test_search_by_external_id_is_per_app(store: SqlStore) -> None:
    a = (await store.create_app("a")).app_id
    b = (await store.create_app("b")).app_id
    await store.write_calls(cdrs=[
        _cdr(a, "a1", T0, external_id="crm-1"), _cdr(a, "a2", T0 + 5, external_id="crm-1"),
        _cdr(a, "a3", T0 + 9, external_id="crm-2"), _cdr(a, "a4", T0 + 9),
        _cdr(b, "b1", T0 + 1, external_id="crm-1"),
    ])
    total, rows = await store.search_cdrs(_q(a, external_id="crm-1"), limit=10)
    assert (total, [c.call_id for c in rows]) == (2, ["a2", "a1"])
    total, rows = await store.search_cdrs(_q(a, external_id="nope"), limit=10)
    assert (total, rows) == (0, [])
    batches = [b async for b in store.iter_cdrs(_q(b, external_id="crm-1"))]
    assert [[c.call_id for c in batch] for batch in batches] == [["b1"]]


async def test_a_checkpoint_keeps_it_through_a_crash(store: SqlStore, tmp_path: Path) -> None:
    app = (await store.create_app("a")).app_id
    cp = CallCheckpoint(
        call_id="c1", app_id=app, node="n1", caller={"number": "101"},
        callee={"number": "0901234567"}, klass="trunking", did_number=None,
        direction="from_ab", started_at=T0, answered_at=T0 + 3, checkpoint_at=T0 + 20,
        sip_users=("alice",), external_id="crm-7", metadata=META)
    await store.write_calls(checkpoints=[cp])
    assert await store.list_checkpoints(node="n1") == [cp]
    done = await recover(store=store, node="n1", recordings_dir=tmp_path, now=T0 + 30)
    assert [(c.call_id, c.external_id, c.metadata) for c in done.cdrs] == [
        ("c1", "crm-7", META)]
    _, rows = await store.search_cdrs(_q(app, external_id="crm-7"), limit=10)
    assert [(c.call_id, c.billing_seconds, c.metadata) for c in rows] == [("c1", 17, META)]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_the_search_uses_the_partial_index_without_statistics(store: SqlStore) -> None:
    q = CdrQuery(app_id="a", start_ts=T0, end_ts=T0 + 31 * 86400, external_id="crm-1")
    async with store._engine.connect() as conn:
        c = _page(_shape(q, None)).compile(dialect=conn.dialect)
        values = {**_params(q, None), "lim": 20, "off": 0}
        params = tuple(values[k] for k in c.positiontup or ())
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(c), params)
        plan = " | ".join(str(r[-1]) for r in rows)
        # The CDRs without an external_id are not in the index at all.
        assert (await conn.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_cdrs_app_external_id'"
        ))).scalar_one().endswith("WHERE external_id IS NOT NULL")
    assert "ix_cdrs_app_external_id" in plan, plan
