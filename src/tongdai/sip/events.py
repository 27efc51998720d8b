"""What the SIP endpoint tells its transaction user (TU), drained with ``next_event()``."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request for the TU; answer it with ``send_response(txn, ...)``.

    ``txn`` is ``None`` for an ACK that matched no transaction (the ACK for a 2xx,
    RFC 3261 §17.1.1.3 / RFC 6026 §7.1) — it is not answered. The top Via already
    carries ``received``/``rport`` (RFC 3261 §18.2.1, RFC 3581) as we saw them; the
    responses go to ``peer``, whatever the Via claims.
    """

    request: Request
    peer: Peer
    txn: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """A CANCEL matched INVITE server transaction ``invite_txn`` that has no final response.

    The endpoint already answered the CANCEL 200 (RFC 3261 §9.2); the TU should now
    answer the INVITE 487 through ``invite_txn``. A CANCEL that matches nothing is
    answered 481 and never reaches the TU.
    """

    request: Request
    peer: Peer
    invite_txn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response to the client transaction ``txn`` that the TU created.

    For an INVITE, a 2xx may arrive more than once while the transaction waits in the
    RFC 6026 "Accepted" state (Timer M, 64*T1): a repeat of a 2xx already delivered
    comes with ``retransmission=True`` and the TU must ACK it again — unless the TU
    already sent that ACK with ``send_stateless``, in which case the endpoint re-sends
    it itself and the repeat is not reported at all.
    """

    response: Response
    txn: str
    retransmission: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StrayResponse:
    """A response that matched no client transaction (RFC 3261 §18.1.2: goes to the core).

    Typically a 2xx to an INVITE retransmitted after Timer M removed the transaction:
    a UAC core re-ACKs it if it belongs to a dialog it knows (RFC 3261 §13.2.2.4).
    """

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimeout:
    """Transaction ``txn`` gave up.

    Client side: no final response (Timer B or F; for an INVITE also 64*T1 after a
    CANCEL that brought no final response, RFC 3261 §9.1). Server INVITE side: no ACK
    for a non-2xx final (Timer H), or no ACK for a 2xx within 64*T1 (RFC 3261 §13.3.1.4:
    the TU should send BYE).
    """

    txn: str
    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportError:
    """The shell could not send to ``peer``; ``txn`` was terminated (RFC 3261 §17.1.4, §17.2.4).

    ``txn`` is ``None`` when no transaction was using that peer.
    """

    txn: str | None
    peer: Peer


SipEvent = (
    RequestReceived | CancelReceived | ResponseReceived | StrayResponse
    | TransactionTimeout | TransportError
)
