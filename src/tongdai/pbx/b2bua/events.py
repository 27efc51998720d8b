"""What the call core is told: SIP from the endpoint, and the results of what it asked
the driver to do (routing, storage, media, timers).

The SIP events reuse ``tongdai.sip.events`` where the endpoint's own transaction id is
what the core needs (requests, CANCEL, stray responses); responses to the core's own
requests come back under the core's ``ref`` (``actions.SendRequest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tongdai.sip.events import CancelReceived, RequestReceived, StrayResponse
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.store.records import TrunkRec

Direction = Literal["from_ab", "to_ab"]
Klass = Literal["one_one", "trunking"]
Party = dict[str, Any]


# Where a leg goes (built by the driver from the dial plan) ------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    contact: str  # the Request-URI: the Contact the device registered
    peer: Peer  # where to send: the address its REGISTER came from, or its first Path
    route: tuple[str, ...] = ()  # the pre-loaded Route set: its Path (RFC 3327 §5.3)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialDevice:
    """A device of the app: every binding rings at once, the first answer wins."""

    sip_user: str
    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DialTrunk:
    """Out through a carrier; ``then`` is the next trunk should this one fail as a
    trunk (``routes.failover``)."""

    trunk: TrunkRec
    number: str  # as the carrier gets it
    then: DialTrunk | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    status: int  # 404 unknown, 480 offline, 503 no trunk
    reason: str
    outside: bool = False  # a valid outside number no trunk serves (CDR: trunking)


Target = DialDevice | DialTrunk | Refuse


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """The call's media session: where each leg sends us audio, and whether it records."""

    a: tuple[str, int]
    b: tuple[str, int]
    record: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Who a new call is between and what the records say about it."""

    call_id: str
    app_id: str
    direction: Direction
    klass: Klass
    caller: Party
    callee: Party
    devices: tuple[str, ...]
    did_number: str | None = None
    caller_id: str = ""  # the number carriers see (the app's default DID)
    # Click-to-call correlation: the integrator's id and metadata, in every event of
    # the call and in its CDR.
    external_id: str | None = None
    metadata: dict[str, Any] | None = None


# Inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCall:
    """An INVITE the driver routed (authenticated, tenant found): bridge it to ``target``.
    ``media`` is None when no media ports were left."""

    plan: Plan
    request: Request
    peer: Peer
    txn: str
    target: Target
    media: Anchor | None
    flow: Any = None  # ``flow_events.RunFlow``: the DID's flow answers the call instead


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickToCall:
    """Ring the agent at ``agent``; once it answers, the core asks for ``Lookup``."""

    plan: Plan
    agent: Binding
    number: str  # what the integrator asked to call
    device: str | None  # set when the number is another device of the app
    media: Anchor | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    call_id: str
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientResponse:
    ref: str
    response: Response
    retransmission: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTimeout:
    """No final response to our request ``ref`` (Timer B/F)."""

    ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientUnreachable:
    """The peer of our request ``ref`` cannot be reached (RFC 3261 §17.1.4)."""

    ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTimeout:
    """Our 2xx to INVITE ``txn`` was never ACKed within 64·T1 (RFC 3261 §13.3.1.4)."""

    txn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    call_id: str
    purpose: Literal["answer", "end", "cdr"]
    ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStopped:
    call_id: str
    recording: str  # the finished file, "" when the call recorded nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSilent:
    """An answered call's media has been silent on one side for ``seconds``."""

    call_id: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    call_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    """The server stops: every call ends, hung up by the system."""


Event = (
    RequestReceived | CancelReceived | StrayResponse | NewCall | ClickToCall | Routed
    | ClientResponse | ClientTimeout | ClientUnreachable | ServerTimeout | Stored
    | MediaStopped | MediaSilent | TimerFired | Shutdown
)
