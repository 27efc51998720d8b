"""Group commit of CDRs against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.store.support import stored_cdr

from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.store import Cdr
from tongdai.store.errors import Conflict
from tongdai.store.records import CallCheckpoint
from tongdai.store.sql import SqlStore


def _cdr(app_id: str, call_id: str) -> Cdr:
    now = time.time()
    return Cdr(
        call_id=call_id, app_id=app_id, caller={"number": "101", "type": "user",
                                                "username": "a"},
        callee={"number": "0901234567", "type": "realnumber"}, klass="trunking",
        did_number=None, direction="from_ab", status_detail="SUCCESS", duration_seconds=5,
        unix_timestamp=int(now), billing_seconds=3, started_at=now, ended_at=now + 5,
    )


async def test_concurrent_calls_share_a_commit(store: SqlStore) -> None:
    app = await store.create_app("g")
    writer = CdrWriter(store=store)
    await writer.start()
    try:
        await asyncio.gather(*(writer.write(_cdr(app.app_id, f"c{i}")) for i in range(50)))
    finally:
        await writer.stop()
    total, _ = await store.list_cdrs(app.app_id, 0, time.time() + 60, limit=1, offset=0)
    assert total == 50
    assert writer.written == 50
    assert writer.batches < 50  # they were grouped


async def test_a_bad_record_does_not_sink_the_batch(store: SqlStore) -> None:
    app = await store.create_app("g")
    await store.add_cdr(_cdr(app.app_id, "dup"))
    writer = CdrWriter(store=store)
    await writer.start()
    try:
        results = await asyncio.gather(
            writer.write(_cdr(app.app_id, "ok1")), writer.write(_cdr(app.app_id, "dup")),
            writer.write(_cdr(app.app_id, "ok2")), return_exceptions=True,
        )
    finally:
        await writer.stop()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Conflict)
    assert await stored_cdr(store, "ok1") is not None and await stored_cdr(store, "ok2") is not None


async def test_write_returns_only_when_committed(store: SqlStore) -> None:
    app = await store.create_app("g")
    writer = CdrWriter(store=store)  # not started: writes at once
    await writer.write(_cdr(app.app_id, "now"))
    assert await stored_cdr(store, "now") is not None
    with pytest.raises(Conflict):
        await writer.write(_cdr(app.app_id, "now"))


def _cp(app_id: str, call_id: str, **kw: object) -> CallCheckpoint:
    now = time.time()
    args: dict[str, object] = {
        "call_id": call_id, "app_id": app_id, "node": "n1", "caller": {"number": "101"},
        "callee": {"number": "102"}, "klass": "one_one", "did_number": None,
        "direction": "from_ab", "started_at": now, "answered_at": now, "checkpoint_at": now,
    } | kw
    return CallCheckpoint(**args)  # type: ignore[arg-type]


async def test_checkpoints_refreshes_and_cdrs_share_commits(store: SqlStore) -> None:
    app = await store.create_app("g")
    writer = CdrWriter(store=store, node="n1")
    await writer.start()
    try:
        await asyncio.gather(*(writer.checkpoint(_cp(app.app_id, f"c{i}")) for i in range(20)))
        later = time.time() + 30
        # The refresh, the end of c0 (its checkpoint then its CDR) and a new call at once.
        await asyncio.gather(
            writer.touch(later), writer.write(_cdr(app.app_id, "c0")),
            writer.checkpoint(_cp(app.app_id, "c1", ended_at=later, hangup_by="callee")),
            writer.checkpoint(_cp(app.app_id, "new")), writer.write(_cdr(app.app_id, "new")),
        )
    finally:
        await writer.stop()
    assert writer.batches < 25
    cps = {c.call_id: c for c in await store.list_checkpoints(node="n1")}
    assert "c0" not in cps and "new" not in cps  # their CDRs took them away
    assert len(cps) == 19 and all(c.checkpoint_at == later for n, c in cps.items() if n != "c1")
    assert cps["c1"].ended_at == later and cps["c1"].hangup_by == "callee"
    assert await stored_cdr(store, "new") is not None
