"""Domain records returned by the store. Plain frozen data; no ORM objects escape the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRec:
    app_id: str
    app_secret: str
    name: str
    created_at: float
    record_calls: bool = True
    default_did: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRec:
    """A SIP account. The password is never kept in plaintext: ``ha1_md5`` and
    ``ha1_sha256`` are the RFC 7616 HA1 values H(username:realm:password)."""

    sip_user: str
    app_id: str
    realm: str
    ha1_md5: str
    ha1_sha256: str
    display_name: str = ""
    extension: str | None = None

    def ha1(self, algorithm: str) -> str:
        """The stored HA1 for a digest ``algorithm`` ("MD5" or "SHA-256")."""
        return self.ha1_sha256 if algorithm == "SHA-256" else self.ha1_md5


@dataclass(frozen=True, slots=True, kw_only=True)
class DidRec:
    number: str  # normalised national form, e.g. 02873019555
    app_id: str
    sip_user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkRec:
    trunk_id: int
    app_id: str
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = None  # outbound digest credentials for the carrier
    prefix: str = ""  # prepended to the dialled number on the way out
    strip: int = 0  # leading digits removed before the prefix is added


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """One binding of a device (RFC 3261 §10.3). ``source`` is where the REGISTER
    came from (``host``, ``port``) over ``transport``: requests to the device go there."""

    sip_user: str
    contact: str  # the Contact URI as registered
    source_host: str
    source_port: int
    transport: str  # "udp" | "tcp"
    expires_at: float
    call_id: str = ""
    cseq: int = 0
    user_agent: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cdr:
    """One finished call. The first block is exactly what histories returns."""

    call_id: str
    app_id: str
    caller: dict[str, Any]
    callee: dict[str, Any]
    klass: str  # "one_one" | "trunking" (serialised as "class")
    did_number: str | None
    direction: str  # "from_ab" | "to_ab"
    status_detail: str  # SUCCESS | BUSY | CANCELLED | IVR | ERROR
    duration_seconds: int
    unix_timestamp: int
    billing_seconds: int
    recording: str = ""
    # Beyond the seed's fields: for operators and debugging.
    started_at: float = 0.0
    answered_at: float | None = None
    ended_at: float = 0.0
    sip_code: int = 0
    hangup_by: str = ""  # "caller" | "callee" | "system"
    sip_users: tuple[str, ...] = field(default_factory=tuple)

    def to_api(self) -> dict[str, Any]:
        """The histories record: the seed's field names, in the seed's order."""
        return {
            "caller": self.caller,
            "callee": self.callee,
            "class": self.klass,
            "did_number": self.did_number,
            "direction": self.direction,
            "status_detail": self.status_detail,
            "duration_seconds": self.duration_seconds,
            "unix_timestamp": self.unix_timestamp,
            "billing_seconds": self.billing_seconds,
            "recording": self.recording,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRec:
    token_hash: str  # sha256 hex of the token; the token itself is never stored
    app_id: str
    sip_user: str
    expires_at: float
    revoked: bool = False
