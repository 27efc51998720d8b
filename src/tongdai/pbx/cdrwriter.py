"""Group commit for CDRs: many finished calls, one durable transaction.

Every call's CDR must be committed before its ``call.ended`` event goes out. Under
load, one commit (one fsync) per call caps the call rate at the disk's fsync rate;
here calls that end close together share a transaction. ``write`` still returns only
once that transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging

from tongdai.background import stop_task
from tongdai.store.errors import StoreError
from tongdai.store.protocol import Store
from tongdai.store.records import Cdr

log = logging.getLogger("tongdai.cdr")


class CdrWriter:
    def __init__(self, *, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[Cdr, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
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
        """Return once ``cdr`` is committed; raise if it cannot be stored."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((cdr, fut))
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

    async def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
        if not batch:
            return
        try:
            await self.store.add_cdrs([c for c, _ in batch])
            self.batches += 1
            self.written += len(batch)
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
        for cdr, fut in batch:
            try:
                await self.store.add_cdr(cdr)
                self.written += 1
                if not fut.done():
                    fut.set_result(None)
            except Exception as exc:
                log.error("CDR of call %s not stored: %s", cdr.call_id, exc)
                if not fut.done():
                    fut.set_exception(exc)
