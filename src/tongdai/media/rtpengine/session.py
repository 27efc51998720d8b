"""One call's media through rtpengine (implements ``MediaSession``).

The call layer asks for both legs' addresses as soon as the session exists, before
either leg's SDP is known, so the session is created in rtpengine with placeholder
SDP for both legs (an ``offer`` for leg a, an ``answer`` for leg b) and the ports
rtpengine answers are the legs' addresses for the whole call: every later ``offer``
or ``answer`` carries the ``port latching`` flag, which keeps them. ``set_remote``
sends the leg's real address (leg a by ``offer``, leg b by ``answer``) in the
background, one command at a time in call order; rtpengine also latches onto where
a leg's RTP comes from, as the built-in relay does.

Activity comes from the engine's periodic ``query`` of rtpengine's packet counters.
Recording is rtpengine's (``start recording``); its pcap becomes the MP3 on ``close``.
Pausing leaves the paused time out of the MP3 (silence), since rtpengine 10.5 cannot
pause a recording. Taking a leg out of the relay (``leg_media``: IVR, music, voicemail)
is refused: rtpengine here only relays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tongdai.media.engine import Leg, LegMedia
from tongdai.media.recorder import new_recording_name
from tongdai.media.rtpengine.ng import Message, NgClient, NgError
from tongdai.media.rtpengine.recording import Take
from tongdai.media.rtpengine.sdp import NG_FLAGS, leg_sdp

if TYPE_CHECKING:
    from tongdai.media.rtpengine.engine import RtpengineEngine

__all__ = ["MediaFeatureUnavailable", "RtpengineSession"]

log = logging.getLogger("tongdai.media")

_monotonic = time.monotonic
_wall = time.time
_TAGS: dict[Leg, str] = {"a": "a", "b": "b"}


class MediaFeatureUnavailable(RuntimeError):
    """The media engine in use cannot do this (say which setting to change)."""


class RtpengineSession:
    def __init__(self, *, engine: RtpengineEngine, call_id: str, app_id: str, record: bool,
                 a: tuple[str, int], b: tuple[str, int]) -> None:
        self.call_id = call_id
        self.app_id = app_id
        self.record = record
        self._engine = engine
        self._local: dict[Leg, tuple[str, int]] = {"a": a, "b": b}
        self._remote: dict[Leg, tuple[str, int]] = {}
        created = _monotonic()
        self._activity: dict[Leg, float] = {"a": created, "b": created}
        self._packets: dict[Leg, int] = {"a": 0, "b": 0}
        self._queue: asyncio.Task[None] | None = None  # the last command in flight
        self._name = ""
        self._started_at = 0.0
        self._paused_at: float | None = None
        self._paused: list[tuple[float, float]] = []
        self._closing: asyncio.Task[str] | None = None

    @property
    def _ng(self) -> NgClient:
        return self._engine.ng

    # Activity ---------------------------------------------------------------------

    @property
    def last_activity(self) -> float:
        return max(self._activity.values())

    def leg_activity(self, leg: Leg) -> float:
        return self._activity[leg]

    def counted(self, packets: dict[Leg, int], now: float) -> None:
        """rtpengine's RTP packet counts per leg (the engine's poll): a count that
        grew means the leg was heard since the last poll."""
        for leg, count in packets.items():
            if count > self._packets[leg]:
                self._packets[leg], self._activity[leg] = count, now

    # Addresses ----------------------------------------------------------------------

    def local_address(self, leg: Leg) -> tuple[str, int]:
        return self._local[leg]

    def set_remote(self, leg: Leg, host: str, port: int) -> None:
        if self._closing is not None or self._remote.get(leg) == (host, port):
            return
        self._remote[leg] = (host, port)
        if leg == "a":
            self._send(lambda: self._ng.command(
                "offer", call_id=self.call_id, from_tag="a", to_tag="b",
                sdp=leg_sdp(host, port), **NG_FLAGS))
        else:
            self._send(lambda: self._ng.command(
                "answer", call_id=self.call_id, from_tag="a", to_tag="b",
                sdp=leg_sdp(host, port), **NG_FLAGS))

    async def settled(self) -> None:
        """Wait until rtpengine has answered every command sent so far."""
        if self._queue is not None:
            await self._queue

    def _send(self, command: Callable[[], Awaitable[Message]]) -> None:
        """Run ``command`` after the ones before it (rtpengine must see them in order)."""
        before = self._queue

        async def run() -> None:
            if before is not None:
                await before
            try:
                await command()
            except NgError as exc:
                log.warning("call %s: %s", self.call_id, exc)

        self._queue = asyncio.get_running_loop().create_task(run())

    # Recording ----------------------------------------------------------------------

    @property
    def recording(self) -> str:
        return self._name

    def start_recording(self) -> None:
        if not self.record or self._name or self._closing is not None:
            return
        if self._engine.converter is None:
            log.error("call %s is not recorded: rtpengine's recordings are not readable "
                      "here; set TONGDAI_RTPENGINE_RECORDING_DIR", self.call_id)
            return
        self._name = new_recording_name()
        self._started_at = _wall()
        if self._paused_at is not None:
            self._paused_at = self._started_at
        self._send(lambda: self._ng.command("start recording", call_id=self.call_id))

    def pause_recording(self) -> None:
        if self._paused_at is None:
            self._paused_at = _wall()

    def resume_recording(self) -> None:
        if self._paused_at is not None:
            self._paused.append((self._paused_at, _wall()))
            self._paused_at = None

    @property
    def recording_paused(self) -> bool:
        return self._paused_at is not None

    # tongdai's own media ------------------------------------------------------------

    def leg_media(self, leg: Leg, codec: str) -> LegMedia:
        raise MediaFeatureUnavailable(
            f"call {self.call_id}: call flows (prompts, music, DTMF, voicemail) need the "
            "built-in media engine; unset TONGDAI_MEDIA_ENGINE to use them")

    def bridge(self) -> None:
        """Both legs are always relayed to each other here."""

    # The end --------------------------------------------------------------------------

    async def close(self) -> str:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        return await asyncio.shield(self._closing)

    async def _close(self) -> str:
        end = _wall()
        self.resume_recording()
        await self.settled()
        try:
            await self._ng.command("delete", call_id=self.call_id, delete_delay=0)
        except NgError as exc:
            log.warning("call %s: %s", self.call_id, exc)
        finally:
            self._engine.release(self)
        converter = self._engine.converter
        if not self._name or converter is None:
            return ""
        return await converter.convert(Take(
            call_id=self.call_id, directory=self._engine.recordings_dir / self.app_id,
            name=self._name, ports=(self._local["a"][1], self._local["b"][1]),
            start=self._started_at, end=end, paused=tuple(self._paused)))
