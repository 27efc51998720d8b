"""Signed, expiring recording URLs (implements ``RecordingUrls``).

A URL is ``{base_url}/recordings/{app_id}/{name}?expires=<unix>&sig=<hex>`` where
``sig`` is HMAC-SHA256, under a server secret, of ``{app_id}/{name}/{expires}``.
Binding the app id into the MAC means a link can never be replayed against another
app's folder; binding the expiry means a leaked link dies on its own.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from urllib.parse import quote

from tongdai.keys import load_or_create_key

__all__ = ["RecordingSigner", "load_or_create_secret"]



class RecordingSigner:
    """Makes and checks recording URLs valid for ``ttl`` seconds."""

    def __init__(self, secret: bytes, base_url: str, ttl: int) -> None:
        if len(secret) < 16:
            raise ValueError("the recording URL secret must be at least 16 bytes")
        if ttl <= 0:
            raise ValueError("the recording URL lifetime must be positive")
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def _sign(self, app_id: str, name: str, expires: int) -> str:
        msg = f"{app_id}/{name}/{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, app_id: str, name: str, now: float) -> tuple[str, int]:
        """(absolute URL, unix expiry) for recording ``name`` of ``app_id``."""
        expires = int(now) + self.ttl
        sig = self._sign(app_id, name, expires)
        path = f"/recordings/{quote(app_id, safe='')}/{quote(name, safe='')}"
        return f"{self.base_url}{path}?expires={expires}&sig={sig}", expires

    def verify(self, app_id: str, name: str, expires: int, sig: str, now: float) -> bool:
        """True if ``sig`` is ours for these values and ``now`` is not past ``expires``."""
        expected = self._sign(app_id, name, expires)
        # Compare in constant time (and always, so timing does not reveal expiry).
        good = hmac.compare_digest(expected.encode(), sig.lower().encode())
        return good and now <= expires


def load_or_create_secret(data_dir: Path) -> bytes:
    """The recording-URL signing secret, ``data_dir/secrets/recording.key``."""
    return load_or_create_key(data_dir, "recording.key")
