"""One numbered event of an app's stream."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tongdai.bus.events import Event

# One encoder for every app event: ``json.dumps`` with options builds one per call,
# which costs more than encoding a small event.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def to_json(obj: object) -> str:
    """``obj`` as compact JSON, as every part of an app event is written."""
    return _JSON.encode(obj)


# Event types and device lists are few and repeat: their JSON is kept.
@lru_cache(maxsize=256)
def _type_json(kind: str) -> str:
    return _JSON.encode(kind)


@lru_cache(maxsize=4096)
def devices_json(devices: tuple[str, ...]) -> str:
    return _JSON.encode(list(devices))


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRecord:
    app_id: str
    seq: int
    type: str
    ts: float
    devices: tuple[str, ...]
    data: dict[str, Any]
    # ``data`` as ``to_json`` wrote it, when the log already did.
    data_json: str | None = field(default=None, compare=False, repr=False)

    def message(self) -> str:
        """The websocket message (docs/open-api.md, app-wide event stream): the JSON
        object ``{"type", "seq", "ts", "devices", "data"}``, compact, built from parts
        each encoded once."""
        data = self.data_json if self.data_json is not None else _JSON.encode(self.data)
        ts = self.ts
        # float.__repr__ is how the encoder writes a finite float.
        ts_json = repr(ts) if type(ts) is float and math.isfinite(ts) else _JSON.encode(ts)
        return (f'{{"type":{_type_json(self.type)},"seq":{int(self.seq)},"ts":{ts_json},'
                f'"devices":{devices_json(self.devices)},"data":{data}}}')


def payload(event: Event) -> str:
    """What a log stores of ``event`` besides its app and number."""
    return _JSON.encode({"type": event.type, "ts": event.ts,
                         "devices": list(event.sip_users), "data": event.data})


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
