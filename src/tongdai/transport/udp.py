"""SIP over UDP: one socket, datagrams in and out (RFC 3261 §18)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from tongdai.sip.peer import Peer

log = logging.getLogger("tongdai.sip.udp")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host, port = str(addr[0]), int(str(addr[1]))
        self.listener.on_datagram(data, Peer("udp", host, port))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: UDP has no connection to fail.
        log.debug("udp error: %s", exc)


RECV_BUFFER = 8 * 1024 * 1024


def _grow_buffers(sock: socket.socket) -> None:
    """A deep receive queue rides out short pauses of the event loop under load
    instead of dropping datagrams (which peers would only retransmit, later)."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RECV_BUFFER)
            return
        except OSError:
            continue


class UdpListener:
    def __init__(self, *, on_datagram: Callable[[bytes, Peer], None]) -> None:
        self.on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _grow_buffers(sock)

    def send(self, data: bytes, peer: Peer) -> None:
        if self._transport is not None:
            self._transport.sendto(data, (peer.host.strip("[]"), peer.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
