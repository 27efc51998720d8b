"""The asyncio shell around the sans-I/O SIP endpoint.

It feeds datagrams and framed stream messages into ``Endpoint.receive``, sends what
``datagrams_to_send`` yields over UDP or the right TCP connection, re-arms a single
timer from ``get_timer`` and hands every event to the transaction user. It holds no
protocol logic (after aioquic's ``asyncio/protocol.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tongdai.sip.endpoint import Endpoint
from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import SipEvent
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.transport.tcp import TcpLimits, TcpListener
from tongdai.transport.udp import UdpListener
from tongdai.transport.ws import WsConfig, WsListener

log = logging.getLogger("tongdai.sip")


class TransactionUser(Protocol):
    def on_sip_event(self, event: SipEvent) -> None:
        """Handle one endpoint event; must not block (spawn tasks for slow work)."""


class SipShell:
    """Owns the endpoint, the listeners and the timer."""

    def __init__(
        self, *, endpoint: Endpoint, host: str, port: int, tcp_limits: TcpLimits | None = None,
        in_use: Callable[[Peer], bool] = lambda peer: False,
        websockets: Sequence[WsConfig] = (),
        on_unreachable: Callable[[Peer], object] = lambda peer: None,
    ) -> None:
        """``in_use(peer)``: whether a TCP or websocket connection idle past its timeout
        must stay open (it carries a live registration); live transactions keep it open
        too. ``websockets``: the ws/wss listeners (RFC 7118) to run beside UDP and TCP.
        ``on_unreachable(peer)``: a websocket closed; nothing can reach that peer again."""
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self._in_use = in_use
        self._tu: TransactionUser | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._udp = UdpListener(on_datagram=self._on_data, on_failed=self._on_transport_failed)
        self._tcp = TcpListener(on_message=self._on_data, on_closed=self._on_transport_failed,
                                limits=tcp_limits, in_use=self._connection_in_use)
        self._on_unreachable = on_unreachable
        # Which listener ``start`` was binding when it failed: "sip", "ws" or "wss".
        self.starting = "sip"
        self._ws = {
            cfg.scheme: WsListener(
                config=cfg, on_message=self._on_data, on_closed=self._on_ws_closed,
                limits=tcp_limits, in_use=self._connection_in_use,
                max_message_size=endpoint.max_message_size,
            )
            for cfg in websockets
        }
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
        for scheme, ws in self._ws.items():
            self.starting = scheme
            await ws.start()
        self.starting = "sip"

    def ws_port(self, scheme: str) -> int | None:
        """The port the ``ws`` or ``wss`` listener is bound to; None when it is off."""
        listener = self._ws.get(scheme)
        return listener.port if listener is not None else None

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._udp.close()
        await self._tcp.close()
        for ws in self._ws.values():
            await ws.close()

    def listening(self) -> dict[str, bool]:
        """Each SIP transport and whether it is bound (``/readyz``)."""
        return {"udp": self._udp.listening, "tcp": self._tcp.listening,
                **{scheme: ws.listening for scheme, ws in self._ws.items()}}

    def now(self) -> float:
        return self.clock()

    # Input ---------------------------------------------------------------

    def _on_data(self, data: bytes, peer: Peer) -> None:
        self.endpoint.receive(data, peer, self.clock())
        self.pump()

    def _on_transport_failed(self, peer: Peer) -> None:
        """A TCP connection closed, or a peer cannot be sent to (§17.1.4, §18.4)."""
        self.endpoint.transport_failed(peer, self.clock())
        self.pump()

    def _on_ws_closed(self, peer: Peer) -> None:
        # A server cannot open a websocket to a client (RFC 7118 §5): the peer is gone.
        self._on_transport_failed(peer)
        try:
            self._on_unreachable(peer)
        except Exception:
            log.exception("forgetting %s:%s over %s failed", peer.host, peer.port,
                          peer.transport)

    def _connection_in_use(self, peer: Peer) -> bool:
        return self.endpoint.uses(peer) or self._in_use(peer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.endpoint.handle_timer(self.clock())
        finally:
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
                    if not self._send(data, peer):
                        ep.transport_failed(peer, self.clock())
        finally:
            self._pumping = False
            # Whatever happened above, the next timer must fire (Timer G/H/J...).
            self._arm()

    def _send(self, data: bytes, peer: Peer) -> bool:
        try:
            if peer.transport == "tcp":
                return self._tcp.send(data, peer)
            ws = self._ws.get(peer.transport)
            if ws is not None:
                return ws.send(data, peer)
            if peer.transport in ("ws", "wss"):
                return False  # that listener is off: nothing can reach the peer
            return self._udp.send(data, peer)
        except Exception:
            log.exception("sending to %s:%s over %s failed", peer.host, peer.port,
                          peer.transport)
            return False

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
