"""Group commit (store/group_commit.py) on both backends: writers that queue together
share a transaction, each still returns only once its rows are committed, and one
writer's failure rolls back that writer alone."""

import asyncio
import time

import pytest
from tests.store.support import STORE_KEY, stored_cdr

from tongdai.store import Cdr, Conflict
from tongdai.store.sql import SqlStore, open_store


def _cdr(app_id: str, call_id: str) -> Cdr:
    now = time.time()
    return Cdr(
        call_id=call_id, app_id=app_id, caller={"number": "0901", "type": "realnumber"},
        callee={"number": "0902", "type": "realnumber"}, klass="trunking", did_number="",
        direction="from_ab", status_detail="SUCCESS", duration_seconds=3,
        unix_timestamp=int(now), billing_seconds=2, started_at=now, ended_at=now + 3)


def _group(store: SqlStore) -> tuple[int, int]:
    g = store._group
    assert g is not None
    return g.transactions, g.writers


async def test_writers_that_queue_together_share_one_commit(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    await store.write_calls(cdrs=[_cdr(app, "first")])
    tx0, w0 = _group(store)
    await asyncio.gather(*(store.write_calls(cdrs=[_cdr(app, f"c{i}")]) for i in range(20)))
    tx, writers = _group(store)
    assert writers - w0 == 20
    # The first writer commits alone; the other 19 queued behind it meanwhile.
    assert tx - tx0 <= 3
    for i in range(20):
        assert await stored_cdr(store, f"c{i}") is not None


async def test_a_failing_writer_rolls_back_alone(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    await store.write_calls(cdrs=[_cdr(app, "dup")])
    results = await asyncio.gather(
        store.write_calls(cdrs=[_cdr(app, "before")]),
        # A duplicate CDR: this writer's batch fails, both of its CDRs with it.
        store.write_calls(cdrs=[_cdr(app, "sunk"), _cdr(app, "dup")]),
        store.write_calls(cdrs=[_cdr(app, "after")]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Conflict)
    assert await stored_cdr(store, "before") is not None
    assert await stored_cdr(store, "after") is not None
    assert await stored_cdr(store, "sunk") is None


async def test_committed_when_the_writer_returns(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    app = (await store.create_app("a")).app_id
    await asyncio.gather(*(store.write_calls(cdrs=[_cdr(app, f"d{i}")]) for i in range(5)))
    other = await open_store(db_url, key=STORE_KEY)  # another connection pool sees them
    try:
        for i in range(5):
            assert await stored_cdr(other, f"d{i}") is not None
    finally:
        await other.close()
        await store.close()


async def test_a_cancelled_waiter_does_not_stall_the_others(store: SqlStore) -> None:
    app = (await store.create_app("a")).app_id
    first = asyncio.ensure_future(store.write_calls(cdrs=[_cdr(app, "x1")]))
    doomed = asyncio.ensure_future(store.write_calls(cdrs=[_cdr(app, "x2")]))
    last = asyncio.ensure_future(store.write_calls(cdrs=[_cdr(app, "x3")]))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.wait_for(asyncio.gather(first, last), 10)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await stored_cdr(store, "x3") is not None


async def test_a_writer_alone_that_fails_leaves_nothing(store: SqlStore) -> None:
    # Alone in its transaction a writer has no SAVEPOINT: its error must roll back the
    # whole transaction, the statements that ran before the failing one included.
    app = (await store.create_app("a")).app_id
    await store.write_calls(cdrs=[_cdr(app, "dup")])
    tx0, w0 = _group(store)
    with pytest.raises(Conflict):
        await store.write_calls(cdrs=[_cdr(app, "lone"), _cdr(app, "dup")])
    assert _group(store) == (tx0, w0)
    assert await stored_cdr(store, "lone") is None
    await store.write_calls(cdrs=[_cdr(app, "next")])  # the writer goes on after it
    assert await stored_cdr(store, "next") is not None
