"""The sans-I/O SIP endpoint: the transport-facing half of RFC 3261 §17/§18.

Feed it what the transport received (``receive``) and the clock (``handle_timer``);
drain what it decided (``next_event``, ``datagrams_to_send``) and re-arm one timer at
``get_timer()``. The transaction user (TU) answers requests and starts its own with
the ``send_*`` methods. Nothing here touches sockets or clocks.

Transaction keys are opaque strings: ``s|<branch>|<sent-by>`` for server transactions
(RFC 3261 §17.2.3; a CANCEL's own adds ``|CANCEL``) and ``c|<branch>`` for client ones
(§17.1.3; again ``|CANCEL`` for a CANCEL, which shares its INVITE's branch).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import re
from collections import deque

from tongdai.sip import ids
from tongdai.sip.errors import LocalProtocolError, RemoteProtocolError
from tongdai.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    StrayResponse,
    TransportError,
)
from tongdai.sip.message import (
    Headers,
    Request,
    Response,
    format_hostport,
    make_response,
    reason_phrase,
    serialize,
)
from tongdai.sip.parser import parse_message
from tongdai.sip.peer import Peer, stamp_via
from tongdai.sip.records import Records
from tongdai.sip.transaction import Input, Kind, State, TimerConfig, Transaction

MAGIC_COOKIE = ids.MAGIC_COOKIE
# RFC 3261 §8.1.1.6: the Max-Forwards a UAC starts a request with.
MAX_FORWARDS = 70
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
STATS = (
    "requests", "responses", "retransmissions", "malformed_answered", "malformed_dropped",
    "stray_responses", "overloaded", "records_evicted", "internal_errors",
)


class Endpoint:
    """One SIP endpoint (a UA core's transaction and transport layers), without I/O."""

    def __init__(
        self, *, host: str, port: int, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0,
        max_message_size: int = 65535, user_agent: str = "tongdai",
        max_server_transactions: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port  # the shell may set it once the socket is bound (port 0)
        self.max_message_size = max_message_size
        self.user_agent = user_agent
        self.max_server_transactions = max_server_transactions
        self.cfg = TimerConfig(t1, t2, t4)
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)
        self._client: dict[str, Transaction] = {}
        self._server: dict[str, Transaction] = {}
        # Server transactions left only to resend their last response (``records``):
        # (method, the response, its transport, host and port).
        self._answered: Records[tuple[str, bytes, str, str, int]] = Records()
        # INVITE client transactions over UDP whose 2xx the TU has ACKed, left only to
        # repeat that ACK for Timer M (RFC 6026 §7.2): (host, port, ACK by To tag, the
        # To tags delivered to the TU).
        self._acked: Records[tuple[str, int, dict[str, bytes], tuple[str, ...]]] = Records()
        # INVITE transactions answered 2xx, by (Call-ID, CSeq number): the ACK for a 2xx
        # has its own branch, so it is matched like a dialog would (§13.3.1.4).
        self._awaiting_ack: dict[tuple[str, int], Transaction] = {}
        self._invites: dict[tuple[str, int], Transaction] = {}  # our INVITEs, same key
        self._events: deque[SipEvent] = deque()
        self._out: list[tuple[bytes, Peer]] = []
        # (deadline, seq, transaction key, timer): by key, so that a stale entry does
        # not keep an ended transaction (and its request) alive until it pops.
        self._heap: list[tuple[float, int, str, Input]] = []
        self._seq = itertools.count()

    @property
    def sent_by(self) -> str:
        """``host:port`` as our Via carries it (RFC 3261 §18.1.1)."""
        return format_hostport(self.host, self.port)

    # Transport side --------------------------------------------------------

    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """One UDP datagram or one framed TCP message from ``peer``. Never raises."""
        try:
            msg = parse_message(data, max_size=self.max_message_size)
        except RemoteProtocolError as exc:
            self._malformed(exc, peer)
            return
        except Exception:  # a peer's bytes must never crash the endpoint
            self.stats["malformed_dropped"] += 1
            return
        try:
            if isinstance(msg, Request):
                self.stats["requests"] += 1
                try:
                    self._on_request(msg, peer, now)
                except RemoteProtocolError as exc:
                    self._malformed(exc, peer, msg)
            else:
                self.stats["responses"] += 1
                try:
                    self._on_response(msg, peer, now)
                except RemoteProtocolError:
                    self.stats["malformed_dropped"] += 1
        except LocalProtocolError:
            # A state-table gap for some peer input: our bug, but a peer must not be
            # able to turn it into an exception in the transport shell.
            self.stats["internal_errors"] += 1

    def next_event(self) -> SipEvent | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest pending deadline, or ``None`` when no timer runs."""
        heap = self._heap
        first: float | None = None
        while heap:
            if self._armed(heap[0]) is not None:
                first = heap[0][0]
                break
            heapq.heappop(heap)  # stale: stopped, re-armed or its transaction ended
        for records in (self._answered, self._acked):
            if records:
                until = records.next_end()
                if until is not None and (first is None or until < first):
                    first = until
        return first

    def handle_timer(self, now: float) -> None:
        if self._answered:
            self._answered.expire(now)
        if self._acked:
            self._acked.expire(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            txn = self._armed(entry)
            if txn is None:
                continue
            timer = entry[3]
            del txn.deadlines[timer]
            txn.step(timer, self, now)

    def _armed(self, entry: tuple[float, int, str, Input]) -> Transaction | None:
        """The live transaction a timer entry is still armed for, else None (stale)."""
        deadline, _, key, timer = entry
        txn = self._client.get(key) or self._server.get(key)
        if txn is None or txn.deadlines.get(timer) != deadline:
            return None
        return txn

    def transport_failed(self, peer: Peer, now: float) -> None:
        """The shell could not send to ``peer``: end every transaction using it (§17.1.4)."""
        hit = False
        for txn in [*self._client.values(), *self._server.values()]:
            if (txn.peer == peer or txn.dest == peer) and txn.state is not State.TERMINATED:
                hit = True
                txn.step(Input.TRANSPORT_ERROR, self, now)
        if not hit:
            self._events.append(TransportError(txn=None, peer=peer))

    # Transaction user side -------------------------------------------------

    def send_request(self, request: Request, peer: Peer, now: float) -> str:
        """Start a client transaction for ``request`` to ``peer``; returns its key.

        Adds a top Via (with a fresh branch and ``rport``), Max-Forwards and User-Agent
        when missing. An ACK has no transaction: it is sent statelessly.
        """
        method = request.method
        try:
            cseq_num, cseq_method = request.cseq
            call_id = request.call_id
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"cannot send {method}: {exc.reason}") from None
        if cseq_method != method:
            raise LocalProtocolError(f"CSeq method {cseq_method} does not match {method}")
        branch = self._prepare(request, peer)
        if method == "ACK":
            self.send_stateless(request, peer)
            return f"c|{branch}|ACK"
        key = f"c|{branch}|CANCEL" if method == "CANCEL" else f"c|{branch}"
        if key in self._client:
            raise LocalProtocolError(f"branch {branch} is already in use by a transaction")
        wire = serialize(request)
        kind = Kind.ICT if method == "INVITE" else Kind.NICT
        txn = Transaction(
            key=key, kind=kind, request=request, method=method, peer=peer, dest=peer,
            wire=wire, cfg=self.cfg,
        )
        self._client[key] = txn
        if kind is Kind.ICT:
            self._invites[(call_id, cseq_num)] = txn
        self._out.append((wire, peer))
        txn.start(self, now)
        return key

    def send_response(self, txn: str, response: Response, now: float) -> None:
        """Answer a request through its server transaction ``txn``."""
        t = self._server.get(txn)
        if t is None:
            self._answer_absorbed(txn, response)
            return
        status = response.status
        if status < 200:
            inp = Input.TU_1XX
        elif status < 300:
            inp = Input.TU_2XX
        else:
            inp = Input.TU_FINAL
        if t.kind is Kind.IST and status > 100 and (t.local_tag is None or inp is Input.TU_2XX):
            # The 2xx's To tag names the dialog its ACK must carry (§13.2.2.4).
            t.local_tag = response.to_tag or None
        t.step(inp, self, now, response, serialize(response))

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send without a transaction: the ACK for a 2xx, stateless replies.

        A response goes to ``peer``, the request's real source, whatever its Via
        claims (see ``stamp_via``). An ACK for a 2xx we are still absorbing
        retransmissions for is remembered and re-sent on each repeat of that 2xx.
        """
        if isinstance(message, Response):
            self._out.append((serialize(message), peer))
            return
        self._prepare(message, peer)
        wire = serialize(message)
        self._out.append((wire, peer))
        if message.method == "ACK":
            try:
                ict = self._invites.get((message.call_id, message.cseq[0]))
                tag = message.to_tag
            except RemoteProtocolError:
                return
            if ict is not None and ict.state is State.ACCEPTED:
                if ict.acks is None:
                    ict.acks = {}
                ict.acks[tag] = wire
                self._retire_acked(ict)

    def cancel(self, invite_txn: str, now: float) -> str | None:
        """Cancel our INVITE (RFC 3261 §9.1); returns the CANCEL's transaction key.

        Before any provisional response the CANCEL waits and goes out with the first
        one. ``None`` when the INVITE already has a final response or is gone.
        """
        txn = self._client.get(invite_txn)
        if txn is None:
            return None
        if txn.kind is not Kind.ICT:
            raise LocalProtocolError("only an INVITE can be cancelled (RFC 3261 §9.1)")
        if txn.state not in (State.CALLING, State.PROCEEDING):
            return None
        key = f"{invite_txn}|CANCEL"
        if not (txn.cancel_pending or txn.cancel_sent):
            txn.step(Input.CANCEL, self, now)
        return key

    def new_branch(self) -> str:
        return ids.new_branch()

    def new_tag(self) -> str:
        return ids.new_tag()

    def new_call_id(self) -> str:
        return ids.new_call_id()

    def transaction_state(self, txn: str) -> State | None:
        """The state of a live transaction, for diagnostics and tests."""
        t = self._client.get(txn) or self._server.get(txn)
        if t is not None:
            return t.state
        held = self._answered.get(txn)
        if held is not None:
            return State.ACCEPTED if held[0] == "INVITE" else State.COMPLETED
        return State.ACCEPTED if txn in self._acked else None

    def uses(self, peer: Peer) -> bool:
        """Whether a live transaction sends to or came from ``peer`` (a connection the
        shell must not close for being idle). Scans them all: for rare checks only."""
        return any(
            t.peer == peer or t.dest == peer
            for t in (*self._client.values(), *self._server.values())
            if t.state is not State.TERMINATED
        )

    @property
    def live_transactions(self) -> int:
        """How many client and server transactions are alive."""
        return len(self._client) + len(self._server) + len(self._answered) + len(self._acked)

    # Receiving ---------------------------------------------------------------

    def _on_request(self, req: Request, peer: Peer, now: float) -> None:
        via = req.top_via
        dest = stamp_via(req, via, peer)
        num, cseq_method = req.cseq
        method = req.method
        if cseq_method != method:
            raise RemoteProtocolError(400, "CSeq method does not match the request method")
        branch = via.branch
        sent_by = f"{via.host.lower()}:{via.port or 5060}"
        if branch.startswith(MAGIC_COOKIE):
            key = f"s|{branch}|{sent_by}"
        else:
            # RFC 3261 §17.2.3, minimal RFC 2543 fallback: no usable branch.
            key = f"s2543|{req.call_id}|{req.from_tag}|{num}|{sent_by}"
        if method == "ACK":
            self._on_ack(req, peer, key, num, now)
            return
        if method == "CANCEL":
            self._on_cancel(req, peer, dest, key, now)
            return
        txn = self._server.get(key)
        if txn is not None:
            if txn.method != method:
                raise RemoteProtocolError(400, "Via branch reused for another request")
            self.stats["retransmissions"] += 1
            txn.step(Input.REQUEST, self, now)
            return
        if self._answered and self._absorbed(key, method):
            return
        if not self._make_room():
            self.stats["overloaded"] += 1
            self._reply(req, 503, peer)
            return
        kind = Kind.IST if method == "INVITE" else Kind.NIST
        txn = Transaction(
            key=key, kind=kind, request=req, method=method, peer=peer,
            dest=dest, wire=b"", cfg=self.cfg,
        )
        self._server[key] = txn
        txn.start(self, now)
        self._events.append(RequestReceived(request=req, peer=peer, txn=key))
        if kind is Kind.IST:
            # RFC 3261 §17.2.1: 100 Trying at once, so the client stops Timer A.
            trying = make_response(req, 100, headers=[("server", self.user_agent)])
            txn.step(Input.TU_1XX, self, now, trying, serialize(trying))

    def _on_ack(self, ack: Request, peer: Peer, key: str, num: int, now: float) -> None:
        txn = self._server.get(key)
        if txn is not None and txn.kind is Kind.IST and txn.state is not State.ACCEPTED:
            txn.step(Input.ACK, self, now)
            return  # RFC 3261 §17.2.1: the ACK for a non-2xx ends in the transaction
        # The ACK for a 2xx is a transaction of its own, whatever its branch: it matches
        # the INVITE by Call-ID, the INVITE's CSeq number (§13.2.2.4) and the dialog's
        # tags. Any other ACK leaves the 2xx retransmitting; unacknowledged, it times
        # out (§13.3.1.4). The TU sees every ACK and makes the same check.
        ist = self._awaiting_ack.get((ack.call_id, num))
        if (
            ist is not None and ist.state is State.ACCEPTED
            and ack.to_tag == ist.local_tag and ack.from_tag == ist.request.from_tag
        ):
            ist.step(Input.ACKED, self, now)
        self._events.append(RequestReceived(request=ack, peer=peer, txn=None))

    def _on_cancel(self, req: Request, peer: Peer, dest: Peer, key: str, now: float) -> None:
        own = self._server.get(f"{key}|CANCEL")
        if own is not None:
            self.stats["retransmissions"] += 1
            own.step(Input.REQUEST, self, now)
            return
        if self._answered and self._absorbed(f"{key}|CANCEL", "CANCEL"):
            return
        if not self._make_room():
            self.stats["overloaded"] += 1
            self._reply(req, 503, peer)
            return
        # RFC 3261 §9.2: 200 when it matches a transaction, 481 otherwise; the
        # response carries the To tag the INVITE's responses carry.
        target = self._server.get(key)
        status = 200 if target is not None else 481
        tag = target.local_tag if target is not None and target.local_tag else self.new_tag()
        txn = Transaction(
            key=f"{key}|CANCEL", kind=Kind.NIST, request=req, method="CANCEL", peer=peer,
            dest=dest, wire=b"", cfg=self.cfg,
        )
        self._server[txn.key] = txn
        txn.start(self, now)
        resp = make_response(req, status, to_tag=tag, headers=[("server", self.user_agent)])
        txn.step(Input.TU_2XX if status == 200 else Input.TU_FINAL, self, now, resp,
                 serialize(resp))
        if target is not None and target.kind is Kind.IST and target.state is State.PROCEEDING:
            self._events.append(CancelReceived(request=req, peer=peer, invite_txn=key))

    def _on_response(self, resp: Response, peer: Peer, now: float) -> None:
        branch = resp.top_via.branch
        method = resp.cseq[1]
        key = f"c|{branch}|CANCEL" if method == "CANCEL" else f"c|{branch}"
        txn = self._client.get(key)
        status = resp.status
        if txn is None and method == "INVITE" and key in self._acked:
            self._on_acked_response(key, resp)
            return
        if txn is None or txn.method != method or not 100 <= status <= 699:
            self.stats["stray_responses"] += 1
            self._events.append(StrayResponse(response=resp, peer=peer))
            return
        if status < 200:
            inp = Input.RESP_1XX
        elif status < 300:
            inp = Input.RESP_2XX
        else:
            inp = Input.RESP_FINAL
        txn.step(inp, self, now, resp)

    def _malformed(
        self, exc: RemoteProtocolError, peer: Peer, req: Request | None = None,
    ) -> None:
        req = req or exc.request
        if exc.status is None or req is None or req.method == "ACK" or "via" not in req.headers:
            self.stats["malformed_dropped"] += 1
            return
        self.stats["malformed_answered"] += 1
        with contextlib.suppress(RemoteProtocolError):
            stamp_via(req, req.top_via, peer)
        detail = _UNPRINTABLE.sub("", exc.reason)[:80]
        reason = f"{reason_phrase(exc.status)} ({detail})" if detail else ""
        self._reply(req, exc.status, peer, reason)

    def _reply(self, req: Request, status: int, peer: Peer, reason: str = "") -> None:
        resp = make_response(
            req, status, reason, to_tag=self.new_tag(), headers=[("server", self.user_agent)],
        )
        self.send_stateless(resp, peer)

    # Sending ---------------------------------------------------------------

    def _prepare(self, request: Request, peer: Peer) -> str:
        """Add Via/Max-Forwards/User-Agent as needed; return the top Via's branch."""
        headers = request.headers
        if "via" in headers:
            try:
                branch = request.top_via.branch
            except RemoteProtocolError as exc:
                raise LocalProtocolError(f"cannot send {request.method}: {exc.reason}") from None
        else:
            branch = self.new_branch()
            headers.prepend(
                "via", f"SIP/2.0/{peer.transport.upper()} {self.sent_by};branch={branch};rport",
            )
        if "max-forwards" not in headers:
            headers.add("max-forwards", MAX_FORWARDS)
        if "user-agent" not in headers:
            headers.add("user-agent", self.user_agent)
        return branch

    # The transactions' sink (see tongdai.sip.transaction.Sink) -------------

    def _send(self, data: bytes, peer: Peer) -> None:
        self._out.append((data, peer))

    def _emit(self, event: SipEvent) -> None:
        self._events.append(event)

    def _arm(self, txn: Transaction, timer: Input, deadline: float) -> None:
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._seq), txn.key, timer))
        if len(heap) > 4096 and len(heap) > 8 * (len(self._client) + len(self._server)):
            # Lazy deletion leaves stale entries; drop them once they dominate.
            self._heap = [e for e in heap if self._armed(e) is not None]
            heapq.heapify(self._heap)

    def _let_go(self, txn: Transaction) -> None:
        """The transaction object ends here; what is left of its state goes on as a
        record (``records``)."""
        txn.state = State.TERMINATED
        txn.deadlines.clear()
        self._finished(txn)

    def _absorb(self, txn: Transaction, until: float) -> None:
        self._let_go(txn)
        dest = txn.dest
        self._answered.add(txn.key, (txn.method, txn.wire, dest.transport, dest.host,
                                     dest.port), until)

    def _retire_acked(self, ict: Transaction) -> None:
        """Our INVITE's 2xx is ACKed: over UDP, what is left of Accepted is a record."""
        until = ict.deadlines.get(Input.TIMER_M)
        if until is None or ict.peer.reliable or not ict.acks:
            return
        self._let_go(ict)
        peer = ict.peer
        self._acked.add(ict.key, (peer.host, peer.port, dict(ict.acks),
                                  tuple(ict.delivered or ())), until)

    def _on_acked_response(self, key: str, resp: Response) -> None:
        """A response to our INVITE after its 2xx was ACKed (RFC 6026 §7.2): a repeated
        2xx gets its ACK again; a 2xx from another To tag goes to the TU (which ACKs
        and ends that dialog); anything else is ignored, as in Accepted."""
        if not 200 <= resp.status < 300:
            return
        host, port, acks, delivered = self._acked[key]
        tag = resp.to_tag
        ack = acks.get(tag) if tag is not None else None
        if ack is not None:
            self._out.append((ack, Peer("udp", host, port)))
            return
        again = tag in delivered
        if not again and tag is not None:
            self._acked[key] = (host, port, acks, (*delivered, tag))
        self._events.append(ResponseReceived(response=resp, txn=key, retransmission=again))

    def _answer_absorbed(self, txn: str, response: Response) -> None:
        held = self._answered.get(txn)
        if held is None:
            raise LocalProtocolError(f"no server transaction {txn}: it ended or never existed")
        method, _, transport, host, port = held
        if method != "INVITE" or not 200 <= response.status < 300:
            state = State.ACCEPTED if method == "INVITE" else State.COMPLETED
            raise LocalProtocolError(
                f"a {response.status} is not allowed in the server transaction's "
                f"{state.value} state: {txn} is answered")
        # RFC 6026 §7.1: Accepted takes another 2xx from the TU, the one repeated from
        # now on.
        wire = serialize(response)
        self._answered[txn] = (method, wire, transport, host, port)
        self._out.append((wire, Peer(transport, host, port)))

    def _absorbed(self, key: str, method: str) -> bool:
        """Whether the request is a repeat of one answered in Completed: then its
        response is sent again (RFC 3261 §17.2.2)."""
        held = self._answered.get(key)
        if held is None:
            return False
        if held[0] != method:
            raise RemoteProtocolError(400, "Via branch reused for another request")
        self.stats["retransmissions"] += 1
        self._out.append((held[1], Peer(held[2], held[3], held[4])))
        return True

    def _make_room(self) -> bool:
        """Whether a new server transaction fits: when the table is full, the answered
        record nearest its end goes to make room (a request repeated for it later is
        handled as new, as after its timer). False when every transaction has work
        left: the caller refuses the request with 503."""
        if len(self._server) + len(self._answered) < self.max_server_transactions:
            return True
        if not self._answered.drop_soonest():
            return False
        self.stats["records_evicted"] += 1
        return True

    def _finished(self, txn: Transaction) -> None:
        key = txn.key
        if txn.kind is Kind.ICT or txn.kind is Kind.NICT:
            if self._client.get(key) is txn:
                del self._client[key]
            if txn.kind is Kind.ICT:
                self._drop_index(self._invites, txn)
        else:
            if self._server.get(key) is txn:
                del self._server[key]
            if txn.kind is Kind.IST:
                self._drop_index(self._awaiting_ack, txn)

    @staticmethod
    def _drop_index(index: dict[tuple[str, int], Transaction], txn: Transaction) -> None:
        try:
            k = (txn.request.call_id, txn.request.cseq[0])
        except RemoteProtocolError:
            return
        if index.get(k) is txn:
            del index[k]

    def _await_ack(self, txn: Transaction) -> None:
        self._awaiting_ack[(txn.request.call_id, txn.request.cseq[0])] = txn

    def _send_cancel(self, txn: Transaction, now: float) -> None:
        # RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and Route
        # as the INVITE, and only its top Via (so the branch matches at the server).
        self.send_request(_derived(txn.request, "CANCEL", None), txn.peer, now)

    def _build_ack(self, txn: Transaction, response: Response) -> bytes:
        # RFC 3261 §17.1.1.3: the ACK for a non-2xx copies the INVITE but takes To from
        # the response (its tag) and keeps the INVITE's top Via, branch included.
        return serialize(_derived(txn.request, "ACK", response.headers.get("to")))


def _derived(invite: Request, method: str, to: str | None) -> Request:
    h = Headers()
    h.add("via", invite.headers.values("via")[0])
    for name in ("from", "to", "call-id"):
        value = to if name == "to" and to is not None else invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    h.add("cseq", f"{invite.cseq[0]} {method}")
    for route in invite.headers.get_all("route"):
        h.add("route", route)
    h.add("max-forwards", MAX_FORWARDS)
    ua = invite.headers.get("user-agent")
    if ua is not None:
        h.add("user-agent", ua)
    return Request(method=method, uri=invite.uri, headers=h)
