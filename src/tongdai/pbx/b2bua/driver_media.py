"""The calls' media sessions as the driver keeps them: one made when a call is routed
(the core gets its anchor), pointed at each leg's far end, recorded, lent to the call
flows, closed at the call's end (→ ``MediaStopped``); and the watchdog that tells the
core how long a call's media has been silent (→ ``MediaSilent``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tongdai.media.engine import MediaEngine, MediaSession, MediaUnavailable
from tongdai.pbx.b2bua.actions import (
    PauseRecording,
    ResumeRecording,
    StartMedia,
    StartRecording,
    StopMedia,
)
from tongdai.pbx.b2bua.core import B2bua, Input
from tongdai.pbx.b2bua.events import Anchor, MediaSilent, MediaStopped
from tongdai.pbx.b2bua.flow_events import FlowAction
from tongdai.pbx.flow.runtime import FlowRuntime
from tongdai.pbx.webrtc_edge import WebRtcEdge

log = logging.getLogger("tongdai.calls")

# How often answered calls' media is checked for silence (at most; half the timeout
# when that is shorter).
WATCHDOG_PERIOD = 5.0


class CallMedia:
    def __init__(
        self, *, engine: MediaEngine, core: B2bua, webrtc: WebRtcEdge,
        flows: FlowRuntime | None, feed: Callable[[Input], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], None], timeout: float,
    ) -> None:
        self.engine = engine
        self.core = core
        self.webrtc = webrtc
        self.flows = flows
        self.feed = feed
        self.spawn = spawn
        self.timeout = timeout
        self.sessions: dict[str, MediaSession] = {}

    async def anchor(self, call_id: str, app_id: str, record: bool) -> Anchor | None:
        """A media session for a new call; None when the media engine has none to give."""
        try:
            session = await self.engine.create_session(call_id=call_id, app_id=app_id,
                                                       record=record)
        except MediaUnavailable:
            return None
        self.sessions[call_id] = session
        self.webrtc.media_created(call_id, session)
        return Anchor(a=session.local_address("a"), b=session.local_address("b"),
                      record=record)

    # The core's media actions ----------------------------------------------------

    def start(self, a: StartMedia) -> None:
        if (session := self.sessions.get(a.call_id)) is not None:
            session.set_remote(a.leg, a.host, a.port)

    def recording(self, a: StartRecording | PauseRecording | ResumeRecording) -> None:
        if (session := self.sessions.get(a.call_id)) is None:
            return
        match a:
            case StartRecording():
                session.start_recording()
            case PauseRecording():
                session.pause_recording()
            case ResumeRecording():
                session.resume_recording()

    def flow(self, a: FlowAction) -> None:
        if self.flows is not None:
            self.flows.perform(a, self.sessions.get(a.call_id))

    def stop(self, a: StopMedia) -> None:
        self.spawn(self._close(a.call_id))

    async def _close(self, call_id: str) -> None:
        if self.flows is not None:
            await self.flows.close(call_id)  # a voicemail being written is kept
        session = self.sessions.pop(call_id, None)
        self.webrtc.forget(call_id, session)
        recording = ""
        if session is not None:
            try:
                recording = await session.close()
            except Exception:
                log.exception("call %s: closing media failed", call_id)
        self.feed(MediaStopped(call_id=call_id, recording=recording))

    # Background --------------------------------------------------------------------

    async def watch(self) -> None:
        """Tell the core how long each answered call's quieter side has been silent."""
        while True:
            await asyncio.sleep(min(WATCHDOG_PERIOD, self.timeout / 2))
            now = self.engine.clock()  # the clock of the media's activity times, no other
            for call in self.core.answered_calls():
                session = self.sessions.get(call.call_id)
                if session is None:
                    continue
                silent = now - min(session.leg_activity("a"), session.leg_activity("b"))
                if silent > self.timeout:
                    self.feed(MediaSilent(call_id=call.call_id, seconds=silent))
            if self.flows is None or not self.flows.runs:
                continue
            for call_id in list(self.flows.runs):  # callers in menus and queues
                in_flow = self.core.calls.get(call_id)
                session = self.sessions.get(call_id)
                if in_flow is None or session is None or in_flow.answered_at is not None:
                    continue
                silent = now - session.leg_activity("a")
                if silent > self.timeout:
                    self.feed(MediaSilent(call_id=call_id, seconds=silent))
