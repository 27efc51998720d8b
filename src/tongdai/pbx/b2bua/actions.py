"""What the call core asks its driver to do: frozen data, executed in order.

Every action that takes time (a write, closing media, a lookup, a timer) is answered
by an input event (``events.py``) naming the same call, so the core never waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from tongdai.pbx.b2bua.flow_events import FlowAction
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.store.records import CallCheckpoint, Cdr

MediaLeg = Literal["a", "b"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """Start a client transaction; its responses come back as ``ClientResponse(ref)``."""

    ref: str
    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    """Answer the server transaction ``txn``."""

    txn: str
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAck:
    """An ACK for a 2xx, sent outside any transaction (RFC 3261 §13.2.2.4)."""

    ack: Request
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelLeg:
    """CANCEL the INVITE client transaction ``ref`` (RFC 3261 §9.1)."""

    ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StartMedia:
    """Send leg ``leg``'s media to ``host:port`` (what its SDP asked for)."""

    call_id: str
    leg: MediaLeg
    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecording:
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseRecording:
    """Keep nothing of the call's audio until ``ResumeRecording`` (``control``)."""

    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeRecording:
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopMedia:
    """Close the call's media (which finishes its recording); → ``MediaStopped``."""

    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    """A call event for integrators (bus → websocket)."""

    kind: str
    app_id: str
    sip_users: tuple[str, ...]
    ts: float
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteCdr:
    """Store the call's record; → ``Stored(purpose)``. The driver retries a few times."""

    cdr: Cdr
    purpose: Literal["end", "cdr"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """Store what a crash must not lose of an answered call; → ``Stored(purpose)``.
    The driver fills in its node and the media's recording file."""

    checkpoint: CallCheckpoint
    purpose: Literal["answer", "end"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTimer:
    """Fire ``TimerFired(call_id, name)`` in ``delay`` seconds, replacing any timer of
    the same call and name."""

    call_id: str
    name: str
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer:
    call_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """Route ``number`` (or re-read ``device``'s bindings) for click-to-call; → ``Routed``."""

    call_id: str
    app_id: str
    number: str
    device: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteTransfer:
    """Where ``to`` (a REFER's Refer-To) leads in the app's dial plan, for the call's
    pending transfer; → ``transfer.TransferTo``."""

    call_id: str
    app_id: str
    to: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    name: str
    level: int = logging.INFO
    fields: dict[str, Any] = field(default_factory=dict)


Action = (
    SendRequest | Respond | SendAck | CancelLeg | StartMedia | StartRecording | StopMedia
    | Publish | WriteCdr | Checkpoint | SetTimer | CancelTimer | Lookup | Log
    | PauseRecording | ResumeRecording | RouteTransfer | FlowAction
)
