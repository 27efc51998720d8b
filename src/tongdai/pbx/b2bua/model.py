"""A call through the B2BUA as the core holds it: two sides, each one or more legs
with its own dialog, and the facts its record is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tongdai.pbx.b2bua.events import Anchor, DialTrunk, Direction, Klass, Party, Plan
from tongdai.pbx.b2bua.state import (
    FINISHED,
    OVER,
    SETTLED,
    CallInput,
    CallState,
    LegInput,
    LegState,
    next_call_state,
    next_leg_state,
)
from tongdai.pbx.cdr import Outcome, seconds, status_detail
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.store.records import CallCheckpoint, Cdr, TrunkRec

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.flow_call import FlowState
    from tongdai.pbx.b2bua.transfer import Transfer

Kind = Literal["basic", "click_to_call"]


@dataclass(eq=False)
class Leg:
    """One side of a call. ``uas``: the far end sent us the INVITE."""

    name: Literal["a", "b"]  # "a": the calling side (the agent in click-to-call)
    peer: Peer
    uas: bool
    state: LegState
    invite: Request | None = None
    # The INVITE's transaction: the endpoint's server txn (uas), our ref (uac).
    txn: str | None = None
    local_tag: str = ""
    dialog: Dialog | None = None
    rang: bool = False
    auth_tries: int = 0
    ack_pending: bool = False  # late offer: the ACK to this leg waits for leg a's ACK
    remote_sdp: bytes = b""
    final: int = 0  # the final response that failed it
    trunk: TrunkRec | None = None
    fallback: DialTrunk | None = None
    local_sdp: bytes = b""  # the SDP we last sent on this leg (a refresh re-offers it)
    # RFC 4028: the leg's session interval (0: no session timer), and who refreshes it.
    session_expires: int = 0
    we_refresh: bool = False
    peer_allows_update: bool = False
    # RFC 3262: the early dialogs of reliable provisionals to our INVITE, by To tag,
    # and the last RSeq PRACKed in each.
    early: dict[str, tuple[Dialog, int]] = field(default_factory=dict)
    # RFC 3262 on a leg we answer: the last RSeq we sent, and the reliable provisional
    # still waiting for its PRACK (with when it went and the current retransmit gap).
    rseq: int = 0
    unacked: Response | None = None
    rel_sent: float = 0.0
    rel_interval: float = 0.0

    def fire(self, inp: LegInput) -> LegState:
        self.state = next_leg_state(self.state, inp)
        return self.state

    @property
    def over(self) -> bool:
        return self.state in OVER

    @property
    def answered(self) -> bool:
        return self.state is LegState.ANSWERED


@dataclass(eq=False)
class Call:
    call_id: str
    app_id: str
    kind: Kind
    direction: Direction
    klass: Klass
    caller: Party
    callee: Party
    devices: tuple[str, ...]
    started_at: float
    did_number: str | None = None
    caller_id: str = ""
    state: CallState = CallState.NEW
    media: Anchor | None = None
    a: Leg | None = None
    b: Leg | None = None  # the callee side: the fork that answered, or the first one
    forks: list[Leg] = field(default_factory=list)  # every b leg rung in parallel
    number: str = ""  # click-to-call: what to dial once the agent answered
    device: str | None = None  # click-to-call: the number is this device
    answered_at: float | None = None
    ended_at: float = 0.0
    outcome: Outcome | None = None
    sip_code: int = 0
    hangup_by: str = ""
    on_hold: bool = False
    held: Literal["a", "b"] | None = None  # the leg put on hold by call control
    recording_paused: bool = False
    transfer: Transfer | None = None  # one party being replaced (``transfer``)
    gone: list[Leg] = field(default_factory=list)  # legs transferred out of the call
    events_sent: set[str] = field(default_factory=set)
    start_logged: bool = False
    timers: set[str] = field(default_factory=set)
    pending_answer: Callable[[], None] | None = None  # leg a's 200, until it is durable
    answer_released: bool = False
    on_settled: list[Callable[[], None]] = field(default_factory=list)
    cdr_stored: bool = False
    media_closed: bool = False
    recording: str = ""
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    flow: FlowState | None = None  # tongdai answered and runs the DID's flow
    voicemail: str = ""  # the voicemail the caller left (a flow call never answered)

    @classmethod
    def of(cls, plan: Plan, kind: Kind, now: float, media: Anchor | None) -> Call:
        return cls(
            call_id=plan.call_id, app_id=plan.app_id, kind=kind, direction=plan.direction,
            klass=plan.klass, caller=plan.caller, callee=plan.callee, devices=plan.devices,
            did_number=plan.did_number, caller_id=plan.caller_id, started_at=now,
            media=media, external_id=plan.external_id, metadata=plan.metadata,
        )

    def fire(self, inp: CallInput) -> CallState:
        self.state = next_call_state(self.state, inp)
        return self.state

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    @property
    def recording_pending(self) -> bool:
        """An answered recorded call: its CDR waits for the recording's file."""
        return self.answered_at is not None and self.media is not None and self.media.record

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def legs(self) -> list[Leg]:
        bs = self.forks or ([self.b] if self.b is not None else [])
        tr = self.transfer
        # (an attended transfer's party is still its own call's until it joins)
        new = tr.leg if tr is not None and tr.consult is None else None
        return [leg for leg in (self.a, *bs, new) if leg is not None]

    def to_cdr(self) -> Cdr:
        """The call's record by the seed's rules (``pbx/cdr.py``); once it has ended."""
        assert self.outcome is not None
        answered = self.answered_at
        return Cdr(
            call_id=self.call_id, app_id=self.app_id, caller=self.caller, callee=self.callee,
            klass=self.klass, did_number=self.did_number, direction=self.direction,
            status_detail=status_detail(self.outcome, self.direction),
            duration_seconds=seconds(self.started_at, self.ended_at),
            unix_timestamp=int(self.started_at),
            billing_seconds=seconds(answered, self.ended_at) if answered is not None else 0,
            recording=self.recording if answered is not None else self.voicemail,
            started_at=self.started_at, answered_at=answered, ended_at=self.ended_at,
            sip_code=self.sip_code, hangup_by=self.hangup_by, sip_users=self.devices,
            external_id=self.external_id, metadata=self.metadata,
        )

    def checkpoint(self, now: float) -> CallCheckpoint:
        """What a crash now must not lose of this answered call (node and recording
        are the driver's to fill in)."""
        assert self.answered_at is not None
        return CallCheckpoint(
            call_id=self.call_id, app_id=self.app_id, node="", caller=self.caller,
            callee=self.callee, klass=self.klass, did_number=self.did_number,
            direction=self.direction, started_at=self.started_at,
            answered_at=self.answered_at, checkpoint_at=now, recording="",
            sip_users=self.devices, ended_at=self.ended_at if self.finished else None,
            hangup_by=self.hangup_by if self.finished else "",
            external_id=self.external_id, metadata=self.metadata,
        )

    def event_data(self) -> dict[str, Any]:
        data = {
            "call_id": self.call_id, "direction": self.direction, "class": self.klass,
            "caller": self.caller, "callee": self.callee, "did_number": self.did_number,
            "started_at": self.started_at, "answered_at": self.answered_at,
        }
        return self.with_correlation(data)

    def with_correlation(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` and, when the call carries them, its external_id and metadata."""
        if self.external_id is not None:
            data["external_id"] = self.external_id
        if self.metadata is not None:
            data["metadata"] = self.metadata
        return data
