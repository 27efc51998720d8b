"""What passes between the core and a call's flow runner (``tongdai.pbx.flow``).

The runner decides what the caller hears and whom to ring; it tells the core with the
commands below (``FlowDial``, ``FlowNote``, ``FlowHangup``), and the core answers
with actions (``StartFlow``, ``FlowDialled``, ``FlowInfo``, ``FlowStop``,
``FlowOver``) that the driver hands to the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tongdai.flows.document import Flow
from tongdai.pbx.b2bua.events import Binding, DialTrunk, Party
from tongdai.pbx.flow.sdp import Media

# Into the core ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFlow:
    """The routed DID has a flow: tongdai answers and runs it."""

    flow: Flow
    version: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialee:
    """Someone a flow rings: a device (every binding at once) or a number (a trunk)."""

    name: str  # the device's sip_user, or the number
    party: Party  # the callee the CDR names if this one answers
    bindings: tuple[Binding, ...] = ()
    trunk: DialTrunk | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowDial:
    """Ring ``dialees`` at once for ``timeout`` seconds; → ``FlowDialled``."""

    call_id: str
    dialees: tuple[Dialee, ...]
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowNote:
    """Something integrators hear of: the caller waits in a queue, or left a voicemail
    (``recording``: its file, which the CDR names); "recording": a voicemail is being
    recorded, so the caller hanging up lets it finish."""

    call_id: str
    kind: Literal["queued", "voicemail", "recording"]
    data: dict[str, Any]
    recording: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowHangup:
    """The flow is over without anyone answering (a hangup node, after voicemail)."""

    call_id: str


FlowCommand = FlowDial | FlowNote | FlowHangup

# Out of the core ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFlow:
    """The caller is answered with ``media``: run ``flow`` on its leg."""

    call_id: str
    app_id: str
    caller: str  # the caller's number
    flow: Flow
    media: Media


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowDialled:
    """A ``FlowDial`` is over: ``answered`` names who answered (the relay must bridge
    the legs before anything else), or is None when nobody did."""

    call_id: str
    answered: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowInfo:
    """A SIP INFO from the caller while tongdai holds its leg (DTMF, RFC 2976)."""

    call_id: str
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowStop:
    """The caller hung up while leaving a voicemail: stop recording, keep the file."""

    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowOver:
    """The call ended: its runner stops; ``agent`` (who talked, if anyone) wraps up."""

    call_id: str
    agent: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowHold:
    """The caller put its leg on hold (``held``: its offer was sendonly or inactive, so
    tongdai must send nothing) or took it off hold: prompts and music go quiet or on."""

    call_id: str
    held: bool


FlowAction = StartFlow | FlowDialled | FlowInfo | FlowStop | FlowOver | FlowHold
