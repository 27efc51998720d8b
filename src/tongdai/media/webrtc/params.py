"""What one side of a WebRTC leg tells the other in SDP: ICE credentials, the DTLS
certificate fingerprint and the DTLS role (RFC 8839, RFC 8122, RFC 5763)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["IceDtls", "Setup"]

Setup = Literal["actpass", "active", "passive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IceDtls:
    ufrag: str
    pwd: str
    fingerprint: str  # "sha-256 AB:CD:..." (algorithm, space, hex)
    setup: Setup
