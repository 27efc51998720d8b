"""The two error families of the SIP core (after h11): our misuse and the peer's fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tongdai.sip.message import Request


class LocalProtocolError(Exception):
    """We asked the protocol layer to do something the state machine forbids."""


class RemoteProtocolError(Exception):
    """The peer sent something malformed or out of place.

    ``status`` is the response to send back (400, 420, 481, 513, ...), or ``None``
    when the message cannot be answered and must be dropped. ``request`` is the
    partially parsed request when the parser got far enough to answer it with
    ``make_response`` (Via, From, To, Call-ID and CSeq present).
    """

    def __init__(
        self, status: int | None, reason: str, *, request: Request | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.request = request
