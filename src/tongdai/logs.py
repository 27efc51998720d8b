"""Structured log lines: an event name plus key=value fields, rendered as text or JSON.

Callers write ``logs.event(log, "call.ended", call_id=c, status="SUCCESS")``; the
formatter chosen by the ``log_format`` setting renders it as
``2026-11-30T05:04:43Z INFO tongdai.calls call.ended call_id=c status=SUCCESS`` or as
one JSON object per line. Plain ``log.info("text")`` lines render the same way with no
fields. Never pass passwords, secrets, tokens or digests as fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_FIELDS = "tongdai_fields"


def event(logger: logging.Logger, name: str, /, *, level: int = logging.INFO,
          **fields: Any) -> None:
    """Log ``name`` with structured ``fields`` (cheap when the level is disabled)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={_FIELDS: fields})


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, _FIELDS, None)
    return value if isinstance(value, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    ms = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"


def _text_value(value: Any) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return json.dumps(s)
    return s


class KeyValueFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER MESSAGE k=v ...``: one line, greppable, quoted where needed."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields_of(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record), "level": record.levelname, "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in fields_of(record).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str, fmt: LogFormat = "text") -> None:
    """Configure the root logger once for the server process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
