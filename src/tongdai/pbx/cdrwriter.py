"""Group commit for call records: many calls, one durable transaction.

Every call's CDR must be committed before its ``call.ended`` event goes out, and an
answered call's checkpoint before anything tells a peer the call has ended. Under
load, one commit (one fsync) per call caps the call rate at the disk's fsync rate;
here CDRs, checkpoints and the periodic refresh of checkpoints that are queued close
together share a transaction. Each method still returns only once its record has
committed.
"""

from __future__ import annotations

import asyncio
import logging

from tongdai.background import stop_task
from tongdai.store.errors import StoreError
from tongdai.store.protocol import CallRecords
from tongdai.store.records import CallCheckpoint, Cdr

log = logging.getLogger("tongdai.cdr")

# A CDR, a checkpoint to upsert, or (a float) "refresh this node's checkpoints to then".
_Op = Cdr | CallCheckpoint | float


class CdrWriter:
    def __init__(self, *, store: CallRecords, node: str = "", max_batch: int = 500) -> None:
        self.store = store
        self.node = node  # the server whose checkpoints ``touch`` refreshes
        self.max_batch = max_batch
        self._pending: list[tuple[_Op, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # CDRs
        self.batches = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cdr-writer")

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        await stop_task(self._task)
        self._task = None
        while self._pending:
            await self._flush()

    async def write(self, cdr: Cdr) -> None:
        """Return once ``cdr`` is committed (and its call's checkpoint deleted);
        raise if it cannot be stored."""
        await self._submit(cdr)

    async def checkpoint(self, cp: CallCheckpoint) -> None:
        """Return once ``cp`` is committed (inserted or replacing the call's last)."""
        await self._submit(cp)

    async def touch(self, now: float) -> None:
        """Return once this node's checkpoints of calls still up say ``now``."""
        await self._submit(now)

    async def _submit(self, op: _Op) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        self._wakeup.set()
        if self._task is None:  # not started (tests, shutdown): write at once
            await self._flush()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._flush()

    async def _commit(self, ops: list[_Op]) -> None:
        cps: dict[str, CallCheckpoint] = {}  # the newest per call
        cdrs: list[Cdr] = []
        touch: float | None = None
        for op in ops:
            if isinstance(op, Cdr):
                cdrs.append(op)
            elif isinstance(op, CallCheckpoint):
                cps[op.call_id] = op
            else:
                touch = op if touch is None else max(touch, op)
        # write_calls upserts before it stores CDRs, so a call that was checkpointed and
        # ended within one batch keeps only its CDR.
        await self.store.write_calls(
            checkpoints=list(cps.values()), cdrs=cdrs,
            touch=(self.node, touch) if touch is not None else None,
        )
        self.batches += 1
        self.written += len(cdrs)

    async def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
        if not batch:
            return
        try:
            await self._commit([op for op, _ in batch])
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            return
        except StoreError:
            pass  # one bad record must not sink the others: write them one by one
        except Exception as exc:  # the database is down: every caller hears of it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for op, fut in batch:
            try:
                await self._commit([op])
                if not fut.done():
                    fut.set_result(None)
            except Exception as exc:
                what = f"CDR of call {op.call_id}" if isinstance(op, Cdr) else (
                    f"checkpoint of call {op.call_id}" if isinstance(op, CallCheckpoint)
                    else "checkpoint refresh")
                log.error("%s not stored: %s", what, exc)
                if not fut.done():
                    fut.set_exception(exc)
