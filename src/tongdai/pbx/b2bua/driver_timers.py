"""The core's timers as asyncio timer handles: one per (call, name), re-armed by a
new ``SetTimer`` of the same name; when one fires the core hears ``TimerFired``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tongdai.pbx.b2bua.actions import CancelTimer, SetTimer
from tongdai.pbx.b2bua.core import Input
from tongdai.pbx.b2bua.events import TimerFired


class CallTimers:
    def __init__(self, *, feed: Callable[[Input], None]) -> None:
        self.feed = feed
        self._handles: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def set(self, a: SetTimer) -> None:
        key = (a.call_id, a.name)
        if (old := self._handles.pop(key, None)) is not None:
            old.cancel()
        self._handles[key] = asyncio.get_running_loop().call_later(
            a.delay, self._fire, a.call_id, a.name)

    def cancel(self, a: CancelTimer) -> None:
        if (handle := self._handles.pop((a.call_id, a.name), None)) is not None:
            handle.cancel()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, call_id: str, name: str) -> None:
        self._handles.pop((call_id, name), None)
        self.feed(TimerFired(call_id=call_id, name=name))
