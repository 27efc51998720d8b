"""A call through the B2BUA: two legs with independent dialogs, one ``call_id`` of ours."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from tongdai.media.engine import MediaSession
from tongdai.pbx.cdr import Outcome, seconds, status_detail
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request
from tongdai.sip.peer import Peer
from tongdai.store.records import Cdr, DeviceRec, TrunkRec


@dataclass(eq=False)
class Leg:
    """One side of a call. ``uas`` is True when the far end sent us the INVITE."""

    name: Literal["a", "b"]  # "a": caller side (the agent in click-to-call); "b": callee
    peer: Peer
    uas: bool
    invite: Request | None = None
    txn: str | None = None  # the INVITE's server or client transaction
    local_tag: str = ""
    dialog: Dialog | None = None
    rang: bool = False
    answered: bool = False
    ended: bool = False
    cancelled: bool = False  # we CANCELled this (UAC) leg
    auth_tries: int = 0
    # Late offer (INVITE without SDP): the 2xx ACK to leg b waits for leg a's ACK.
    ack_pending: bool = False
    remote_sdp: bytes = b""  # the far end's answer, once it answered
    final: int = 0  # the final response this (UAC) leg got, when it failed
    trunk: TrunkRec | None = None  # the carrier an outbound leg goes through


@dataclass(eq=False)
class Call:
    call_id: str
    app_id: str
    kind: str  # "basic" | "click_to_call"
    direction: str  # "from_ab" | "to_ab"
    klass: str = "one_one"  # "one_one" | "trunking"
    caller: dict[str, Any] = field(default_factory=dict)
    callee: dict[str, Any] = field(default_factory=dict)
    did_number: str | None = None
    caller_id: str = ""  # the number shown to carriers (the app's default DID)
    devices: list[str] = field(default_factory=list)  # sip_users whose streams see it
    a: Leg | None = None
    b: Leg | None = None  # the callee side: the fork that answered, or the first one
    forks: list[Leg] = field(default_factory=list)  # every b leg rung in parallel
    media: MediaSession | None = None
    started_at: float = 0.0  # wall clock
    answered_at: float | None = None
    ended_at: float = 0.0
    outcome: Outcome | None = None
    sip_code: int = 0
    hangup_by: str = ""
    finished: bool = False
    on_hold: bool = False  # the last re-offer put the audio on hold
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    b_target_dev: DeviceRec | None = None
    events_sent: set[str] = field(default_factory=set)

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def legs(self) -> list[Leg]:
        bs = self.forks or ([self.b] if self.b is not None else [])
        return [leg for leg in (self.a, *bs) if leg is not None]

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def to_cdr(self, recording: str) -> Cdr:
        """The call's record, by the seed's rules (see ``pbx/cdr.py``); call once ended."""
        assert self.outcome is not None
        answered = self.answered_at
        return Cdr(
            call_id=self.call_id, app_id=self.app_id, caller=self.caller, callee=self.callee,
            klass=self.klass, did_number=self.did_number, direction=self.direction,
            status_detail=status_detail(self.outcome, self.direction),
            duration_seconds=seconds(self.started_at, self.ended_at),
            unix_timestamp=int(self.started_at),
            billing_seconds=seconds(answered, self.ended_at) if answered is not None else 0,
            recording=recording if answered is not None else "",
            started_at=self.started_at, answered_at=answered, ended_at=self.ended_at,
            sip_code=self.sip_code, hangup_by=self.hangup_by, sip_users=tuple(self.devices),
        )

    def event_data(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "direction": self.direction,
            "class": self.klass,
            "caller": self.caller,
            "callee": self.callee,
            "did_number": self.did_number,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
        }


def device_party(dev: DeviceRec) -> dict[str, Any]:
    """A device as the seed's caller/callee object."""
    return {"number": dev.extension or dev.sip_user, "type": "user", "username": dev.sip_user}


def number_party(number: str) -> dict[str, Any]:
    return {"number": number, "type": "realnumber"}
