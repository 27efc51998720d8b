"""The driver's SIP side: the core's requests, responses, ACKs and CANCELs go out
through a ``SipSender``, and it remembers which endpoint transaction carries which of
the core's client transactions (the core's ``ref``) until the final response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tongdai.media.engine import MediaSession
from tongdai.pbx.b2bua.actions import CancelLeg, Respond, SendAck, SendRequest
from tongdai.pbx.webrtc_edge import WebRtcEdge
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer


class SipSender(Protocol):
    """What the driver needs of the SIP shell."""

    def send_request(self, request: Request, peer: Peer) -> str: ...
    def send_response(self, txn: str, response: Response) -> None: ...
    def send_stateless(self, message: Request | Response, peer: Peer) -> None: ...
    def cancel(self, invite_txn: str) -> str | None: ...


class Signalling:
    """Performs the core's SIP actions; a browser's leg gets its SDP made WebRTC on
    the way out (``pbx/webrtc_edge``)."""

    def __init__(self, *, sender: SipSender, webrtc: WebRtcEdge,
                 sessions: Mapping[str, MediaSession]) -> None:
        self.sender = sender
        self.webrtc = webrtc
        self.sessions = sessions  # the calls' media sessions (``CallMedia.sessions``)
        self._refs: dict[str, str] = {}  # endpoint txn → the core's ref
        self._txns: dict[str, str] = {}  # and back, while the transaction lives

    def send_request(self, a: SendRequest) -> None:
        self.webrtc.outgoing(a.request, a.peer, self.sessions)
        sent = self.sender.send_request(a.request, a.peer)
        self._refs[sent] = a.ref
        self._txns[a.ref] = sent

    def respond(self, a: Respond) -> None:
        self.webrtc.outgoing(a.response, None, self.sessions)
        self.sender.send_response(a.txn, a.response)

    def send_ack(self, a: SendAck) -> None:
        self.webrtc.outgoing(a.ack, a.peer, self.sessions)
        self.sender.send_stateless(a.ack, a.peer)

    def cancel_leg(self, a: CancelLeg) -> None:
        if (invite_txn := self._txns.get(a.ref)) is not None:
            self.sender.cancel(invite_txn)

    def ref(self, txn: str) -> str | None:
        """The core's ref for an endpoint transaction of ours (None: not a call's)."""
        return self._refs.get(txn)

    def forget(self, txn: str) -> str | None:
        """Forget a finished transaction; its ref, if it was a call's."""
        ref = self._refs.pop(txn, None)
        if ref is not None:
            self._txns.pop(ref, None)
        return ref
