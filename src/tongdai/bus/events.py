"""Events carried by the bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One thing that happened, addressed to a tenant and the devices it concerns.

    ``type`` is one of ``device.registered``, ``device.unregistered``,
    ``call.ringing``, ``call.answered``, ``call.ended``. ``sip_users`` lists the
    devices whose websocket streams receive the event (fan-out filters on it).
    ``data`` is JSON-serialisable.
    """

    type: str
    app_id: str
    sip_users: tuple[str, ...]
    ts: float
    data: dict[str, Any] = field(default_factory=dict)
