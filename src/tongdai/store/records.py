"""Domain records returned by the store. Plain frozen data; no ORM objects escape the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tongdai.store.sealing import Sealed


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRec:
    app_id: str
    app_secret: Sealed  # encrypted at rest; .reveal() where the secret is used
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
class DigestKeys:
    """What a device's password is kept as: its HA1 values for ``realm``
    (``pbx/credentials.digest_keys`` computes them; the store never sees a password)."""

    realm: str
    ha1_md5: str
    ha1_sha256: str

    def __repr__(self) -> str:
        # HA1 opens the account like the password does (RFC 7616 §5.13): never logged.
        return f"DigestKeys(realm={self.realm!r})"


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
    # Outbound digest credentials for the carrier; encrypted at rest, .reveal() to use.
    password: Sealed | None = None
    prefix: str = ""  # prepended to the dialled number on the way out
    strip: int = 0  # leading digits removed before the prefix is added
    # The number prefixes (national form) this trunk carries; empty: every number.
    routes: tuple[str, ...] = ()
    priority: int = 0  # among trunks matching equally well, lower is tried first


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
    # The REGISTER's Path values (RFC 3327), nearest proxy first: requests to the
    # device are sent to the first and carry them all as a pre-loaded Route set.
    path: tuple[str, ...] = ()


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
    # Click-to-call correlation, as the integrator gave it (None: not given).
    external_id: str | None = None
    metadata: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """The histories record: the seed's ten fields, names and order exactly as the
        seed has them, then tongdai's: ``call_id``, and ``external_id`` and
        ``metadata`` when the call carries them."""
        rec = {
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
            "call_id": self.call_id,
        }
        if self.external_id is not None:
            rec["external_id"] = self.external_id
        if self.metadata is not None:
            rec["metadata"] = self.metadata
        return rec


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCheckpoint:
    """An answered call still in progress, as far as it is known durably.

    Written when the call is answered, its ``checkpoint_at`` moved forward every few
    seconds while it lasts, marked ``ended_at`` when it ends (before its recording is
    finished), and deleted in the transaction that stores its CDR. One left over after
    a crash becomes the call's CDR at the next start. ``node`` names the server
    process that owns the call.
    """

    call_id: str
    app_id: str
    node: str
    caller: dict[str, Any]
    callee: dict[str, Any]
    klass: str
    did_number: str | None
    direction: str
    started_at: float
    answered_at: float
    checkpoint_at: float  # the call was known to be up until then
    recording: str = ""  # the recording being made, "" when not recording
    sip_users: tuple[str, ...] = field(default_factory=tuple)
    ended_at: float | None = None  # set once the call has ended
    hangup_by: str = ""
    external_id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRec:
    token_hash: str  # sha256 hex of the token; the token itself is never stored
    app_id: str
    sip_user: str
    expires_at: float
    revoked: bool = False
