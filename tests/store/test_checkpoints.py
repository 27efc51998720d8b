"""Checkpoints of calls in progress, on both backends."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tongdai.store import Cdr, Conflict
from tongdai.store.records import CallCheckpoint
from tongdai.store.sql import SqlStore

T0 = 1_800_000_000.0


def _cp(app_id: str, call_id: str, node: str = "n1", **kw: object) -> CallCheckpoint:
    args: dict[str, object] = {
        "call_id": call_id, "app_id": app_id, "node": node,
        "caller": {"number": "101", "type": "user", "username": "alice"},
        "callee": {"number": "0901234567", "type": "realnumber"},
        "klass": "trunking", "did_number": None, "direction": "from_ab",
        "started_at": T0, "answered_at": T0 + 3, "checkpoint_at": T0 + 3,
        "recording": "call_recording_abc.mp3", "sip_users": ("alice",),
    } | kw
    return CallCheckpoint(**args)  # type: ignore[arg-type]


def _cdr(app_id: str, call_id: str) -> Cdr:
    return Cdr(
        call_id=call_id, app_id=app_id, caller={"number": "101"}, callee={"number": "102"},
        klass="one_one", did_number=None, direction="from_ab", status_detail="SUCCESS",
        duration_seconds=10, unix_timestamp=int(T0), billing_seconds=7, started_at=T0,
        answered_at=T0 + 3, ended_at=T0 + 10,
    )


async def test_checkpoint_lifecycle(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    a, b, other = _cp(app, "a"), _cp(app, "b"), _cp(app, "o", node="n2")
    await store.write_calls(checkpoints=[a, b, other])
    assert await store.list_checkpoints(node="n1") == [a, b]

    # The refresh moves the node's calls still up, not ended ones, not other nodes'.
    ended = replace(b, ended_at=T0 + 8, hangup_by="callee")
    await store.write_calls(checkpoints=[ended])
    await store.write_calls(touch=("n1", T0 + 20))
    assert await store.list_checkpoints(node="n1") == [replace(a, checkpoint_at=T0 + 20), ended]
    assert await store.list_checkpoints(node="n2") == [other]

    # Storing a call's CDR deletes its checkpoint, in the same transaction.
    await store.write_calls(cdrs=[_cdr(app, "a")])
    await store.add_cdr(_cdr(app, "b"))
    assert await store.list_checkpoints(node="n1") == []
    await store.delete_checkpoint("o")
    await store.delete_checkpoint("o")  # already gone: no error
    assert await store.list_checkpoints(node="n2") == []


async def test_stale_checkpoints_of_other_nodes(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    mine = _cp(app, "m", checkpoint_at=T0 + 100)
    fresh = _cp(app, "f", node="n2", checkpoint_at=T0 + 100)
    stale = _cp(app, "s", node="n3", started_at=T0 - 10, checkpoint_at=T0)
    for cp in (mine, fresh, stale):
        await store.write_calls(checkpoints=[cp])
    assert await store.list_checkpoints(node="n1", stale_before=T0 + 50) == [stale, mine]


async def test_all_or_none(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    await store.add_cdr(_cdr(app, "dup"))
    with pytest.raises(Conflict):
        await store.write_calls(checkpoints=[_cp(app, "x")], cdrs=[_cdr(app, "dup")])
    assert await store.list_checkpoints(node="n1") == []
    with pytest.raises(Conflict):
        await store.write_calls(checkpoints=[_cp("no-such-app", "y")])


async def test_deleting_the_app_deletes_its_checkpoints(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    await store.write_calls(checkpoints=[_cp(app, "c")])
    await store.delete_app(app)
    assert await store.list_checkpoints(node="n1") == []
