"""SIP transactions (RFC 3261 §17, RFC 6026): four state tables and their timers.

A transaction is data plus a table lookup: ``step(input)`` finds
``(next_state, effects)`` for ``(state, input)`` in its kind's table, performs the
effects through the endpoint (the ``Sink``), and arms the timers of the state it
enters. Timers are absolute deadlines kept in ``deadlines``; the endpoint's heap holds
``(deadline, seq, txn, timer)`` entries and a popped entry whose deadline no longer
matches ``deadlines`` is stale and skipped (lazy deletion).

A pair missing from a table is a TU mistake and raises ``LocalProtocolError``; every
pair a peer or a timer can produce is listed, even when its effect is nothing.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import (
    ResponseReceived,
    SipEvent,
    TransactionTimeout,
    TransportError,
)
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer


class Kind(Enum):
    # Members are singletons: hash by identity, in C, instead of Enum's Python-level
    # hash of the name — these are dict keys on every message's path.
    __hash__ = object.__hash__

    ICT = "INVITE client"
    NICT = "non-INVITE client"
    IST = "INVITE server"
    NIST = "non-INVITE server"


class State(Enum):
    __hash__ = object.__hash__

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1/§7.2: a 2xx was sent/received
    TERMINATED = "Terminated"


class Input(Enum):
    __hash__ = object.__hash__

    # From the peer
    RESP_1XX = "1xx received"
    RESP_2XX = "2xx received"
    RESP_FINAL = "300-699 received"
    REQUEST = "request retransmission"
    ACK = "ACK"
    ACKED = "ACK for 2xx"  # an ACK with its own branch matched by Call-ID and CSeq
    # From the TU
    TU_1XX = "TU sends 1xx"
    TU_2XX = "TU sends 2xx"
    TU_FINAL = "TU sends 300-699"
    CANCEL = "TU cancels"
    # From the clock / the shell
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_2XX = "2xx retransmission"  # RFC 3261 §13.3.1.4
    TRANSPORT_ERROR = "transport error"


class Do(Enum):
    """Effects of a transition, performed in order."""

    __hash__ = object.__hash__

    DELIVER = 1  # ResponseReceived to the TU
    DELIVER_2XX = 2  # first 2xx from a to-tag, or its retransmission (re-ACK)
    SEND_ACK = 3  # RFC 3261 §17.1.1.3: the ACK for a non-2xx, built in the transaction
    RETRANSMIT = 4  # resend the request (client) or the last response (server)
    SEND = 5  # the TU's response: remember it and send it
    RESEND = 6  # a retransmitted request: resend the last response, if any
    MARK_CANCEL = 7  # RFC 3261 §9.1: no provisional yet, CANCEL once one arrives
    SEND_CANCEL = 8
    CANCEL_IF_PENDING = 9
    AWAIT_ACK = 10  # index a 2xx-answered INVITE by Call-ID/CSeq for its ACK
    STOP_2XX = 11  # the ACK for our 2xx arrived
    TIMEOUT = 12
    TIMEOUT_IF_UNACKED = 13
    TRANSPORT_FAILED = 14
    # Only repeats of the last response are left to answer: the endpoint keeps that
    # as a compact record and the transaction object goes (``Sink._absorb``).
    ABSORB = 15


S, In, D = State, Input, Do
Table = dict[tuple[State, Input], tuple[State, tuple[Do, ...]]]


def _fail(*states: State) -> Table:
    return {(s, In.TRANSPORT_ERROR): (S.TERMINATED, (D.TRANSPORT_FAILED,)) for s in states}


# RFC 3261 Figure 5 with RFC 6026 Figure 3 (Accepted), and §9.1 for CANCEL.
ICT: Table = {
    (S.CALLING, In.RESP_1XX): (S.PROCEEDING, (D.DELIVER, D.CANCEL_IF_PENDING)),
    (S.CALLING, In.RESP_2XX): (S.ACCEPTED, (D.DELIVER_2XX,)),
    (S.CALLING, In.RESP_FINAL): (S.COMPLETED, (D.SEND_ACK, D.DELIVER)),
    (S.CALLING, In.TIMER_A): (S.CALLING, (D.RETRANSMIT,)),
    (S.CALLING, In.TIMER_B): (S.TERMINATED, (D.TIMEOUT,)),
    (S.CALLING, In.CANCEL): (S.CALLING, (D.MARK_CANCEL,)),
    (S.PROCEEDING, In.RESP_1XX): (S.PROCEEDING, (D.DELIVER,)),
    (S.PROCEEDING, In.RESP_2XX): (S.ACCEPTED, (D.DELIVER_2XX,)),
    (S.PROCEEDING, In.RESP_FINAL): (S.COMPLETED, (D.SEND_ACK, D.DELIVER)),
    (S.PROCEEDING, In.CANCEL): (S.PROCEEDING, (D.SEND_CANCEL,)),
    # RFC 3261 §9.1: 64*T1 after a CANCEL without a final response, give up.
    (S.PROCEEDING, In.TIMER_B): (S.TERMINATED, (D.TIMEOUT,)),
    (S.COMPLETED, In.RESP_1XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RESP_2XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RESP_FINAL): (S.COMPLETED, (D.SEND_ACK,)),
    (S.COMPLETED, In.CANCEL): (S.COMPLETED, ()),
    (S.COMPLETED, In.TIMER_D): (S.TERMINATED, ()),
    (S.ACCEPTED, In.RESP_1XX): (S.ACCEPTED, ()),
    (S.ACCEPTED, In.RESP_2XX): (S.ACCEPTED, (D.DELIVER_2XX,)),
    (S.ACCEPTED, In.RESP_FINAL): (S.ACCEPTED, ()),
    (S.ACCEPTED, In.CANCEL): (S.ACCEPTED, ()),
    (S.ACCEPTED, In.TIMER_M): (S.TERMINATED, ()),
    **_fail(S.CALLING, S.PROCEEDING, S.COMPLETED, S.ACCEPTED),
}

# RFC 3261 Figure 6.
NICT: Table = {
    (S.TRYING, In.RESP_1XX): (S.PROCEEDING, (D.DELIVER,)),
    (S.TRYING, In.RESP_2XX): (S.COMPLETED, (D.DELIVER,)),
    (S.TRYING, In.RESP_FINAL): (S.COMPLETED, (D.DELIVER,)),
    (S.TRYING, In.TIMER_E): (S.TRYING, (D.RETRANSMIT,)),
    (S.TRYING, In.TIMER_F): (S.TERMINATED, (D.TIMEOUT,)),
    (S.PROCEEDING, In.RESP_1XX): (S.PROCEEDING, (D.DELIVER,)),
    (S.PROCEEDING, In.RESP_2XX): (S.COMPLETED, (D.DELIVER,)),
    (S.PROCEEDING, In.RESP_FINAL): (S.COMPLETED, (D.DELIVER,)),
    (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, (D.RETRANSMIT,)),
    (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, (D.TIMEOUT,)),
    (S.COMPLETED, In.RESP_1XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RESP_2XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RESP_FINAL): (S.COMPLETED, ()),
    (S.COMPLETED, In.TIMER_K): (S.TERMINATED, ()),
    **_fail(S.TRYING, S.PROCEEDING, S.COMPLETED),
}

# RFC 3261 Figure 7 with RFC 6026 Figure 5 (Accepted).
IST: Table = {
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (D.RESEND,)),
    (S.PROCEEDING, In.ACK): (S.PROCEEDING, ()),  # an ACK before any final: nothing to end
    (S.PROCEEDING, In.TU_1XX): (S.PROCEEDING, (D.SEND,)),
    (S.PROCEEDING, In.TU_2XX): (S.ACCEPTED, (D.SEND, D.AWAIT_ACK)),
    (S.PROCEEDING, In.TU_FINAL): (S.COMPLETED, (D.SEND,)),
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (D.RESEND,)),
    (S.COMPLETED, In.ACK): (S.CONFIRMED, ()),
    (S.COMPLETED, In.TIMER_G): (S.COMPLETED, (D.RETRANSMIT,)),
    (S.COMPLETED, In.TIMER_H): (S.TERMINATED, (D.TIMEOUT,)),
    (S.CONFIRMED, In.REQUEST): (S.CONFIRMED, ()),
    (S.CONFIRMED, In.ACK): (S.CONFIRMED, ()),
    (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, ()),
    # We retransmit the 2xx ourselves (§13.3.1.4), so a retransmitted INVITE means
    # the 2xx was lost: resend it rather than wait for the next Timer 2xx.
    (S.ACCEPTED, In.REQUEST): (S.ACCEPTED, (D.RESEND,)),
    (S.ACCEPTED, In.TU_2XX): (S.ACCEPTED, (D.SEND,)),
    # RFC 6026 §7.1: an ACK in Accepted goes to the TU (the endpoint reports it).
    (S.ACCEPTED, In.ACK): (S.ACCEPTED, (D.STOP_2XX, D.ABSORB)),
    (S.ACCEPTED, In.ACKED): (S.ACCEPTED, (D.STOP_2XX, D.ABSORB)),
    (S.ACCEPTED, In.TIMER_2XX): (S.ACCEPTED, (D.RETRANSMIT,)),
    (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, (D.TIMEOUT_IF_UNACKED,)),
    **_fail(S.PROCEEDING, S.COMPLETED, S.CONFIRMED, S.ACCEPTED),
}

# RFC 3261 Figure 8.
NIST: Table = {
    (S.TRYING, In.REQUEST): (S.TRYING, ()),
    (S.TRYING, In.TU_1XX): (S.PROCEEDING, (D.SEND,)),
    (S.TRYING, In.TU_2XX): (S.COMPLETED, (D.SEND,)),
    (S.TRYING, In.TU_FINAL): (S.COMPLETED, (D.SEND,)),
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (D.RESEND,)),
    (S.PROCEEDING, In.TU_1XX): (S.PROCEEDING, (D.SEND,)),
    (S.PROCEEDING, In.TU_2XX): (S.COMPLETED, (D.SEND,)),
    (S.PROCEEDING, In.TU_FINAL): (S.COMPLETED, (D.SEND,)),
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (D.RESEND,)),
    (S.COMPLETED, In.TIMER_J): (S.TERMINATED, ()),
    **_fail(S.TRYING, S.PROCEEDING, S.COMPLETED),
}

TABLES: dict[Kind, Table] = {Kind.ICT: ICT, Kind.NICT: NICT, Kind.IST: IST, Kind.NIST: NIST}

INITIAL: dict[Kind, State] = {
    Kind.ICT: S.CALLING, Kind.NICT: S.TRYING, Kind.IST: S.PROCEEDING, Kind.NIST: S.TRYING,
}

# Timers started on entering a state. RFC 3261 §17.1.2.2: entering Proceeding from
# Trying keeps Timers E and F running; every other state change stops all timers.
ENTRY_TIMERS: dict[tuple[Kind, State], tuple[Input, ...]] = {
    (Kind.ICT, S.CALLING): (In.TIMER_A, In.TIMER_B),
    (Kind.ICT, S.COMPLETED): (In.TIMER_D,),
    (Kind.ICT, S.ACCEPTED): (In.TIMER_M,),
    (Kind.NICT, S.TRYING): (In.TIMER_E, In.TIMER_F),
    (Kind.NICT, S.COMPLETED): (In.TIMER_K,),
    (Kind.IST, S.COMPLETED): (In.TIMER_G, In.TIMER_H),
    (Kind.IST, S.CONFIRMED): (In.TIMER_I,),
    (Kind.IST, S.ACCEPTED): (In.TIMER_2XX, In.TIMER_L),
    (Kind.NIST, S.COMPLETED): (In.TIMER_J,),
}
KEEP_TIMERS = {(Kind.NICT, S.PROCEEDING)}
RETRANSMIT_TIMERS = frozenset({In.TIMER_A, In.TIMER_E, In.TIMER_G, In.TIMER_2XX})


# RFC 3261 §17.1.1.2: a transaction gives up after 64*T1 (Timers B, F, H, J, L, M, and
# a CANCEL that gets no final response, §9.1): seven doublings of T1.
TIMEOUT_T1_MULTIPLE = 64
# RFC 3261 §17.1.1.2: Timer D (absorbing response retransmissions) is "at least 32
# seconds for unreliable transports", however short T1 is.
TIMER_D_MIN = 32.0


class TimerConfig:
    """T1, T2, T4 of RFC 3261 §17.1.1.1 and Table 4 — the durations derive from them."""

    __slots__ = ("_table", "t1", "t2", "t4")

    def __init__(self, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self._table = {
            (timer, reliable): self._compute(timer, reliable)
            for timer in Input if timer.name.startswith("TIMER_") for reliable in (False, True)
        }

    def duration(self, timer: Input, reliable: bool) -> float | None:
        """Seconds until ``timer`` fires; ``None`` when unused on this transport (Table 4)."""
        return self._table[(timer, reliable)]

    def _compute(self, timer: Input, reliable: bool) -> float | None:
        t1 = self.t1
        if timer in RETRANSMIT_TIMERS:
            # A, E, G only over unreliable transports; §13.3.1.4 retransmits a 2xx even
            # over a reliable one, since a later hop may be UDP.
            return None if reliable and timer is not In.TIMER_2XX else t1
        if timer is In.TIMER_D:
            return 0.0 if reliable else max(TIMER_D_MIN, TIMEOUT_T1_MULTIPLE * t1)
        if timer is In.TIMER_I or timer is In.TIMER_K:
            return 0.0 if reliable else self.t4
        if timer is In.TIMER_J:
            return 0.0 if reliable else TIMEOUT_T1_MULTIPLE * t1
        return TIMEOUT_T1_MULTIPLE * t1  # B, F, H, L, M


class Sink(Protocol):
    """What a transaction needs from its endpoint."""

    def _send(self, data: bytes, peer: Peer) -> None: ...
    def _emit(self, event: SipEvent) -> None: ...
    def _arm(self, txn: Transaction, timer: Input, deadline: float) -> None: ...
    def _finished(self, txn: Transaction) -> None: ...
    def _absorb(self, txn: Transaction, until: float) -> None: ...
    def _send_cancel(self, txn: Transaction, now: float) -> None: ...
    def _await_ack(self, txn: Transaction) -> None: ...
    def _build_ack(self, txn: Transaction, response: Response) -> bytes: ...


class Transaction:
    """One client or server transaction. ``key`` is what the TU holds.

    ``peer`` is where requests go (client) or where the request came from (server);
    ``dest`` is where responses go (server, RFC 3261 §18.2.2). ``wire`` is the request
    (client) or the last response sent (server), kept serialised for retransmission.
    """

    __slots__ = (
        "ack_wire", "acked", "acks", "cancel_pending", "cancel_sent", "cfg", "deadlines",
        "delivered", "dest", "interval", "key", "kind", "local_tag", "method", "peer",
        "request", "state", "wire",
    )

    def __init__(
        self, *, key: str, kind: Kind, request: Request, method: str, peer: Peer, dest: Peer,
        wire: bytes, cfg: TimerConfig,
    ) -> None:
        self.key = key
        self.kind = kind
        self.state = INITIAL[kind]
        self.request = request
        self.method = method
        self.peer = peer
        self.dest = dest
        self.wire = wire
        self.cfg = cfg
        self.interval = cfg.t1
        self.deadlines: dict[Input, float] = {}
        self.cancel_pending = False
        self.cancel_sent = False
        self.acked = False
        self.ack_wire: bytes | None = None  # ICT: the ACK for a non-2xx, sent again on repeats
        self.local_tag: str | None = None  # IST: our To tag, reused by the CANCEL's 200
        self.delivered: set[str] | None = None  # ICT: to-tags of 2xx delivered
        self.acks: dict[str, bytes] | None = None  # ICT: the TU's ACK per 2xx to-tag

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.state.value} {self.key}>"

    def start(self, sink: Sink, now: float) -> None:
        """Arm the timers of the initial state (the request/100 is sent by the endpoint)."""
        self._enter(self.state, sink, now)

    def step(
        self, inp: Input, sink: Sink, now: float, message: Response | None = None,
        wire: bytes | None = None,
    ) -> None:
        """Feed one input; ``message`` is the response received or sent, ``wire`` its bytes."""
        try:
            nxt, effects = TABLES[self.kind][(self.state, inp)]
        except KeyError:
            raise LocalProtocolError(
                f"{inp.value} is not allowed in the {self.kind.value} transaction's "
                f"{self.state.value} state"
            ) from None
        changed = nxt is not self.state
        if changed and (self.kind, nxt) not in KEEP_TIMERS:
            self.deadlines.clear()  # before the effects: they may arm the next state's
        for effect in effects:
            self._do(effect, sink, now, message, wire)
        if changed:
            self._enter(nxt, sink, now)

    def _enter(self, state: State, sink: Sink, now: float) -> None:
        self.state = state
        if state is S.TERMINATED:
            self.deadlines.clear()
            sink._finished(self)
            return
        timers = ENTRY_TIMERS.get((self.kind, state))
        if not timers:
            return
        reliable = self.peer.reliable
        table = self.cfg._table
        if state is S.COMPLETED and self.kind is Kind.NIST and not reliable:
            # RFC 3261 §17.2.2: Completed only repeats the final response for Timer J
            # (64*T1): a compact record does that (a busy registrar holds hundreds of
            # thousands of them).
            self._do(D.ABSORB, sink, now, None, None)
            return
        immediate: Input | None = None
        for timer in timers:
            d = table[(timer, reliable)]
            if d is None:
                continue
            if d == 0.0:
                immediate = timer
                continue
            if timer in RETRANSMIT_TIMERS:
                self.interval = d
            deadline = now + d
            self.deadlines[timer] = deadline
            sink._arm(self, timer, deadline)
        if immediate is not None:
            # Reliable transports: D, I, J, K are zero, the state ends at once.
            self.step(immediate, sink, now)

    def _do(
        self, effect: Do, sink: Sink, now: float, msg: Response | None, wire: bytes | None,
    ) -> None:
        match effect:
            case D.DELIVER:
                assert msg is not None
                sink._emit(ResponseReceived(response=msg, txn=self.key))
            case D.DELIVER_2XX:
                assert msg is not None
                self._deliver_2xx(msg, sink)
            case D.SEND_ACK:
                assert msg is not None
                if self.ack_wire is None:
                    self.ack_wire = sink._build_ack(self, msg)
                sink._send(self.ack_wire, self.peer)
            case D.RETRANSMIT:
                self._retransmit(sink, now)
            case D.SEND:
                assert wire is not None
                self.wire = wire
                sink._send(wire, self.dest)
            case D.RESEND:
                if self.wire:
                    sink._send(self.wire, self.dest)
            case D.MARK_CANCEL:
                self.cancel_pending = True
            case D.SEND_CANCEL:
                self._send_cancel(sink, now)
            case D.CANCEL_IF_PENDING:
                if self.cancel_pending:
                    self._send_cancel(sink, now)
            case D.AWAIT_ACK:
                sink._await_ack(self)
            case D.STOP_2XX:
                self.acked = True
                self.deadlines.pop(In.TIMER_2XX, None)
            case D.TIMEOUT:
                sink._emit(TransactionTimeout(txn=self.key, request=self.request))
            case D.TIMEOUT_IF_UNACKED:
                if not self.acked:
                    sink._emit(TransactionTimeout(txn=self.key, request=self.request))
            case D.TRANSPORT_FAILED:
                sink._emit(TransportError(txn=self.key, peer=self.peer))
            case D.ABSORB:
                # NIST Completed (Timer J) or IST Accepted once ACKed (Timer L, RFC
                # 6026 §7.1): the rest of the state is resending one response.
                if self.kind is Kind.NIST:
                    left = self.cfg._table[(In.TIMER_J, self.dest.reliable)]
                    if left:
                        sink._absorb(self, now + left)
                elif (until := self.deadlines.get(In.TIMER_L)) is not None:
                    sink._absorb(self, until)

    def _deliver_2xx(self, msg: Response, sink: Sink) -> None:
        # RFC 6026 §7.2: every 2xx goes to the TU, which ACKs each (§13.2.2.4). A
        # repeat whose ACK the TU already gave us is answered here instead.
        tag = msg.to_tag
        if self.delivered is None:
            self.delivered = set()
        if tag in self.delivered:
            ack = self.acks.get(tag) if self.acks else None
            if ack is not None:
                sink._send(ack, self.peer)
            else:
                sink._emit(ResponseReceived(response=msg, txn=self.key, retransmission=True))
            return
        self.delivered.add(tag)
        sink._emit(ResponseReceived(response=msg, txn=self.key))

    def _retransmit(self, sink: Sink, now: float) -> None:
        sink._send(self.wire, self.dest)
        kind = self.kind
        if kind is Kind.ICT:
            timer = In.TIMER_A
            self.interval *= 2  # §17.1.1.2: Timer A doubles without bound
        else:
            # §17.1.2.2 / §17.2.1 / §13.3.1.4: double up to T2; Proceeding uses T2.
            timer = {Kind.NICT: In.TIMER_E, Kind.IST: In.TIMER_G}[kind]
            if kind is Kind.IST and self.state is S.ACCEPTED:
                timer = In.TIMER_2XX
            if kind is Kind.NICT and self.state is S.PROCEEDING:
                self.interval = self.cfg.t2
            else:
                self.interval = min(self.interval * 2, self.cfg.t2)
        deadline = now + self.interval
        self.deadlines[timer] = deadline
        sink._arm(self, timer, deadline)

    def _send_cancel(self, sink: Sink, now: float) -> None:
        self.cancel_pending = False
        self.cancel_sent = True
        sink._send_cancel(self, now)
        deadline = now + TIMEOUT_T1_MULTIPLE * self.cfg.t1
        self.deadlines[In.TIMER_B] = deadline
        sink._arm(self, In.TIMER_B, deadline)
