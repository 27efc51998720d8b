"""SIP over TCP: framed by Content-Length, responses over the same connection (§18.3).

Outgoing requests to a TCP peer without a connection open one (RFC 3261 §18.1.1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from tongdai.sip.errors import LocalProtocolError, RemoteProtocolError
from tongdai.sip.message import make_response, serialize
from tongdai.sip.parser import FramingError, StreamFramer
from tongdai.sip.peer import Peer

log = logging.getLogger("tongdai.sip.tcp")

IDLE_TIMEOUT = 3600.0  # a registered device keeps its connection; close only dead ones


class _Conn(asyncio.Protocol):
    def __init__(self, listener: TcpListener, peer: Peer | None = None) -> None:
        self.listener = listener
        self.peer = peer
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if self.peer is None:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = Peer("tcp", str(host), int(port))
        self.listener._conns[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            # Framing is lost on a stream: handle what came before, answer the broken
            # request if it can be answered, then close (RFC 3261 §18.3).
            for msg in exc.messages:
                self.listener.on_message(msg, self.peer)
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
        pings = self.framer.take_pings()
        if pings:
            # RFC 5626 §3.5.1: answer a double-CRLF keep-alive with a single CRLF.
            self.transport.write(b"\r\n" * pings)
        for msg in messages:
            self.listener.on_message(msg, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.listener._conns.get(self.peer) is self:
            del self.listener._conns[self.peer]
            self.listener.on_closed(self.peer)


class TcpListener:
    def __init__(
        self, *, on_message: Callable[[bytes, Peer], None], on_closed: Callable[[Peer], None]
    ) -> None:
        self.on_message = on_message
        self.on_closed = on_closed
        self._server: asyncio.Server | None = None
        self._conns: dict[Peer, _Conn] = {}
        self._pending: dict[Peer, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), host, port)

    def send(self, data: bytes, peer: Peer) -> bool:
        conn = self._conns.get(peer)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
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
                timeout=5.0,
            )
        except (OSError, TimeoutError):
            self._pending.pop(peer, None)
            self.on_closed(peer)
            return
        for data in self._pending.pop(peer, []):
            self.send(data, peer)

    async def close(self) -> None:
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
