"""SIP over WebSocket (RFC 7118): one SIP message per websocket message.

A browser (or any RFC 7118 client) opens a websocket with the ``sip`` subprotocol
(RFC 7118 §4: a handshake without it is refused) and sends each SIP message as one
text or binary message (§5). A ``Peer`` names the connection by its remote address
and the scheme of the listener (``ws`` or ``wss``); our Via then reads ``SIP/2.0/WS``
or ``SIP/2.0/WSS`` (§5). A server cannot open a websocket to a client, so requests to
a device registered over one go back over its connection or nowhere: sending to a
peer without a live connection fails at once, which ends the transaction (RFC 3261
§18.4) instead of ringing into the void.

The handshake and framing are the ``websockets`` library's. The limits are the TCP
listener's (``TcpLimits``): the handshake and the first SIP message must come within
the read timeout; a connection silent either way for the idle timeout is closed
unless it carries a live registration or transaction; connections per source address
and in all are capped; a peer that does not read what we queue is dropped. Websocket
pings (``ping_interval``) detect a browser whose network went away.

Cross-site websocket hijacking: a page on any site could make a visitor's browser
open a websocket here. Only the origins listed are accepted; with none listed, a
handshake without ``Origin`` (not a browser) or with an origin on the host the
client connected to (a page tongdai serves itself).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from tongdai import logs
from tongdai.sip.peer import Peer
from tongdai.transport.tcp import SWEEP_MAX, SWEEP_MIN, TcpLimits

log = logging.getLogger("tongdai.sip.ws")

SUBPROTOCOL = Subprotocol("sip")  # RFC 7118 §3 (IANA WebSocket Subprotocol Name)
# Seconds between our websocket pings, and for the pong before the connection is
# deemed dead (its registration then stops being reachable).
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
# RFC 5626 §4.4.1 double-CRLF keep-alive, which some clients send over websockets too.
_PING = "\r\n\r\n"
_PONG = "\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class WsConfig:
    """One websocket listener: ``scheme`` ws (plain) or wss (``tls`` set)."""

    scheme: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    # Allowed Origin values ("https://crm.example.vn"), or "*" for any; empty: no
    # Origin, or one on the host the client connected to (see the module docstring).
    origins: tuple[str, ...] = ()
    ping_interval: float = PING_INTERVAL


def origin_allowed(origin: str | None, host_header: str | None, allowed: tuple[str, ...]
                   ) -> bool:
    """Whether a handshake with this ``Origin`` may open a SIP websocket."""
    if origin is None:
        return not allowed or "*" in allowed or "" in allowed
    if "*" in allowed:
        return True
    if allowed:
        return origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}
    # "null" (a sandboxed frame, a file: page) and anything unparsable are refused.
    try:
        origin_host = urlsplit(origin).hostname
        own_host = urlsplit(f"//{host_header}").hostname if host_header else None
    except ValueError:
        return False
    return origin_host is not None and origin_host == own_host


class _Conn:
    """One accepted websocket: what we still have to send it, and when it was active."""

    def __init__(self, ws: ServerConnection, peer: Peer) -> None:
        self.ws = ws
        self.peer = peer
        now = time.monotonic()
        self.opened = now
        self.active = now  # last message or keep-alive, either way
        self.proven = False  # delivered a SIP message
        self.out: deque[bytes | str] = deque()
        self.queued = 0  # bytes in ``out``
        self.wake = asyncio.Event()

    def queue(self, data: bytes | str) -> None:
        self.out.append(data)
        self.queued += len(data)
        self.wake.set()

    async def write_loop(self) -> None:
        # ``send`` waits while the peer does not read; messages keep their order.
        ws = self.ws
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.out:
                    data = self.out.popleft()
                    self.queued -= len(data)
                    await ws.send(data)
        except ConnectionClosed:
            return


class WsListener:
    """A ws or wss listener; ``send`` is synchronous, like the UDP and TCP ones."""

    def __init__(
        self, *, config: WsConfig, on_message: Callable[[bytes, Peer], None],
        on_closed: Callable[[Peer], None], limits: TcpLimits | None = None,
        in_use: Callable[[Peer], bool] = lambda peer: False, max_message_size: int = 65535,
    ) -> None:
        if config.scheme not in ("ws", "wss") or (config.scheme == "wss") != (config.tls
                                                                              is not None):
            raise ValueError("a ws listener has no TLS context; a wss listener needs one")
        self.config = config
        self.scheme = config.scheme
        self.on_message = on_message
        self.on_closed = on_closed
        self.limits = limits or TcpLimits()
        self.in_use = in_use
        self.max_message_size = max_message_size
        self.cap = self.limits.connection_cap()
        self.port = config.port
        self._server: Server | None = None
        self._conns: dict[Peer, _Conn] = {}
        self._per_source: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.counters = {"refused": 0, "bad_origin": 0, "no_message": 0, "idle": 0,
                         "not_reading": 0}

    @property
    def connections(self) -> int:
        return len(self._conns)

    @property
    def listening(self) -> bool:
        """Whether the listening socket accepts connections."""
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        cfg = self.config
        lim = self.limits
        self._server = await serve(
            self._serve, cfg.host, cfg.port, ssl=cfg.tls,
            subprotocols=[SUBPROTOCOL], process_request=self._check_request,
            # SIP messages are small; inflating them costs CPU and invites zip bombs.
            compression=None, server_header=None,
            open_timeout=lim.read_timeout, ping_interval=cfg.ping_interval,
            ping_timeout=PING_TIMEOUT, close_timeout=CLOSE_TIMEOUT,
            max_size=self.max_message_size, logger=_library_log(),
        )
        for sock in self._server.sockets:
            self.port = int(sock.getsockname()[1])
            break
        tick = min(SWEEP_MAX, max(SWEEP_MIN, min(lim.read_timeout, lim.idle_timeout) / 4))
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_every(tick), name=f"{self.scheme}-sweeper")

    def send(self, data: bytes, peer: Peer) -> bool:
        """Queue ``data`` on ``peer``'s connection; False when it has none."""
        conn = self._conns.get(peer)
        if conn is None:
            return False
        try:
            # RFC 7118 §5.1: text frames carry UTF-8; anything else goes as binary.
            conn.queue(data.decode("utf-8"))
        except UnicodeDecodeError:
            conn.queue(data)
        conn.active = time.monotonic()
        if conn.queued > self.limits.max_write_buffer:
            self._abort(conn, "not_reading")
        return True

    # Handshake -------------------------------------------------------------

    def _check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        host = _remote_host(ws)
        origins, hosts = headers.get_all("Origin"), headers.get_all("Host")
        # Two Origin (or Host) headers: no browser sends them; refuse rather than guess.
        if len(origins) > 1 or len(hosts) > 1 or not origin_allowed(
                origins[0] if origins else None, hosts[0] if hosts else None,
                self.config.origins):
            self.counters["bad_origin"] += 1
            logs.event(log, "ws.refused", level=logging.INFO, scheme=self.scheme, source=host,
                       reason="origin")
            return _reject(HTTPStatus.FORBIDDEN, "Origin not allowed.\n")
        # The caps of TcpLimits; counted once the handshake is done (see _serve).
        if host is not None and self._per_source.get(host, 0) >= self.limits.max_per_source:
            return self._refuse(host, "per_source_cap")
        if len(self._conns) >= self.cap:
            return self._refuse(host, "connection_cap")
        return None

    def _refuse(self, host: str | None, reason: str) -> Response:
        self.counters["refused"] += 1
        logs.event(log, "ws.refused", level=logging.WARNING, scheme=self.scheme, source=host,
                   reason=reason, connections=len(self._conns), cap=self.cap)
        return _reject(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections.\n")

    # Connection ------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        host = _remote_host(ws)
        if host is None:
            return
        peer = Peer(self.scheme, host, int(ws.remote_address[1]))
        conn = _Conn(ws, peer)
        self._conns[peer] = conn
        self._per_source[host] = self._per_source.get(host, 0) + 1
        writer = asyncio.get_running_loop().create_task(conn.write_loop())
        try:
            async for message in ws:
                conn.active = time.monotonic()
                if isinstance(message, str):
                    if not message.strip("\r\n"):
                        if message == _PING:
                            conn.queue(_PONG)
                        continue
                    data = message.encode("utf-8")
                else:
                    if not message.strip(b"\r\n"):
                        continue
                    data = message
                conn.proven = True
                self._deliver(data, peer)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            held = self._per_source.get(host, 1) - 1
            if held > 0:
                self._per_source[host] = held
            else:
                self._per_source.pop(host, None)
            if self._conns.get(peer) is conn:
                del self._conns[peer]
                self.on_closed(peer)

    def _deliver(self, data: bytes, peer: Peer) -> None:
        try:
            self.on_message(data, peer)
        except Exception:
            # Our bug, not the peer's: the connection (and its registration) stays.
            log.exception("%s message from %s:%s not handled", self.scheme, peer.host,
                          peer.port)

    # Limits ----------------------------------------------------------------

    def _abort(self, conn: _Conn, reason: str) -> None:
        self.counters[reason] += 1
        transport = conn.ws.transport
        if transport is not None:
            transport.abort()  # a peer that does not read would hold a clean close open

    def _close(self, conn: _Conn, reason: str) -> None:
        self.counters[reason] += 1
        task = asyncio.get_running_loop().create_task(conn.ws.close(1001, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_every(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            try:
                self.sweep(time.monotonic())
            except Exception:
                log.exception("%s sweep failed", self.scheme)

    def sweep(self, now: float) -> None:
        """Close connections past their read or idle timeout."""
        lim = self.limits
        closed: dict[str, int] = {}
        for conn in list(self._conns.values()):
            if not conn.proven and now - conn.opened > lim.read_timeout:
                reason = "no_message"
            elif now - conn.active > lim.idle_timeout:
                if self.in_use(conn.peer):
                    conn.active = now  # look again one idle timeout from now
                    continue
                reason = "idle"
            else:
                continue
            conn.opened = conn.active = float("inf")  # closing: do not count it twice
            self._close(conn, reason)
            closed[reason] = closed.get(reason, 0) + 1
        for reason, n in closed.items():
            logs.event(log, "ws.closed", level=logging.INFO, scheme=self.scheme, reason=reason,
                       connections=n)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def _library_log() -> logging.Logger:
    # The library logs every connection opened or refused at info: a browser fleet
    # (or a scanner) would flood the log. Ours are the ws.* events; its warnings stay.
    lib = logging.getLogger("tongdai.sip.ws.lib")
    if lib.level == logging.NOTSET:
        lib.setLevel(logging.WARNING)
    return lib


def _remote_host(ws: ServerConnection) -> str | None:
    addr = ws.remote_address
    return str(addr[0]) if addr else None


def _reject(status: HTTPStatus, text: str) -> Response:
    body = text.encode()
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)
