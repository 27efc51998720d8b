"""Who is in a call and when devices came and went, as the call and device events on
the bus tell it.

The call service publishes ``call.ringing`` / ``call.answered`` / ``call.ended`` naming
the devices of each call, and the location service ``device.registered`` /
``device.unregistered``. ``LiveCalls`` follows them (one bus subscription, no access
to the call service), so with a shared bus (``TONGDAI_BUS_URL``) it sees the calls of
every tongdai process. What it cannot know is a call that began before it
subscribed; a call whose end it never heard of (a process killed mid-call) is
forgotten after ``stale_after`` seconds, the longest a call may last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tongdai import logs
from tongdai.bus import Event, EventBus

log = logging.getLogger("tongdai.api.presence")

# Devices whose last registration change is remembered; the oldest are forgotten.
MAX_DEVICES = 100_000

Key = tuple[str, str]  # (app_id, sip_user)


@dataclass(slots=True)
class _Call:
    state: str  # "ringing" | "talking"
    since: float  # in this state since
    started: float  # first heard of
    keys: tuple[Key, ...]


@dataclass(frozen=True, slots=True)
class CallState:
    """One live call of a device."""

    call_id: str
    state: str  # "ringing" | "talking"
    since: float


class LiveCalls:
    def __init__(self, *, bus: EventBus, stale_after: float) -> None:
        self.bus = bus
        self.stale_after = stale_after
        self._calls: dict[str, _Call] = {}
        self._by_device: dict[Key, set[str]] = {}
        # (app_id, sip_user) -> (online, when) of the last registration change seen.
        self.changes: dict[Key, tuple[bool, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stream: AsyncIterator[Event] | None = None

    def start(self) -> None:
        """Subscribe to the bus (now, so nothing published after this is missed)."""
        if self._task is None:
            self._stream = self.bus.subscribe()
            self._task = asyncio.get_running_loop().create_task(self._run(self._stream))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()

    async def _run(self, stream: AsyncIterator[Event]) -> None:
        async for event in stream:
            try:
                self.handle(event)
            except Exception as exc:  # one odd event must not stop presence
                logs.event(log, "presence.event_dropped", level=logging.WARNING,
                           type=event.type, app=event.app_id, error=str(exc))

    def handle(self, event: Event) -> None:
        keys = tuple(dict.fromkeys((event.app_id, u) for u in event.sip_users))
        match event.type:
            case "device.registered" | "device.unregistered":
                for key in keys:
                    self.changes.pop(key, None)  # re-inserted last: oldest first
                    self.changes[key] = (event.type == "device.registered", event.ts)
                while len(self.changes) > MAX_DEVICES:
                    del self.changes[next(iter(self.changes))]
            case "call.ringing" | "call.answered":
                call_id = event.data.get("call_id")
                if not isinstance(call_id, str):
                    return
                self._purge(event.ts)
                call = self._calls.get(call_id)
                if call is None:
                    call = self._calls[call_id] = _Call("ringing", event.ts, event.ts, ())
                if event.type == "call.answered" and call.state != "talking":
                    call.state, call.since = "talking", event.ts
                for key in keys:
                    self._by_device.setdefault(key, set()).add(call_id)
                call.keys = tuple(dict.fromkeys((*call.keys, *keys)))
            case "call.transferred":
                # The party that left is out of the call, the one that joined in it.
                call = self._calls.get(str(event.data.get("call_id")))
                if call is not None:
                    self._move(event.app_id, str(event.data.get("call_id")), call,
                               event.data.get("from"), event.data.get("to"))
            case "call.ended":
                call_id = event.data.get("call_id")
                if isinstance(call_id, str):
                    self._drop(call_id)

    def calls_of(self, app_id: str, sip_user: str, now: float) -> list[CallState]:
        """The device's live calls, oldest first."""
        self._purge(now)
        ids = self._by_device.get((app_id, sip_user), ())
        out = [CallState(i, self._calls[i].state, self._calls[i].since)
               for i in ids if i in self._calls]
        return sorted(out, key=lambda c: (c.since, c.call_id))

    def _move(self, app_id: str, call_id: str, call: _Call, gone: Any, came: Any) -> None:
        for party, joins in ((gone, False), (came, True)):
            user = party.get("username") if isinstance(party, dict) else None
            if not isinstance(user, str):
                continue  # an outside number: not a device
            key = (app_id, user)
            if joins:
                self._by_device.setdefault(key, set()).add(call_id)
                call.keys = tuple(dict.fromkeys((*call.keys, key)))
            else:
                if (ids := self._by_device.get(key)) is not None:
                    ids.discard(call_id)
                    if not ids:
                        del self._by_device[key]
                call.keys = tuple(k for k in call.keys if k != key)

    def _drop(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        for key in call.keys:
            ids = self._by_device.get(key)
            if ids is not None:
                ids.discard(call_id)
                if not ids:
                    del self._by_device[key]

    def _purge(self, now: float) -> None:
        # Dicts keep insertion order and calls are inserted as they are first heard
        # of: the stale ones are at the front.
        while self._calls:
            call_id, call = next(iter(self._calls.items()))
            if call.started >= now - self.stale_after:
                break
            self._drop(call_id)
