"""SIP dialogs (RFC 3261 §12): one side's state of a peer-to-peer relationship.

A dialog is identified by Call-ID, local tag and remote tag; it remembers the route
set, the remote target and both CSeq spaces, and builds in-dialog requests from them.
It does no I/O: the TU hands what it builds to the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.message import Headers, Request, Response

# Requests whose Contact replaces the remote target (RFC 3261 §12.2, RFC 3311 §5.2,
# RFC 6665 §4.1.3, RFC 3515 §2.4.1).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(StrEnum):
    CONFIRM = "2xx to the INVITE"
    REJECT = "non-2xx final to the INVITE"  # §12.3: ends an early dialog
    GONE = "408/481 in the dialog"  # §12.2.1.2
    END = "BYE or TU decision"


_E, _C, _T = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED
TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (_E, DialogInput.CONFIRM): _C,
    (_E, DialogInput.REJECT): _T,
    (_E, DialogInput.GONE): _T,
    (_E, DialogInput.END): _T,
    (_C, DialogInput.CONFIRM): _C,  # a 2xx to a re-INVITE
    (_C, DialogInput.REJECT): _C,  # a rejected re-INVITE leaves the dialog as it was
    (_C, DialogInput.GONE): _T,
    (_C, DialogInput.END): _T,
    (_T, DialogInput.CONFIRM): _T,
    (_T, DialogInput.REJECT): _T,
    (_T, DialogInput.GONE): _T,
    (_T, DialogInput.END): _T,
}


def addr_spec(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (``"A" <sip:a@b>;tag=1`` → ``sip:a@b``)."""
    v = value.strip()
    start = 0
    if v.startswith('"'):
        i = 1
        while i < len(v):
            if v[i] == "\\":
                i += 2
                continue
            if v[i] == '"':
                break
            i += 1
        start = i + 1
    lt = v.find("<", start)
    if lt >= 0:
        gt = v.find(">", lt)
        return v[lt + 1: gt if gt > 0 else len(v)].strip()
    # RFC 3261 §20.10: without <>, parameters after ";" belong to the header.
    return v.split(";", 1)[0].strip()


def is_loose(uri: str) -> bool:
    """Whether a route URI carries ``lr`` (RFC 3261 §19.1.1, §16.12)."""
    params = uri.split("?", 1)[0].split(";")[1:]
    return any(p.split("=", 1)[0].strip().lower() == "lr" for p in params)


def _contact(msg: Request | Response) -> str | None:
    values = msg.headers.values("contact")
    if not values or values[0].strip() == "*":
        return None
    return addr_spec(values[0])


def dialog_id_of(msg: Request | Response, *, uas: bool) -> tuple[str, str, str]:
    """(Call-ID, local tag, remote tag) of the dialog ``msg`` belongs to, from our side.

    ``uas=True`` for a request we received (we are its UAS: local tag in To);
    ``uas=False`` for a response to a request we sent (local tag in From).
    """
    if uas:
        return msg.call_id, msg.to_tag, msg.from_tag
    return msg.call_id, msg.from_tag, msg.to_tag


class Dialog:
    """One side of one dialog. Build with ``from_uas`` or ``from_uac``."""

    __slots__ = (
        "call_id", "local_address", "local_contact", "local_seq", "local_tag",
        "remote_address", "remote_seq", "remote_tag", "remote_target", "route_set",
        "secure", "state", "uas",
    )

    def __init__(
        self, *, call_id: str, local_tag: str, remote_tag: str, local_address: str,
        remote_address: str, remote_target: str, route_set: list[str],
        local_seq: int | None, remote_seq: int | None, secure: bool, state: DialogState,
        local_contact: str | None, uas: bool,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_address = local_address  # our From value, tag included
        self.remote_address = remote_address  # our To value, tag included
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.state = state
        self.local_contact = local_contact
        self.uas = uas

    def __repr__(self) -> str:
        return f"<Dialog {self.state} {self.id}>"

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def local_uri(self) -> str:
        return addr_spec(self.local_address)

    @property
    def remote_uri(self) -> str:
        return addr_spec(self.remote_address)

    @classmethod
    def from_uas(cls, request: Request, response: Response, *, local_contact: str) -> Dialog:
        """The dialog our 1xx (with a To tag) or 2xx to ``request`` creates (RFC 3261 §12.1.1)."""
        status = response.status
        if not 101 <= status <= 299:
            raise LocalProtocolError(f"a {status} response does not create a dialog")
        local_tag = response.to_tag
        if not local_tag:
            raise LocalProtocolError("the response creating a dialog needs a To tag")
        remote_target = _contact(request)
        if remote_target is None:
            raise LocalProtocolError("the request has no Contact to use as remote target")
        to = response.headers.get("to") or ""
        return cls(
            call_id=request.call_id, local_tag=local_tag, remote_tag=request.from_tag,
            local_address=to, remote_address=request.headers.get("from") or "",
            remote_target=remote_target,
            # §12.1.1: the Record-Route values in order.
            route_set=request.headers.values("record-route"),
            local_seq=None, remote_seq=request.cseq[0],
            secure=request.uri.lower().startswith("sips:"),
            state=_E if status < 200 else _C, local_contact=local_contact, uas=True,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 1xx-with-tag or 2xx to our ``request`` creates (RFC 3261 §12.1.2)."""
        status = response.status
        if not 101 <= status <= 299:
            raise LocalProtocolError(f"a {status} response does not create a dialog")
        contact = request.headers.values("contact")
        return cls(
            call_id=request.call_id, local_tag=request.from_tag,
            # §12.1.2: a response without a To tag has a null remote tag.
            remote_tag=response.to_tag, local_address=request.headers.get("from") or "",
            remote_address=response.headers.get("to") or "",
            remote_target=_contact(response) or request.uri,
            # §12.1.2: the Record-Route values in reverse order.
            route_set=response.headers.values("record-route")[::-1],
            local_seq=request.cseq[0], remote_seq=None,
            secure=request.uri.lower().startswith("sips:"),
            state=_E if status < 200 else _C,
            local_contact=contact[0] if contact else None, uas=False,
        )

    def _fire(self, inp: DialogInput) -> None:
        self.state = TRANSITIONS[(self.state, inp)]

    def confirm(self) -> None:
        """UAS side: we sent the 2xx that confirms an early dialog."""
        self._fire(DialogInput.CONFIRM)

    def terminate(self) -> None:
        """BYE sent or received, or the session otherwise over (RFC 3261 §15)."""
        self._fire(DialogInput.END)

    def next_hop(self) -> str:
        """The URI to send in-dialog requests to: the first route, else the remote target."""
        return addr_spec(self.route_set[0]) if self.route_set else self.remote_target

    def _target(self) -> tuple[str, list[str]]:
        # RFC 3261 §12.2.1.1: loose routing keeps the remote target as Request-URI;
        # a strict router in front gets its URI as Request-URI and the remote target
        # appended to the Route set.
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        first = addr_spec(routes[0])
        if is_loose(first):
            return self.remote_target, list(routes)
        return first.split("?", 1)[0], [*routes[1:], f"<{self.remote_target}>"]

    def _build(
        self, method: str, seq: int, body: bytes, content_type: str | None,
        headers: Iterable[tuple[str, str | int]],
    ) -> Request:
        if self.state is _T:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        uri, routes = self._target()
        h = Headers()
        h.add("from", self.local_address)
        h.add("to", self.remote_address)
        h.add("call-id", self.call_id)
        h.add("cseq", f"{seq} {method}")
        for route in routes:
            h.add("route", route)
        if method in TARGET_REFRESH and self.local_contact:
            h.add("contact", self.local_contact)  # §12.2.1.1, §14.1
        for name, value in headers:
            h.add(name, value)
        if content_type:
            h.set("content-type", content_type)
        return Request(method=method, uri=uri, headers=h, body=body)

    def create_request(
        self, method: str, *, body: bytes = b"", content_type: str | None = None,
        headers: Iterable[tuple[str, str | int]] = (),
    ) -> Request:
        """An in-dialog request with the next local CSeq (RFC 3261 §12.2.1.1).

        For an ACK use ``create_ack``; a CANCEL comes from ``Endpoint.cancel``.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(
                f"{method} reuses its INVITE's CSeq: use create_ack / Endpoint.cancel"
            )
        if self.state is _T:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        # §8.1.1.5: an empty local sequence number starts anywhere below 2**31.
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self._build(method, self.local_seq, body, content_type, headers)

    def create_ack(
        self, invite_cseq: int, *, body: bytes = b"", content_type: str | None = None,
        headers: Iterable[tuple[str, str | int]] = (),
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (RFC 3261 §13.2.2.4)."""
        return self._build("ACK", invite_cseq, body, content_type, headers)

    def receive_request(self, request: Request) -> bool:
        """Check and absorb an in-dialog request (RFC 3261 §12.2.2).

        ``False`` means its CSeq is lower than the last one: answer 500. A target
        refresh request with a Contact replaces the remote target.
        """
        num, method = request.cseq
        if method in ("ACK", "CANCEL"):
            return True  # they carry the CSeq of the INVITE they belong to
        if self.remote_seq is not None and num < self.remote_seq:
            return False
        self.remote_seq = num
        if method in TARGET_REFRESH:
            target = _contact(request)
            if target is not None:
                self.remote_target = target
        return True

    def update_from_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog (RFC 3261 §12.2.1.2, §13.2.2.4)."""
        status = response.status
        method = response.cseq[1]
        if status in (408, 481):
            self._fire(DialogInput.GONE)
            return
        if method == "INVITE":
            if 200 <= status < 300:
                if self.state is _E and not self.uas:
                    # §13.2.2.4: the route set is recomputed from the 2xx.
                    self.route_set = response.headers.values("record-route")[::-1]
                self._fire(DialogInput.CONFIRM)
            elif status >= 300:
                self._fire(DialogInput.REJECT)
        if method in TARGET_REFRESH and (
            200 <= status < 300 or (status > 100 and self.state is _E)
        ):
            target = _contact(response)
            if target is not None:
                self.remote_target = target
