"""The transaction user: routes endpoint events to the registrar and the call layer."""

from __future__ import annotations

import logging
from typing import Protocol

from tongdai.pbx.capabilities import ACCEPT, ALLOW, SUPPORTED
from tongdai.pbx.registrar import Registrar
from tongdai.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    StrayResponse,
    TransactionTimeout,
    TransportError,
)
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer

log = logging.getLogger("tongdai.router")

# Requests the call layer handles or answers (PRACK and REFER with 501 until implemented).
CALL_METHODS = frozenset({"INVITE", "ACK", "BYE", "UPDATE", "INFO", "PRACK", "NOTIFY", "REFER"})
# Methods we know but do not offer (RFC 3261 §21.4.6 405 with Allow).
KNOWN_NOT_ALLOWED = frozenset({"SUBSCRIBE", "PUBLISH", "MESSAGE"})


class CallHandler(Protocol):
    def on_request(self, req: Request, peer: Peer, txn: str | None) -> None: ...
    def on_cancel(self, req: Request, peer: Peer, invite_txn: str) -> None: ...
    def on_response(self, resp: Response, txn: str) -> None: ...
    def on_timeout(self, txn: str, req: Request) -> None: ...
    def on_stray(self, resp: Response, peer: Peer) -> None: ...
    def on_transport_error(self, txn: str) -> None: ...


class Responder(Protocol):
    def send_response(self, txn: str, response: Response) -> None: ...


class SipRouter:
    def __init__(self, *, registrar: Registrar, shell: Responder, user_agent: str) -> None:
        self.registrar = registrar
        self.shell = shell
        self.user_agent = user_agent
        self.calls: CallHandler | None = None

    def on_sip_event(self, event: SipEvent) -> None:
        match event:
            case RequestReceived(request=req, peer=peer, txn=txn):
                self._request(req, peer, txn)
            case CancelReceived(request=req, peer=peer, invite_txn=inv):
                if self.calls is not None:
                    self.calls.on_cancel(req, peer, inv)
            case ResponseReceived(response=resp, txn=txn):
                if self.calls is not None:
                    self.calls.on_response(resp, txn)
            case TransactionTimeout(txn=txn, request=req):
                if self.calls is not None:
                    self.calls.on_timeout(txn, req)
            case StrayResponse(response=resp, peer=peer):
                if self.calls is not None:
                    self.calls.on_stray(resp, peer)
            case TransportError(txn=txn) if txn is not None:
                if self.calls is not None:
                    self.calls.on_transport_error(txn)
            case _:
                pass

    def _request(self, req: Request, peer: Peer, txn: str | None) -> None:
        method = req.method
        if method == "REGISTER" and txn is not None:
            self.registrar.handle(req, peer, txn)
        elif method in CALL_METHODS and self.calls is not None:
            self.calls.on_request(req, peer, txn)
        elif txn is None:
            return  # an ACK nobody wants: nothing to answer
        elif method == "OPTIONS":
            resp = make_response(req, 200)
            resp.headers.add("allow", ALLOW)
            resp.headers.add("accept", ACCEPT)
            if SUPPORTED:
                resp.headers.add("supported", ", ".join(SUPPORTED))
            resp.headers.add("server", self.user_agent)
            self.shell.send_response(txn, resp)
        elif method in KNOWN_NOT_ALLOWED or method in CALL_METHODS:
            resp = make_response(req, 405)
            resp.headers.add("allow", ALLOW)
            self.shell.send_response(txn, resp)
        else:
            resp = make_response(req, 501)
            resp.headers.add("allow", ALLOW)
            self.shell.send_response(txn, resp)
