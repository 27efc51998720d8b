"""What the driver stores for the calls: their CDRs, retried so that a database that
blinks loses no record; an answered call's checkpoint when the core asks (the core
hears ``Stored`` after each); and, in the background, the answered calls' checkpoints
moved forward, so a crash takes at most ``checkpoint_interval`` off a call's duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

from tongdai import logs
from tongdai.media.engine import MediaSession
from tongdai.pbx.b2bua.actions import Checkpoint, WriteCdr
from tongdai.pbx.b2bua.core import B2bua, Input
from tongdai.pbx.b2bua.events import Stored
from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.store.records import Cdr

log = logging.getLogger("tongdai.calls")

# How often a failed CDR write is tried, and the pause before each retry (seconds,
# growing): a database that blinks loses no record.
CDR_TRIES = 5
CDR_BACKOFF = 0.2

Purpose = Literal["answer", "end", "cdr"]


class CallStorage:
    def __init__(
        self, *, cdrs: CdrWriter, core: B2bua, sessions: Mapping[str, MediaSession],
        feed: Callable[[Input], None], spawn: Callable[[Coroutine[Any, Any, Any]], None],
        wall_clock: Callable[[], float], checkpoint_interval: float,
    ) -> None:
        self.cdrs = cdrs
        self.core = core
        self.sessions = sessions  # the calls' media sessions (``CallMedia.sessions``)
        self.feed = feed
        self.spawn = spawn
        self.wall = wall_clock
        self.checkpoint_interval = checkpoint_interval

    def write_cdr(self, a: WriteCdr) -> None:
        self.spawn(self._write_cdr(a.cdr, a.purpose))

    def checkpoint(self, a: Checkpoint) -> None:
        session = self.sessions.get(a.checkpoint.call_id)
        cp = dataclasses.replace(a.checkpoint, node=self.cdrs.node, checkpoint_at=self.wall(),
                                 recording=session.recording if session else "")
        self.spawn(self._checkpoint(cp.call_id, self.cdrs.checkpoint(cp), a.purpose))

    async def _write_cdr(self, cdr: Cdr, purpose: Purpose) -> None:
        ok = False
        for attempt in range(CDR_TRIES):
            try:
                await self.cdrs.write(cdr)
                ok = True
                break
            except Exception:
                log.exception("call %s: storing the CDR failed (try %d)", cdr.call_id, attempt)
                await asyncio.sleep(CDR_BACKOFF * (attempt + 1))
        self.feed(Stored(call_id=cdr.call_id, purpose=purpose, ok=ok))

    async def _checkpoint(self, call_id: str, write: Coroutine[Any, Any, None],
                          purpose: Purpose) -> None:
        ok = True
        try:
            await write
        except Exception as exc:
            ok = False
            logs.event(log, "call.store_failed", level=logging.ERROR, call_id=call_id,
                       what="checkpoint", error=str(exc))
        self.feed(Stored(call_id=call_id, purpose=purpose, ok=ok))

    async def refresh(self) -> None:
        """Move this server's answered calls' checkpoints forward (one UPDATE for all)."""
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            if not self.core.answered_calls():
                continue
            try:
                await self.cdrs.touch(self.wall())
            except Exception as exc:
                logs.event(log, "call.checkpoint_failed", level=logging.WARNING,
                           error=str(exc))
