"""One numbered event of an app's stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tongdai.bus.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRecord:
    app_id: str
    seq: int
    type: str
    ts: float
    devices: tuple[str, ...]
    data: dict[str, Any]

    def message(self) -> str:
        """The websocket message (docs/open-api.md, app-wide event stream)."""
        return json.dumps({"type": self.type, "seq": self.seq, "ts": self.ts,
                           "devices": list(self.devices), "data": self.data},
                          separators=(",", ":"), ensure_ascii=False, default=str)


def payload(event: Event) -> str:
    """What a log stores of ``event`` besides its app and number."""
    return json.dumps({"type": event.type, "ts": event.ts, "devices": list(event.sip_users),
                       "data": event.data}, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def from_payload(app_id: str, seq: int, raw: str | bytes) -> AppRecord:
    """The record ``payload`` wrote; ValueError if it is not one."""
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("an app event is a JSON object")
    kind, ts, devices, data = obj.get("type"), obj.get("ts"), obj.get("devices"), obj.get("data")
    if not isinstance(kind, str) or isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ValueError("an app event needs a type and a ts")
    if not isinstance(devices, list) or not isinstance(data, dict):
        raise ValueError("an app event needs devices and data")
    return AppRecord(app_id=app_id, seq=seq, type=kind, ts=float(ts),
                     devices=tuple(str(d) for d in devices), data=data)
