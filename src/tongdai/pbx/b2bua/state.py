"""The states of a call and of its legs, and every move between them, as tables.

A newcomer reads a call's life here; the feature modules decide *what to send* on each
move, these tables decide *which moves exist*. A move missing from a table is our own
bug (``LocalProtocolError``), never a peer's: every race a peer can cause (a 2xx
crossing our CANCEL, a 2xx after we gave up) has its row.
"""

from __future__ import annotations

from enum import StrEnum

from tongdai.sip.errors import LocalProtocolError


class CallState(StrEnum):
    NEW = "new"  # routed, no leg dialled yet
    RINGING_A = "ringing_a"  # click-to-call: the agent's phone rings
    ROUTING_B = "routing_b"  # click-to-call: the agent answered, the number is looked up
    RINGING_B = "ringing_b"  # the callee's side (every fork, or one trunk) rings
    IN_FLOW = "in_flow"  # tongdai answered the caller itself and runs the DID's flow
    ANSWERED = "answered"  # both sides talk; billing runs
    ENDED = "ended"  # over; not yet durable, so peers are not told yet
    SETTLED = "settled"  # the end is durable; media is closing, the CDR being written
    DONE = "done"  # the CDR is stored and ``call.ended`` published


class CallInput(StrEnum):
    DIAL_A = "dial_a"
    AGENT_ANSWERED = "agent_answered"
    DIAL_B = "dial_b"  # also a failover to the next trunk
    B_ANSWERED = "b_answered"
    FLOW_ANSWERED = "flow_answered"  # tongdai answered the caller (``flow_call``)
    NO_AGENT = "no_agent"  # nobody the flow rang answered: back to the flow
    TO_QUEUE = "to_queue"  # an answered call's staying party transferred to a queue
    FINISH = "finish"
    DURABLE = "durable"
    CLOSED = "closed"


_C, _CI = CallState, CallInput

CALL_TABLE: dict[tuple[CallState, CallInput], CallState] = {
    (_C.NEW, _CI.DIAL_A): _C.RINGING_A,
    (_C.NEW, _CI.DIAL_B): _C.RINGING_B,
    (_C.NEW, _CI.FINISH): _C.ENDED,  # refused before anyone rang
    (_C.NEW, _CI.FLOW_ANSWERED): _C.IN_FLOW,
    (_C.IN_FLOW, _CI.DIAL_B): _C.RINGING_B,  # the flow rings agents
    (_C.IN_FLOW, _CI.FINISH): _C.ENDED,
    (_C.RINGING_B, _CI.NO_AGENT): _C.IN_FLOW,
    (_C.ANSWERED, _CI.TO_QUEUE): _C.IN_FLOW,  # ``transfer``: its party waits in a queue
    (_C.RINGING_A, _CI.AGENT_ANSWERED): _C.ROUTING_B,
    (_C.RINGING_A, _CI.FINISH): _C.ENDED,
    (_C.ROUTING_B, _CI.DIAL_B): _C.RINGING_B,
    (_C.ROUTING_B, _CI.FINISH): _C.ENDED,
    (_C.RINGING_B, _CI.DIAL_B): _C.RINGING_B,  # failover: the next trunk
    (_C.RINGING_B, _CI.B_ANSWERED): _C.ANSWERED,
    (_C.RINGING_B, _CI.FINISH): _C.ENDED,
    (_C.ANSWERED, _CI.FINISH): _C.ENDED,
    (_C.ENDED, _CI.DURABLE): _C.SETTLED,
    (_C.SETTLED, _CI.CLOSED): _C.DONE,
}

FINISHED = frozenset({_C.ENDED, _C.SETTLED, _C.DONE})
SETTLED = frozenset({_C.SETTLED, _C.DONE})


class LegState(StrEnum):
    INVITED = "invited"  # the far end sent us its INVITE (we are its UAS)
    CALLING = "calling"  # we sent an INVITE (we are its UAC)
    RINGING = "ringing"  # 180/183 received
    ANSWERED = "answered"  # 2xx sent or received: the leg's dialog is up
    CANCELLING = "cancelling"  # we CANCELled it; a 2xx may still cross the CANCEL
    FAILED = "failed"  # ended without ever being answered
    ENDED = "ended"  # answered, then hung up (BYE either way)


class LegInput(StrEnum):
    RING = "ring"
    ANSWER = "answer"
    RETRY = "retry"  # the INVITE again, with credentials for a 401/407 (RFC 3261 §22.2)
    CANCEL = "cancel"
    FAIL = "fail"  # a final non-2xx, a timeout, or our own non-2xx to its INVITE
    BYE = "bye"


_L, _LI = LegState, LegInput

LEG_TABLE: dict[tuple[LegState, LegInput], LegState] = {
    (_L.INVITED, _LI.ANSWER): _L.ANSWERED,
    (_L.INVITED, _LI.FAIL): _L.FAILED,
    (_L.CALLING, _LI.RING): _L.RINGING,
    (_L.CALLING, _LI.ANSWER): _L.ANSWERED,
    (_L.CALLING, _LI.RETRY): _L.CALLING,
    (_L.CALLING, _LI.CANCEL): _L.CANCELLING,
    (_L.CALLING, _LI.FAIL): _L.FAILED,
    (_L.RINGING, _LI.RING): _L.RINGING,
    (_L.RINGING, _LI.ANSWER): _L.ANSWERED,
    (_L.RINGING, _LI.RETRY): _L.CALLING,
    (_L.RINGING, _LI.CANCEL): _L.CANCELLING,
    (_L.RINGING, _LI.FAIL): _L.FAILED,
    (_L.ANSWERED, _LI.ANSWER): _L.ANSWERED,  # a 2xx retransmission (RFC 6026)
    (_L.ANSWERED, _LI.BYE): _L.ENDED,
    (_L.CANCELLING, _LI.RING): _L.CANCELLING,
    (_L.CANCELLING, _LI.CANCEL): _L.CANCELLING,
    # RFC 3261 §15: a 2xx that crossed our CANCEL is ACKed, then ended with BYE.
    (_L.CANCELLING, _LI.ANSWER): _L.ENDED,
    (_L.CANCELLING, _LI.FAIL): _L.FAILED,  # the 487 to our CANCEL
    (_L.CANCELLING, _LI.BYE): _L.ENDED,
    # A fork that answered after another won, or after the call ended: ACK and BYE.
    (_L.FAILED, _LI.ANSWER): _L.ENDED,
    (_L.FAILED, _LI.FAIL): _L.FAILED,
    (_L.FAILED, _LI.CANCEL): _L.FAILED,
    (_L.FAILED, _LI.BYE): _L.FAILED,
    (_L.ENDED, _LI.ANSWER): _L.ENDED,
    (_L.ENDED, _LI.FAIL): _L.ENDED,
    (_L.ENDED, _LI.CANCEL): _L.ENDED,
    (_L.ENDED, _LI.BYE): _L.ENDED,
}

# A leg that no longer rings nor talks: nothing to cancel, nothing to hang up.
OVER = frozenset({_L.CANCELLING, _L.FAILED, _L.ENDED})


def next_call_state(state: CallState, inp: CallInput) -> CallState:
    try:
        return CALL_TABLE[(state, inp)]
    except KeyError:
        raise LocalProtocolError(f"call: no move from {state} on {inp}") from None


def next_leg_state(state: LegState, inp: LegInput) -> LegState:
    try:
        return LEG_TABLE[(state, inp)]
    except KeyError:
        raise LocalProtocolError(f"leg: no move from {state} on {inp}") from None
