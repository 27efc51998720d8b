"""Delivery signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``.

The ``X-Tongdai-Signature`` header reads ``t=<unix seconds>,v1=<hex digest>``. The
timestamp is the time of the attempt and is inside the signed text, so a receiver that
refuses timestamps older than its replay window (``REPLAY_WINDOW``) refuses a captured
request replayed later; the delivery id (``X-Tongdai-Delivery``) catches a replay
inside the window, and a retry of a delivery it already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Tongdai-Signature"
EVENT_HEADER = "X-Tongdai-Event"
DELIVERY_HEADER = "X-Tongdai-Delivery"
# Seconds a receiver should accept between the signed timestamp and its own clock.
REPLAY_WINDOW = 300
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 bits


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Tongdai-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float,
           window: float = REPLAY_WINDOW) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``window`` of ``now``.

    What a receiver runs (docs/webhooks.md has the same in a few stand-alone lines).
    Several ``v1=`` values are allowed, any one matching, for secret rotation.
    """
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            given.append(value)
    if timestamp is None or not given or abs(now - timestamp) > window:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    # Constant time: a byte-by-byte early exit would let an attacker find a valid
    # signature one character at a time.
    return any(hmac.compare_digest(expected, g) for g in given)
