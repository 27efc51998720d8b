"""The asyncio shell around the sans-I/O SIP endpoint.

It feeds datagrams and framed stream messages into ``Endpoint.receive``, sends what
``datagrams_to_send`` yields over UDP or the right TCP connection, re-arms a single
timer from ``get_timer`` and hands every event to the transaction user. It holds no
protocol logic (after aioquic's ``asyncio/protocol.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from tongdai.sip.endpoint import Endpoint
from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import SipEvent
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.transport.tcp import TcpListener
from tongdai.transport.udp import UdpListener

log = logging.getLogger("tongdai.sip")


class TransactionUser(Protocol):
    def on_sip_event(self, event: SipEvent) -> None:
        """Handle one endpoint event; must not block (spawn tasks for slow work)."""


class SipShell:
    """Owns the endpoint, both listeners and the timer."""

    def __init__(self, *, endpoint: Endpoint, host: str, port: int) -> None:
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self._tu: TransactionUser | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._udp = UdpListener(on_datagram=self._on_data)
        self._tcp = TcpListener(on_message=self._on_data, on_closed=self._on_tcp_closed)
        self.clock: Callable[[], float] = lambda: 0.0
        self._pumping = False

    def set_user(self, tu: TransactionUser) -> None:
        self._tu = tu

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.clock = self._loop.time
        await self._udp.start(self.host, self.port)
        # Port 0 asks the OS; TCP then shares the UDP port (same port for both, §18).
        self.port = self._udp.port
        await self._tcp.start(self.host, self.port)

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._udp.close()
        await self._tcp.close()

    def now(self) -> float:
        return self.clock()

    # Input ---------------------------------------------------------------

    def _on_data(self, data: bytes, peer: Peer) -> None:
        self.endpoint.receive(data, peer, self.clock())
        self.pump()

    def _on_tcp_closed(self, peer: Peer) -> None:
        self.endpoint.transport_failed(peer, self.clock())
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.clock())
        self.pump()

    # Output --------------------------------------------------------------

    def send_request(self, request: Request, peer: Peer) -> str:
        txn = self.endpoint.send_request(request, peer, self.clock())
        self.pump()
        return txn

    def send_response(self, txn: str, response: Response) -> None:
        try:
            self.endpoint.send_response(txn, response, self.clock())
        except LocalProtocolError as exc:
            # The transaction ended while we worked (timeout, closed connection).
            log.debug("response %d not sent: %s", response.status, exc)
            return
        self.pump()

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        self.endpoint.send_stateless(message, peer)
        self.pump()

    def cancel(self, invite_txn: str) -> str | None:
        txn = self.endpoint.cancel(invite_txn, self.clock())
        self.pump()
        return txn

    def pump(self) -> None:
        """Deliver events, send data and re-arm the timer; call after any input.

        Re-entrant calls (a handler answering from inside ``on_sip_event``) return at
        once: the outer loop flushes what they produced.
        """
        if self._pumping:
            return
        self._pumping = True
        ep = self.endpoint
        tu = self._tu
        try:
            while True:
                ev = ep.next_event()
                while ev is not None:
                    if tu is not None:
                        try:
                            tu.on_sip_event(ev)
                        except Exception:
                            log.exception("transaction user failed on %s", type(ev).__name__)
                    ev = ep.next_event()
                out = ep.datagrams_to_send()
                if not out:
                    break
                for data, peer in out:
                    if peer.transport == "tcp":
                        if not self._tcp.send(data, peer):
                            ep.transport_failed(peer, self.clock())
                    else:
                        self._udp.send(data, peer)
        finally:
            self._pumping = False
        self._arm()

    def _arm(self) -> None:
        at = self.endpoint.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None and self._loop is not None:
            self._timer = self._loop.call_at(at, self._on_timer)
