"""``MediaEngine`` backed by an rtpengine daemon, driven over its ng protocol.

Selected with ``TONGDAI_MEDIA_ENGINE=rtpengine:HOST:PORT`` (the daemon's
``listen-ng``). rtpengine relays the RTP (in userspace, or in its kernel module where
installed); tongdai keeps the SIP and turns rtpengine's pcap recordings into its own
MP3s when ``TONGDAI_RTPENGINE_RECORDING_DIR`` shows it rtpengine's
``--recording-dir`` (``recording-method=pcap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tongdai.clock import Clock
from tongdai.media.engine import Leg, MediaEngine, MediaSession, MediaUnavailable
from tongdai.media.recorder import RecorderPool
from tongdai.media.rtpengine.ng import Message, NgClient, NgError
from tongdai.media.rtpengine.recording import PcapConverter
from tongdai.media.rtpengine.sdp import NG_FLAGS, PLACEHOLDER, leg_sdp, media_address
from tongdai.media.rtpengine.session import RtpengineSession

__all__ = ["RtpengineEngine"]

log = logging.getLogger("tongdai.media")

_APP_ID = re.compile(r"[A-Za-z0-9_-]+")


class RtpengineEngine:
    """Relays (and records) calls through the rtpengine listening at ``host``:``port``.

    Leg activity for the media timeout is polled from rtpengine every
    ``poll_interval`` seconds: one ``query`` per call, about 1 ms of this process's
    CPU each (bench/rtpengine_bench.py), so keep it a fraction of the media timeout.
    """

    def __init__(self, *, host: str, port: int, recordings_dir: Path,
                 spool: Path | None = None, mp3_bitrate: int = 32,
                 encoder_processes: int = 1, poll_interval: float = 5.0) -> None:
        self.ng = NgClient(host, port)
        self.recordings_dir = recordings_dir
        self.recorders = RecorderPool(processes=encoder_processes, bitrate=mp3_bitrate)
        self.converter = PcapConverter(spool=spool, recorders=self.recorders) \
            if spool is not None else None
        self.poll_interval = poll_interval
        self.clock: Clock = time.monotonic
        self._sessions: dict[str, RtpengineSession] = {}
        self._poller: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Reach rtpengine (``ping``) and start polling; a clear error if it is not there."""
        await self.ng.start()
        try:
            await self.ng.command("ping")
        except NgError as exc:
            self.ng.close()
            raise RuntimeError(f"{exc}: start rtpengine or fix TONGDAI_MEDIA_ENGINE") from None
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Close every session (finishing their recordings), then the encoders."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await asyncio.gather(*(s.close() for s in list(self._sessions.values())))
        await self.recorders.stop()
        self.ng.close()

    async def create_session(self, *, call_id: str, app_id: str,
                             record: bool) -> RtpengineSession:
        if not _APP_ID.fullmatch(app_id):
            raise ValueError(f"app_id {app_id!r} must be letters, digits, '_' or '-'")
        if self._poller is None:
            raise RuntimeError("the media engine is not started: await RtpengineEngine.start()")
        try:
            # rtpengine's answer to leg a's SDP is what leg b talks to, and vice versa.
            b = media_address(await self._sdp("offer", call_id, from_tag="a"))
            a = media_address(await self._sdp("answer", call_id, from_tag="a", to_tag="b"))
        except (NgError, ValueError) as exc:
            log.error("rtpengine has no media for call %s (refused with 503): %s",
                      call_id, exc)
            with contextlib.suppress(NgError):
                await self.ng.command("delete", call_id=call_id, delete_delay=0)
            raise MediaUnavailable(str(exc)) from None
        session = RtpengineSession(engine=self, call_id=call_id, app_id=app_id,
                                   record=record, a=a, b=b)
        self._sessions[call_id] = session
        return session

    async def _sdp(self, command: str, call_id: str, **tags: str) -> str:
        reply = await self.ng.command(command, call_id=call_id, sdp=leg_sdp(*PLACEHOLDER),
                                      **tags, **NG_FLAGS)
        sdp = reply.get("sdp")
        if not isinstance(sdp, str):
            raise ValueError(f"rtpengine's {command!r} reply has no SDP")
        return sdp

    def release(self, session: RtpengineSession) -> None:
        """Forget a closed session (called by the session)."""
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            sessions = list(self._sessions.values())
            replies = await asyncio.gather(
                *(self.ng.command("query", call_id=s.call_id) for s in sessions),
                return_exceptions=True)
            now = self.clock()
            for session, reply in zip(sessions, replies, strict=True):
                if isinstance(reply, dict):
                    session.counted(_rtp_packets(reply), now)


def _rtp_packets(reply: Message) -> dict[Leg, int]:
    """RTP packets rtpengine received from each leg (``query``'s per-tag stream stats)."""
    counts: dict[Leg, int] = {"a": 0, "b": 0}
    tags = reply.get("tags")
    if not isinstance(tags, dict):
        return counts
    for leg in counts:
        monologue = tags.get(leg)
        medias = monologue.get("medias") if isinstance(monologue, dict) else None
        for media in medias if isinstance(medias, list) else ():
            streams = media.get("streams") if isinstance(media, dict) else None
            for stream in streams if isinstance(streams, list) else ():
                counts[leg] += _stream_packets(stream)
    return counts


def _stream_packets(stream: object) -> int:
    if not isinstance(stream, dict):
        return 0
    flags, stats = stream.get("flags"), stream.get("stats")
    if (isinstance(flags, list) and "RTCP" in flags) or not isinstance(stats, dict):
        return 0
    packets = stats.get("packets")
    return packets if isinstance(packets, int) else 0


if TYPE_CHECKING:
    # mypy checks that this engine fits the seam the call layer programs to.
    def _conforms(engine: RtpengineEngine,
                  session: RtpengineSession) -> tuple[MediaEngine, MediaSession]:
        return engine, session
