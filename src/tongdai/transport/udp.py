"""SIP over UDP: one socket, datagrams in and out (RFC 3261 §18)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from tongdai.sip.peer import Peer

log = logging.getLogger("tongdai.sip.udp")

NAME_TTL = 300.0  # seconds a resolved host name is reused (no DNS TTLs from getaddrinfo)
RESOLVE_TIMEOUT = 5.0  # seconds to resolve a peer's host name before its requests fail


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


def _is_address(host: str, family: int) -> bool:
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


class UdpListener:
    """The UDP socket. ``send`` never raises: a datagram that cannot be sent (an
    address of the other family, a name that does not resolve) is reported through
    ``on_failed`` so the transactions using that peer end (RFC 3261 §17.1.4)."""

    def __init__(
        self, *, on_datagram: Callable[[bytes, Peer], None],
        on_failed: Callable[[Peer], None] = lambda peer: None,
    ) -> None:
        self.on_datagram = on_datagram
        self.on_failed = on_failed
        self._transport: asyncio.DatagramTransport | None = None
        self._family = socket.AF_INET
        self.port = 0
        self._names: dict[str, tuple[str, float]] = {}  # host name -> (address, until)
        self._resolving: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        """Whether the socket is bound and open."""
        return self._transport is not None and not self._transport.is_closing()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._family = sock.family
            _grow_buffers(sock)

    def send(self, data: bytes, peer: Peer) -> bool:
        """Send ``data``; False when ``peer`` cannot be reached from this socket."""
        transport = self._transport
        if transport is None:
            return True
        host = peer.host.strip("[]")
        if not _is_address(host, self._family):
            other = socket.AF_INET6 if self._family == socket.AF_INET else socket.AF_INET
            if _is_address(host, other):
                log.debug("udp: %s is of the other address family", host)
                return False
            # A name (a trunk's host): resolve it off the event loop. asyncio's
            # sendto would resolve it blocking the loop; uvloop's refuses it.
            cached = self._names.get(host)
            if cached is None or cached[1] < asyncio.get_running_loop().time():
                self._resolve(host, peer.port, data)
                return True
            host = cached[0]
        try:
            transport.sendto(data, (host, peer.port))
        except (OSError, ValueError) as exc:
            log.debug("udp: cannot send to %s:%s: %s", host, peer.port, exc)
            return False
        return True

    def _resolve(self, host: str, port: int, data: bytes) -> None:
        key = (host, port)
        queued = self._resolving.get(key)
        if queued is not None:
            queued.append(data)
            return
        self._resolving[key] = [data]
        task = asyncio.get_running_loop().create_task(self._lookup(host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        peer = Peer("udp", host, port)
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, family=self._family, type=socket.SOCK_DGRAM),
                timeout=RESOLVE_TIMEOUT,
            )
        except (OSError, TimeoutError, UnicodeError) as exc:
            log.info("udp: cannot resolve %s: %s", host, exc)
            self._resolving.pop((host, port), None)
            self.on_failed(peer)
            return
        self._names[host] = (str(infos[0][4][0]), loop.time() + NAME_TTL)
        for data in self._resolving.pop((host, port), []):
            if not self.send(data, peer):
                self.on_failed(peer)
                return

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
