"""The built-in media engine: an RTP/RTCP relay on asyncio UDP sockets.

Each call gets two legs; each leg an even RTP port and the RTCP port above it, each
port its own ``DatagramProtocol``. A packet arriving on leg a's port is sent, bytes
untouched, out of leg b's port to leg b's device, and vice versa; RTCP likewise on
the RTCP ports (and RTCP multiplexed on the RTP port, RFC 5761, just rides along).
A plain leg outlives its call: it is parked, still bound, for a later call
(``idle_legs``), so a call costs no socket to open or close.

Symmetric RTP (RFC 4961) and latching: a leg's packets go to the address that leg's
packets come from, so devices behind NAT get their audio; until the first packet
arrives they go to the address in the leg's SDP. The first RTP-looking packet
latches the source; a packet from elsewhere re-latches only if it carries a new SSRC
(a new stream after a re-INVITE or transfer), so a stray or spoofed packet with the
current SSRC cannot steal the stream. Packets are forwarded whatever their source.

The per-packet path is a tuple comparison, a ``sendto`` and, when recording, two
appends; nothing is parsed, and nothing is allocated but the datagram and its
arrival time.

A leg can be taken out of the relay (``leg_media``): its RTP then goes to a
``RelayLegMedia`` (``tongdai.media.endpoint``: prompts, music, DTMF, voicemail)
instead of to the other leg, and the other leg's packets go nowhere, until
``bridge`` relays the two legs again. The bridged path pays one more ``is None``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import resource
import socket
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from tongdai.clock import Clock
from tongdai.media.endpoint import RelayLegMedia, Ticker
from tongdai.media.engine import Leg, MediaEngine, MediaSession, MediaUnavailable
from tongdai.media.idle_legs import IdleLegs
from tongdai.media.ports import PortPool
from tongdai.media.recorder import Batch, CallRecorder, RecorderPool
from tongdai.media.webrtc.identity import DtlsIdentity
from tongdai.media.webrtc.leg import WebRtcLeg
from tongdai.media.webrtc.params import IceDtls, Setup
from tongdai.rtp.packet import is_rtcp

__all__ = ["RelayEngine", "RelaySession"]

log = logging.getLogger("tongdai.media")

_monotonic = time.monotonic
_APP_ID = re.compile(r"[A-Za-z0-9_-]+")
# Recording buffers per call if the recorder falls behind: 30 s of both directions.
_MAX_BUFFERED = 3000
# A leg of an ended call waits this long (seconds) before another call has it: the
# last packets of the ended call are over by then (see ``idle_legs``).
LEG_QUARANTINE = 2.0
# Parked legs (two sockets each) may hold at most this share of the file descriptors
# the process may open: the TCP listener counts on half of them (``transport.tcp``),
# the calls' own legs and the database on the rest.
IDLE_LEGS_FD_SHARE = 8


def idle_legs_cap(port_pairs: int) -> int:
    """Legs kept open for later calls, at most: as many as the RTP range has port
    pairs, within an eighth of the file descriptors (a quarter of them as sockets).

    A call that finds no parked leg binds two sockets and a later one closes them:
    at hundreds of calls a second, with 2 s of quarantine per leg, a smaller pool
    turns most calls into that churn (and the closed transports into work for the
    garbage collector)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return port_pairs
    return min(port_pairs, soft // IDLE_LEGS_FD_SHARE)

Addr = tuple[str, int]


class _Port(asyncio.DatagramProtocol):
    """One UDP port of one leg: takes that leg's packets, sends it the other leg's."""

    __slots__ = ("closed", "dest", "peer", "sdp", "source", "source_ssrc", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport = cast(asyncio.DatagramTransport, None)
        self.peer: _Port = self
        self.dest: Addr | None = None  # where this leg's device gets its packets
        self.sdp: Addr | None = None
        self.source: Addr | None = None  # the latched source of this leg's packets
        self.source_ssrc = b""
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error (ignored): %s", exc)

    def send(self, data: bytes, dest: Addr) -> None:
        """Send our own packet (tongdai's audio) to this leg's device."""
        if not self.transport.is_closing():
            self.transport.sendto(data, dest)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if addr != self.source:
            self._new_source(data, addr)
        peer = self.peer
        dest = peer.dest
        if dest is not None:
            peer.transport.sendto(data, dest)

    def _new_source(self, data: bytes, addr: Addr) -> None:
        # Latch only onto RTP/RTCP (version 2), never onto STUN or keep-alive junk.
        # The SSRC is at octet 8 in RTP (RFC 3550 §5.1) and at octet 4 in RTCP (§6.4).
        at = 4 if is_rtcp(data) else 8
        if len(data) < at + 4 or data[0] >> 6 != 2:
            return
        ssrc = data[at : at + 4]
        if self.source is None or ssrc != self.source_ssrc:
            self.source, self.source_ssrc, self.dest = addr, ssrc, addr

    def reset(self, nowhere: _Port) -> None:
        """Forget the device and forward to ``nowhere`` (a port with no destination):
        a leg parked for another call."""
        self.peer, self.dest, self.sdp, self.source, self.source_ssrc = (
            nowhere, None, None, None, b"")

    def set_sdp(self, addr: Addr | None) -> None:
        if addr != self.sdp:
            # A new SDP address (re-INVITE) may mean a new device: latch afresh.
            self.sdp, self.source, self.source_ssrc, self.dest = addr, None, b"", addr

    def set_ice(self, addr: Addr) -> None:
        """A WebRTC leg's browser nominated ``addr`` (ICE): its media goes there."""
        self.dest = addr


class _RtpPort(_Port):
    __slots__ = ("arrivals", "last", "packets", "relayed", "sink")

    def __init__(self) -> None:
        super().__init__()
        self.last = 0.0
        self.relayed = 0  # RTP packets sent on to the other leg (metrics)
        self.packets: list[bytes] | None = None  # set while recording
        self.arrivals: array[float] = array("d")
        # Set while the leg is out of the relay: who takes its packets instead.
        self.sink: Callable[[bytes, float], None] | None = None

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        now = _monotonic()
        self.last = now
        if addr != self.source:
            self._new_source(data, addr)
        sink = self.sink
        if sink is not None:
            sink(data, now)
            return
        peer = self.peer
        dest = peer.dest
        if dest is not None:
            peer.transport.sendto(data, dest)
            self.relayed += 1
        packets = self.packets
        if packets is not None:
            packets.append(data)
            self.arrivals.append(now)

    def reset(self, nowhere: _Port) -> None:
        super().reset(nowhere)
        self.last, self.relayed, self.sink = 0.0, 0, None
        self.packets, self.arrivals = None, array("d")

    def take(self) -> tuple[list[bytes], array[float]]:
        packets, arrivals = self.packets, self.arrivals
        if packets is None:  # not recording, or recording paused: stays so
            return [], array("d")
        self.packets, self.arrivals = [], array("d")
        return packets, arrivals


class _Leg:
    __slots__ = ("port", "rtcp", "rtp", "webrtc")

    def __init__(self, port: int, rtp: _RtpPort, rtcp: _Port) -> None:
        self.port, self.rtp, self.rtcp = port, rtp, rtcp
        self.webrtc: WebRtcLeg | None = None  # ICE-lite + DTLS-SRTP in front of rtp

    @property
    def reusable(self) -> bool:
        """Whether another call may have this leg: plain RTP (a WebRTC leg's socket is
        its DTLS endpoint's), its sockets open."""
        return self.webrtc is None and not (
            self.rtp.transport.is_closing() or self.rtcp.transport.is_closing())

    def reset(self, nowhere: _Port) -> None:
        self.rtp.reset(nowhere)
        self.rtcp.reset(nowhere)

    async def close(self) -> None:
        for p in (self.rtp, self.rtcp):
            p.transport.close()
        await asyncio.gather(self.rtp.closed, self.rtcp.closed)


class RelaySession:
    """One call's media through the relay (implements ``MediaSession``)."""

    def __init__(self, *, engine: RelayEngine, call_id: str, app_id: str, record: bool,
                 a: _Leg, b: _Leg) -> None:
        self.call_id = call_id
        self.app_id = app_id
        self.record = record
        self._engine = engine
        self._legs = {"a": a, "b": b}
        a.rtp.peer, b.rtp.peer, a.rtcp.peer, b.rtcp.peer = b.rtp, a.rtp, b.rtcp, a.rtcp
        self._created = _monotonic()
        self._recorder: CallRecorder | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[str] | None = None
        self._dropped = 0
        self._media: dict[str, RelayLegMedia] = {}
        self._muted: _Port | None = None  # the peer of a leg whose packets go nowhere
        self._paused = False

    @property
    def last_activity(self) -> float:
        a, b = self._legs["a"].rtp, self._legs["b"].rtp
        return max(self._created, a.last, b.last)

    def leg_activity(self, leg: Leg) -> float:
        return max(self._created, self._legs[leg].rtp.last)

    @property
    def packets_relayed(self) -> int:
        """RTP packets relayed between the legs, both ways."""
        return self._legs["a"].rtp.relayed + self._legs["b"].rtp.relayed

    @property
    def legs(self) -> tuple[_Leg, _Leg]:
        return self._legs["a"], self._legs["b"]

    @property
    def ports(self) -> tuple[int, int]:
        """The RTP ports of legs a and b."""
        return self._legs["a"].port, self._legs["b"].port

    def local_address(self, leg: Leg) -> tuple[str, int]:
        return self._engine.advertise, self._legs[leg].port

    def set_remote(self, leg: Leg, host: str, port: int) -> None:
        if self._closing is not None:
            return  # its legs may be another call's by now (``idle_legs``)
        addr = self._engine.check_remote(host, port, call_id=self.call_id, leg=leg)
        webrtc = self._legs[leg].webrtc
        if webrtc is not None and not webrtc.plain:
            # ICE says where a browser's media goes; RTCP rides on the RTP port.
            if webrtc.address is None:
                self._legs[leg].rtp.set_sdp(addr)
            return
        self._legs[leg].rtp.set_sdp(addr)
        # RFC 3605 a=rtcp could say otherwise; the call layer passes RTP only, and
        # port + 1 is the RFC 3550 §11 default. Latching fixes it up when it is wrong.
        self._legs[leg].rtcp.set_sdp((addr[0], addr[1] + 1) if addr else None)

    def leg_media(self, leg: Leg, codec: str) -> RelayLegMedia:
        if self._closing is not None:
            raise RuntimeError(f"call {self.call_id}: its media is closed")
        media = self._media.get(leg)
        if media is None:
            engine = self._engine
            media = self._media[leg] = RelayLegMedia(
                port=self._legs[leg].rtp, codec=codec, ticker=engine.ticker,
                recorders=engine.recorders, recordings_dir=engine.recordings_dir,
                call_id=self.call_id)
        elif not media.attached:
            media.attach(codec)
        else:
            media.set_codec(codec)
        this, other = self._legs[leg], self._legs["b" if leg == "a" else "a"]
        this.rtp.sink = media.received
        if self._muted is None:
            self._muted = _Port()
        # Neither leg hears the other now: RTP and RTCP both ways go nowhere.
        other.rtp.peer = other.rtcp.peer = this.rtcp.peer = self._muted
        return media

    def bridge(self) -> None:
        if self._closing is not None:
            return
        for media in self._media.values():
            media.detach()
        a, b = self._legs["a"], self._legs["b"]
        a.rtp.sink = b.rtp.sink = None
        a.rtp.peer, b.rtp.peer, a.rtcp.peer, b.rtcp.peer = b.rtp, a.rtp, b.rtcp, a.rtcp

    def webrtc_local(self, leg: Leg, setup: Setup) -> IceDtls:
        """Make ``leg`` a WebRTC leg (ICE-lite, DTLS-SRTP, rtcp-mux on its RTP port;
        idempotent) and return what our SDP for it says."""
        return self._webrtc(leg).local(setup)

    def webrtc_remote(self, leg: Leg, remote: IceDtls) -> None:
        """The browser's ICE credentials, fingerprint and DTLS role for ``leg``."""
        self._webrtc(leg).set_remote(remote)

    def webrtc_connected(self, leg: Leg) -> bool:
        """Whether ``leg`` is a WebRTC leg whose DTLS-SRTP is up."""
        webrtc = self._legs[leg].webrtc
        return webrtc is not None and webrtc.connected

    def _webrtc(self, leg: Leg) -> WebRtcLeg:
        if self._closing is not None:
            raise RuntimeError(f"call {self.call_id}: its media is closed")
        legs = self._legs[leg]
        if legs.webrtc is None:
            legs.webrtc = WebRtcLeg(inner=legs.rtp, transport=legs.rtp.transport,
                                    identity=self._engine.identity)
            legs.rtcp.set_sdp(None)  # rtcp-mux: nothing goes to the RTCP port
        return legs.webrtc

    @property
    def recording(self) -> str:
        recorder = self._recorder
        return recorder.name if recorder is not None and not recorder.broken else ""

    def start_recording(self) -> None:
        if not self.record or self._recorder is not None or self._closing is not None:
            return
        engine = self._engine
        self._recorder = engine.recorders.open(
            directory=engine.recordings_dir / self.app_id, start=_monotonic(),
            call_id=self.call_id)
        if not self._paused:
            self._collect(True)
        loop = asyncio.get_running_loop()
        # Spread the steps of calls answered together over the interval.
        first = engine.flush_interval * (0.5 + (hash(self.call_id) % 1000) / 1000)
        self._timer = loop.call_later(first, self._flush)

    def pause_recording(self) -> None:
        # What arrived before the pause goes to the encoder now; what arrives while
        # paused is never kept, so the MP3 holds silence for that time.
        if self._paused:
            return
        self._paused = True
        recorder = self._recorder
        if recorder is not None and self._closing is None:
            recorder.submit(self._batch(), _monotonic())
            self._collect(False)

    def resume_recording(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._recorder is not None and self._closing is None:
            self._collect(True)

    @property
    def recording_paused(self) -> bool:
        return self._paused

    def _collect(self, on: bool) -> None:
        for leg in self._legs.values():
            leg.rtp.packets, leg.rtp.arrivals = ([] if on else None), array("d")

    def _batch(self) -> Batch:
        a, a_times = self._legs["a"].rtp.take()
        b, b_times = self._legs["b"].rtp.take()
        return a, a_times, b, b_times

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._engine.flush_interval, self._flush)
        recorder = self._recorder
        if recorder is None:
            return
        if recorder.busy:
            a, b = self._legs["a"].rtp, self._legs["b"].rtp
            if a.packets is not None and b.packets is not None and \
                    len(a.packets) + len(b.packets) > _MAX_BUFFERED:
                if not self._dropped:
                    log.warning("recording of call %s falls behind; dropping audio",
                                self.call_id)
                self._dropped += len(a.packets) + len(b.packets)
                self._batch()
            return
        recorder.submit(self._batch(), _monotonic())

    async def close(self) -> str:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        return await asyncio.shield(self._closing)

    async def _close(self) -> str:
        end = _monotonic()
        for media in self._media.values():
            media.detach()
        if self._timer is not None:
            self._timer.cancel()
        recorder = self._recorder
        # Taken as the legs stop relaying: every packet that made it in is recorded.
        batch = self._batch() if recorder is not None else None
        await self._engine.release(self)
        if recorder is None or batch is None:
            return ""
        return await recorder.finish(batch, end)


class RelayEngine:
    """The built-in ``MediaEngine``: relays (and records) calls on ``host``.

    ``advertise`` is the address to put into SDP when ``host`` is not reachable as
    such (``0.0.0.0``, or a private address behind 1:1 NAT); it defaults to ``host``
    (resolved to an IP address by ``start``, if it is a name).
    Recordings are mixed and encoded by ``encoder_processes`` separate processes
    (``tongdai.media.encoder``), started with the first recorded call, so that work
    never holds this process's GIL while packets wait to be relayed.
    """

    def __init__(self, host: str, port_range: tuple[int, int], recordings_dir: Path, *,
                 advertise: str | None = None, mp3_bitrate: int = 32,
                 encoder_processes: int = 1, flush_interval: float = 1.0) -> None:
        self.host = host
        self._advertise = advertise
        self._bind_ip = host
        self.recordings_dir = recordings_dir
        self.flush_interval = flush_interval
        self.recorders = RecorderPool(processes=encoder_processes, bitrate=mp3_bitrate)
        self._family = socket.AF_INET
        self._pool = PortPool(*port_range)
        self._nowhere: _Port = cast(_Port, None)  # set by ``start``
        self._idle: IdleLegs[_Leg] = IdleLegs(quarantine=LEG_QUARANTINE,
                                              capacity=idle_legs_cap(self._pool.size))
        self._sessions: set[RelaySession] = set()
        self.ticker = Ticker()  # paces the audio tongdai itself plays, on every call
        self._relayed = 0  # by the sessions closed so far
        self._started = False
        self._identity: DtlsIdentity | None = None
        # The clock of ``last_activity``/``leg_activity``: a watchdog measures silence
        # with it, never with another one (the event loop's may differ, e.g. uvloop's).
        self.clock: Clock = _monotonic

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def packets_relayed(self) -> int:
        """RTP packets relayed since start, by every session (read at scrape time)."""
        return self._relayed + sum(s.packets_relayed for s in self._sessions)

    @property
    def identity(self) -> DtlsIdentity:
        """The DTLS certificate of WebRTC legs (made with the first one)."""
        if self._identity is None:
            self._identity = DtlsIdentity()
        return self._identity

    @property
    def free_port_pairs(self) -> int:
        return self._pool.free + len(self._idle)

    @property
    def advertise(self) -> str:
        """The address our legs have in SDP (``local_address``)."""
        return self._advertise or self._bind_ip

    async def start(self) -> None:
        """Resolve ``host`` (once: binding per port must not hit DNS) and get ready."""
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.host, None, type=socket.SOCK_DGRAM)
            ip = ipaddress.ip_address(infos[0][4][0])
        self._bind_ip = str(ip)
        self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._nowhere = _Port()  # where parked legs forward: nowhere
        self._started = True

    async def stop(self) -> None:
        """Close every session (finishing their recordings), then the encoders."""
        await asyncio.gather(*(s.close() for s in list(self._sessions)))
        await self._close_legs(self._idle.drain())
        self.ticker.close()
        await self.recorders.stop()
        self._started = False

    async def create_session(self, *, call_id: str, app_id: str, record: bool) -> RelaySession:
        if not _APP_ID.fullmatch(app_id):
            raise ValueError(f"app_id {app_id!r} must be letters, digits, '_' or '-'")
        if not self._started:
            raise RuntimeError("the media engine is not started: await RelayEngine.start()")
        if record:
            await self.recorders.ready()
        legs: list[_Leg] = []
        try:
            while len(legs) < 2:
                leg = await self._open_leg()
                if leg is None:
                    lo, hi = self._pool.lo, self._pool.hi
                    log.error("RTP port range %d-%d is used up (%d calls have media): "
                              "refusing call %s with 503; widen TONGDAI_RTP_PORTS",
                              lo, hi, len(self._sessions), call_id)
                    raise MediaUnavailable(f"no free RTP ports in {lo}-{hi}")
                legs.append(leg)
        except BaseException:
            await self._close_legs(legs)
            raise
        session = RelaySession(engine=self, call_id=call_id, app_id=app_id, record=record,
                               a=legs[0], b=legs[1])
        self._sessions.add(session)
        return session

    async def _open_leg(self) -> _Leg | None:
        leg = self._idle.take(self.clock())
        if leg is None:
            leg = await self._bind_leg()
        if leg is None:  # the range is used up: a leg in quarantine, if any
            leg = self._idle.take(self.clock(), in_quarantine=True)
        if leg is not None:
            leg.reset(self._nowhere)  # whatever it latched onto while parked
        return leg

    async def _bind_leg(self) -> _Leg | None:
        loop = asyncio.get_running_loop()
        for _ in range(self._pool.size):
            port = self._pool.take()
            if port is None:
                return None
            socks: list[socket.socket] = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(self._family, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setblocking(False)
                    sock.bind((self._bind_ip, p))
            except OSError as exc:
                # Someone else holds it; try it again after every other free pair.
                for sock in socks:
                    sock.close()
                self._pool.give_back(port)
                log.debug("RTP port %d unavailable: %s", port, exc)
                continue
            _, rtp = await loop.create_datagram_endpoint(_RtpPort, sock=socks[0])
            _, rtcp = await loop.create_datagram_endpoint(_Port, sock=socks[1])
            return _Leg(port, rtp, rtcp)
        return None

    async def release(self, session: RelaySession) -> None:
        """Park a closed session's legs for later calls, or close them and give their
        ports back (called by the session)."""
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        self._relayed += session.packets_relayed
        closing: list[_Leg] = []
        for leg in session.legs:
            if leg.reusable and self._idle.park(leg, self.clock()):
                leg.reset(self._nowhere)
            else:
                closing.append(leg)
        await self._close_legs(closing)

    async def _close_legs(self, legs: list[_Leg]) -> None:
        try:
            await asyncio.gather(*(leg.close() for leg in legs))
        finally:
            for leg in legs:
                self._pool.give_back(leg.port)

    def check_remote(self, host: str, port: int, *, call_id: str, leg: str) -> Addr | None:
        """The SDP address as a send-to address, or None when unusable."""
        if port == 0:
            return None  # RFC 3264 §6: port zero rejects (or disables) the stream
        ip = _sdp_ip(host)
        if ip is None:
            log.warning("call %s leg %s: SDP address %r is not an IP address; waiting "
                        "for its RTP to learn where to send", call_id, leg, host)
            return None
        address, version, unspecified = ip
        if unspecified:
            return None  # RFC 3264 §8.4: c=0.0.0.0 is the old way to put a call on hold
        if (version == 6) != (self._family == socket.AF_INET6) or not 0 < port < 65535:
            log.warning("call %s leg %s: cannot send RTP to %s port %d from %s", call_id,
                        leg, host, port, self.host)
            return None
        return address, port


# SDP addresses read lately: a trunk or a device offers the same one call after call,
# and reading it with ``ipaddress`` is a good part of setting a leg's remote.
SDP_IP_MEMORY = 4096


@functools.lru_cache(maxsize=SDP_IP_MEMORY)
def _sdp_ip(host: str) -> tuple[str, int, bool] | None:
    """(the address as sent to, its IP version, whether unspecified), or None when
    ``host`` is not an IP address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(ip), ip.version, ip.is_unspecified


if TYPE_CHECKING:
    # mypy checks that the built-in engine fits the seam the call layer programs to.
    def _conforms(engine: RelayEngine, session: RelaySession) -> tuple[MediaEngine, MediaSession]:
        return engine, session
