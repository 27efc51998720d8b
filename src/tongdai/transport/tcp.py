"""SIP over TCP: framed by Content-Length, responses over the same connection (§18.3).

Outgoing requests to a TCP peer without a connection open one (RFC 3261 §18.1.1).

Connections that peers open to us are bounded (``TcpLimits``), so that silent, slow
or countless connections cannot take the file descriptors that real phones and the
HTTP API need:

- *read timeout*: a new connection must deliver a complete SIP message, and a message
  once begun must be complete, within ``read_timeout`` seconds (Kamailio's default is
  20 s). Keep-alive pings alone do not count as a message;
- *idle timeout*: a connection with no message or keep-alive either way for
  ``idle_timeout`` seconds is closed, unless ``in_use`` says it still carries a live
  registration or transaction: requests to a phone registered over TCP go back over
  its connection (RFC 5626 §5, RFC 3261 §18.3), so it is kept as long as the binding;
- *caps*: at most ``max_per_source`` connections from one address and
  ``max_connections`` in all. At the global cap a new connection takes the place of
  the oldest one that has not sent a complete message yet; with none, it is refused
  (closed at once), like one over its address's cap.

Connections we open (to trunks, to phones) are not capped: we chose to open them.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from tongdai import logs
from tongdai.sip.errors import LocalProtocolError, RemoteProtocolError
from tongdai.sip.message import make_response, serialize
from tongdai.sip.parser import FramingError, StreamFramer
from tongdai.sip.peer import Peer

log = logging.getLogger("tongdai.sip.tcp")

BACKLOG = 1024  # accept bursts of connections; the caps decide who stays
PRESSURE_LOG_INTERVAL = 10.0  # at most one warning this often under a connection flood
# Seconds to open a connection to a peer before its requests fail (RFC 3261 §18.4:
# the transaction layer is told, as for an ICMP error).
CONNECT_TIMEOUT = 5.0
# The sweeper looks at connections every quarter of the shortest timeout, within these
# bounds (seconds): often enough to enforce it closely, rarely enough to cost nothing.
SWEEP_MIN = 0.05
SWEEP_MAX = 1.0
# Without RLIMIT_NOFILE: the connection cap; with a tiny one, at least this many.
UNLIMITED_CAP = 65536
MIN_CAP = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpLimits:
    """How long and how many inbound connections; see the module docstring."""

    read_timeout: float = 20.0
    idle_timeout: float = 1800.0
    max_connections: int = 0  # 0: half the process's file-descriptor limit
    max_per_source: int = 64
    # Bytes we may have queued for a peer that does not read them before we give up.
    max_write_buffer: int = 1 << 20

    def connection_cap(self) -> int:
        return self.max_connections if self.max_connections > 0 else auto_connection_cap()


def auto_connection_cap() -> int:
    """Half the file descriptors this process may open (RLIMIT_NOFILE): the other half
    stays for the HTTP API, media sockets, recordings and the database."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return UNLIMITED_CAP
    return max(MIN_CAP, soft // 2)


class _Conn(asyncio.Protocol):
    def __init__(self, listener: TcpListener, peer: Peer | None = None) -> None:
        self.listener = listener
        self.peer = peer
        self.inbound = peer is None
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        now = time.monotonic()
        self.opened = now
        self.active = now  # last message or keep-alive, either way
        self.partial_since: float | None = None  # first byte of an unfinished message
        self.proven = not self.inbound  # delivered a complete message
        self.counted = False  # held a place under the caps

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if self.peer is None:
            peername = transport.get_extra_info("peername")
            if not peername:  # reset before we got to it
                self.transport.abort()
                return
            self.peer = Peer("tcp", str(peername[0]), int(peername[1]))
            if not self.listener._admit(self):
                self.transport.abort()
                return
        self.listener._conns[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        framer = self.framer
        try:
            messages = framer.feed(data)
        except FramingError as exc:
            # Framing is lost on a stream: handle what came before, answer the broken
            # request if it can be answered, then close (RFC 3261 §18.3).
            for msg in exc.messages:
                self._deliver(msg)
            if exc.request is not None and exc.status is not None:
                self.transport.write(serialize(make_response(exc.request, exc.status,
                                                             exc.reason)))
            log.info("closing tcp %s:%s: %s", self.peer.host, self.peer.port, exc.reason)
            self.transport.close()
            return
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info("closing tcp %s:%s: %s", self.peer.host, self.peer.port, exc)
            self.transport.close()
            return
        now = time.monotonic()
        pings = framer.take_pings()
        if pings:
            # RFC 5626 §3.5.1: answer a double-CRLF keep-alive with a single CRLF.
            self.transport.write(b"\r\n" * pings)
            self.active = now
        if messages:
            self.active = now
            if not self.proven:
                self.listener._proven(self)
            self.partial_since = now if framer.buffered else None
        elif not framer.buffered:
            self.partial_since = None
        elif self.partial_since is None:
            self.partial_since = now
        for msg in messages:
            self._deliver(msg)

    def _deliver(self, msg: bytes) -> None:
        assert self.peer is not None
        try:
            self.listener.on_message(msg, self.peer)
        except Exception:
            # Our bug, not the peer's: an exception escaping data_received would make
            # the event loop drop the connection (and a phone's registration with it).
            log.exception("tcp message from %s:%s not handled", self.peer.host, self.peer.port)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener._uncount(self)
        if self.peer is not None and self.listener._conns.get(self.peer) is self:
            del self.listener._conns[self.peer]
            self.listener.on_closed(self.peer)


class TcpListener:
    def __init__(
        self, *, on_message: Callable[[bytes, Peer], None], on_closed: Callable[[Peer], None],
        limits: TcpLimits | None = None, in_use: Callable[[Peer], bool] = lambda peer: False,
    ) -> None:
        self.on_message = on_message
        self.on_closed = on_closed
        self.limits = limits or TcpLimits()
        self.in_use = in_use
        self._server: asyncio.Server | None = None
        self._conns: dict[Peer, _Conn] = {}
        self._pending: dict[Peer, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.cap = self.limits.connection_cap()
        self._inbound = 0
        self._per_source: dict[str, int] = {}
        self._unproven: dict[_Conn, None] = {}  # inbound, oldest first
        self._since_log: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}
        self.counters = {"refused": 0, "evicted": 0, "read_timeout": 0, "no_message": 0,
                         "idle": 0, "not_reading": 0}

    @property
    def inbound(self) -> int:
        """Connections peers opened to us that hold a place under the caps."""
        return self._inbound

    @property
    def listening(self) -> bool:
        """Whether the listening socket accepts connections."""
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), host, port,
                                                backlog=BACKLOG)
        lim = self.limits
        tick = min(SWEEP_MAX, max(SWEEP_MIN, min(lim.read_timeout, lim.idle_timeout) / 4))
        self._sweeper = loop.create_task(self._sweep_every(tick), name="tcp-sweeper")

    def send(self, data: bytes, peer: Peer) -> bool:
        conn = self._conns.get(peer)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            conn.active = time.monotonic()
            if conn.transport.get_write_buffer_size() > self.limits.max_write_buffer:
                self._close(conn, "not_reading")
            return True
        queued = self._pending.get(peer)
        if queued is not None:
            queued.append(data)
            return True
        self._pending[peer] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _connect(self, peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(self, peer), peer.host.strip("[]"),
                                       peer.port),
                timeout=CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            self._pending.pop(peer, None)
            self.on_closed(peer)
            return
        for data in self._pending.pop(peer, []):
            self.send(data, peer)

    # Limits ------------------------------------------------------------------

    def _admit(self, conn: _Conn) -> bool:
        """Whether a connection a peer just opened may stay (it counts from now on)."""
        assert conn.peer is not None
        host = conn.peer.host
        held = self._per_source.get(host, 0)
        if held >= self.limits.max_per_source:
            self._pressure("tcp.refused", host, "per_source_cap")
            return False
        if self._inbound >= self.cap:
            oldest = next(iter(self._unproven), None)
            if oldest is None:
                self._pressure("tcp.refused", host, "connection_cap")
                return False
            self._pressure("tcp.evicted", host, "connection_cap")
            self._close(oldest, "evicted")
        self._per_source[host] = held + 1
        self._inbound += 1
        conn.counted = True
        self._unproven[conn] = None
        return True

    def _proven(self, conn: _Conn) -> None:
        conn.proven = True
        self._unproven.pop(conn, None)

    def _uncount(self, conn: _Conn) -> None:
        if not conn.counted or conn.peer is None:
            return
        conn.counted = False
        self._inbound -= 1
        self._unproven.pop(conn, None)
        host = conn.peer.host
        held = self._per_source.get(host, 0) - 1
        if held > 0:
            self._per_source[host] = held
        else:
            self._per_source.pop(host, None)

    def _close(self, conn: _Conn, reason: str) -> None:
        # The place is free at once: connection_lost comes a loop iteration later.
        self._uncount(conn)
        self.counters[reason] += 1
        if conn.transport is not None:
            conn.transport.abort()  # not close(): a peer that does not read holds it open

    def _pressure(self, event: str, host: str, reason: str) -> None:
        """Count a refused or evicted connection; warn at most every few seconds per
        kind, with how many since the last warning (a flood must not flood the log)."""
        if event == "tcp.refused":
            self.counters["refused"] += 1
        since = self._since_log.get(event, 0) + 1
        now = time.monotonic()
        if now - self._logged_at.get(event, -PRESSURE_LOG_INTERVAL) < PRESSURE_LOG_INTERVAL:
            self._since_log[event] = since
            return
        logs.event(log, event, level=logging.WARNING, source=host, reason=reason,
                   count=since, connections=self._inbound, cap=self.cap,
                   per_source_cap=self.limits.max_per_source)
        self._logged_at[event] = now
        self._since_log[event] = 0

    async def _sweep_every(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            try:
                self.sweep(time.monotonic())
            except Exception:
                log.exception("tcp sweep failed")

    def sweep(self, now: float) -> None:
        """Close connections past their read or idle timeout."""
        lim = self.limits
        closed: dict[str, int] = {}
        for conn in list(self._conns.values()):
            if conn.peer is None:
                continue
            if conn.partial_since is not None and now - conn.partial_since > lim.read_timeout:
                reason = "read_timeout"
            elif not conn.proven and now - conn.opened > lim.read_timeout:
                reason = "no_message"
            elif (conn.transport is not None and conn.transport.is_closing()
                  and now - conn.active > lim.read_timeout):
                reason = "not_reading"  # closed by us, its last bytes never read
            elif now - conn.active > lim.idle_timeout:
                if self.in_use(conn.peer):
                    conn.active = now  # look again one idle timeout from now
                    continue
                reason = "idle"
            else:
                continue
            self._close(conn, reason)
            closed[reason] = closed.get(reason, 0) + 1
        for reason, n in closed.items():
            logs.event(log, "tcp.closed", level=logging.INFO, reason=reason, connections=n)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            if conn.transport is not None:
                conn.transport.close()
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
