"""Call detail records: the seed's status rules and the record built from a call.

``status_detail`` by what happened (see docs/cdr.md; the rows are tested one by one):

| what happened                                       | from_ab   | to_ab   |
|-----------------------------------------------------|-----------|---------|
| answered                                            | SUCCESS   | SUCCESS |
| callee busy (486 / 600)                             | BUSY      | BUSY    |
| caller hung up while it rang (CANCEL / BYE)         | CANCELLED | IVR     |
| rang until the ring timeout, or 408/480 after ringing | IVR     | IVR     |
| anything else (404, 403, 5xx, no route, trunk down) | ERROR     | ERROR   |

Seconds are rounded half up from the call's wall-clock times: ``duration_seconds`` =
end - start, ``billing_seconds`` = end - answer (0 when never answered).
"""

from __future__ import annotations

import math
from enum import Enum

from tongdai.store.records import CallCheckpoint, Cdr


class Outcome(Enum):
    ANSWERED = "answered"
    BUSY = "busy"  # the far end answered 486 or 600
    CALLER_GAVE_UP = "caller_gave_up"  # CANCEL, or the caller hung up while ringing
    NO_ANSWER = "no_answer"  # ring timeout, or 408/480 after ringing
    FAILED = "failed"  # everything else


def outcome_of_final(code: int, *, rang: bool) -> Outcome:
    """The outcome when the far end ends the attempt with final ``code``."""
    if 200 <= code < 300:
        return Outcome.ANSWERED
    if code in (486, 600):
        return Outcome.BUSY
    if code in (408, 480) and rang:
        return Outcome.NO_ANSWER
    return Outcome.FAILED


def status_detail(outcome: Outcome, direction: str) -> str:
    match outcome:
        case Outcome.ANSWERED:
            return "SUCCESS"
        case Outcome.BUSY:
            return "BUSY"
        case Outcome.CALLER_GAVE_UP:
            # The seed defines CANCELLED for outgoing calls only; a missed inbound call is IVR.
            return "CANCELLED" if direction == "from_ab" else "IVR"
        case Outcome.NO_ANSWER:
            return "IVR"
        case _:
            return "ERROR"


def seconds(start: float, end: float) -> int:
    """Whole seconds between two wall-clock times, rounded half up, never negative."""
    return max(0, math.floor(end - start + 0.5))


def recovered(cp: CallCheckpoint, recording: str) -> Cdr:
    """The record of an answered call a crash cut off, from its last checkpoint: it
    ended when that was stored, else at its last checkpoint, hung up by the system."""
    ended_at = cp.ended_at if cp.ended_at is not None else cp.checkpoint_at
    hangup_by = cp.hangup_by if cp.ended_at is not None and cp.hangup_by else "system"
    return Cdr(
        call_id=cp.call_id, app_id=cp.app_id, caller=cp.caller, callee=cp.callee,
        klass=cp.klass, did_number=cp.did_number, direction=cp.direction,
        status_detail=status_detail(Outcome.ANSWERED, cp.direction),
        duration_seconds=seconds(cp.started_at, ended_at), unix_timestamp=int(cp.started_at),
        billing_seconds=seconds(cp.answered_at, ended_at), recording=recording,
        started_at=cp.started_at, answered_at=cp.answered_at, ended_at=ended_at,
        sip_code=200, hangup_by=hangup_by, sip_users=tuple(cp.sip_users),
        external_id=cp.external_id, metadata=cp.metadata,
    )
