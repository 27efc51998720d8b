"""Typed settings: embedded defaults, an optional TOML file, then environment variables.

Environment variables win over the file. Every setting has an environment name
``TONGDAI_<FIELD>`` (upper case); in a TOML file the same names are written in lower
case without the prefix (``http_port = 8080``), at the top level or under ``[tongdai]``.
The CLI finds the file with ``find_config``: ``--config``, ``$TONGDAI_CONFIG``, then
``./tongdai.toml``; a relative ``data_dir`` in a file is relative to the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tongdai.logs import LogFormat

# The settings file when --config is not given (see find_config).
CONFIG_ENV = "TONGDAI_CONFIG"
LOCAL_CONFIG = Path("tongdai.toml")


class SettingsError(Exception):
    """A setting has a bad value; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TONGDAI_", extra="forbid", frozen=True)

    data_dir: Path = Path("./tongdai-data")
    database_url: str = ""
    bus_url: str = ""  # "" = in-process; redis://host:6379/0 shares events between processes
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(5060, ge=0, le=65535)
    sip_domain: str = ""
    # Edge proxies in front of this node (deploy/kamailio), comma-separated host:port:
    # requests they forward come from devices (each authenticated by digest as usual),
    # though no device registered from that address at this node (docs/scaling.md).
    sip_edge_proxies: str = ""
    # SIP over TCP (transport/tcp.py): a connection must deliver its first message, and
    # finish any message it begins, within the read timeout; one silent for the idle
    # timeout is closed unless it carries a live registration or transaction. Caps on
    # the connections peers open, per source address and in all (0: half the process's
    # file-descriptor limit), keep descriptors for phones, media and the HTTP API.
    tcp_read_timeout: float = Field(20.0, gt=0)
    tcp_idle_timeout: float = Field(1800.0, gt=0)
    tcp_max_connections: int = Field(0, ge=0)
    tcp_max_per_source: int = Field(64, ge=1)
    # SIP over WebSocket (RFC 7118, transport/ws.py) for browsers: the ws and wss
    # ports (0: off); wss needs the PEM certificate (chain) and key files. The TCP
    # timeouts and caps above apply to websockets too. Browsers send Origin: only the
    # origins listed (comma-separated, e.g. https://crm.example.vn; "*" for any) may
    # open one; empty allows clients without Origin and pages on the host they connect to.
    sip_ws_port: int = Field(0, ge=0, le=65535)
    sip_wss_port: int = Field(0, ge=0, le=65535)
    tls_cert: str = ""
    tls_key: str = ""
    sip_ws_origins: str = ""
    # Two ports a leg, two legs a call: 2,500 calls with media at once.
    rtp_ports: str = "20000-29999"
    # Who moves the media: "" = the built-in relay; "rtpengine:HOST:PORT" = the
    # rtpengine whose ng protocol listens there (tongdai.media.rtpengine). Its
    # recordings become tongdai's MP3s when tongdai can read rtpengine's
    # --recording-dir (recording-method=pcap) at rtpengine_recording_dir.
    media_engine: str = ""
    rtpengine_recording_dir: str = ""
    public_url: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: str = "info"
    # "text": one key=value line per event; "json": one JSON object per line (for log
    # shippers). See tongdai.logs.
    log_format: str = "text"

    # Registrar (RFC 3261 §10.3): bounds on binding lifetimes, in seconds.
    register_min_expires: int = Field(60, ge=1)
    register_max_expires: int = Field(3600, ge=1)
    register_default_expires: int = Field(3600, ge=1)
    nonce_lifetime: int = Field(300, ge=10)
    # Digest algorithms offered in challenges, strongest first (RFC 8760). Some
    # deployed phones (baresip 1.x, older libre) fail on any challenge they cannot
    # parse, so SHA-256 is opt-in: "SHA-256,MD5".
    digest_algorithms: str = "MD5"
    # SIP brute-force protection (tongdai/throttle.py), counted within the window:
    # this many failures for one user from one address block that user from that
    # address (other addresses keep working) for the cooling period ...
    auth_fail_limit: int = Field(10, ge=1)
    # ... this many from one address, whatever the users, block the address (an
    # office behind one NAT may raise it) ...
    auth_fail_address_limit: int = Field(10, ge=1)
    # ... and this many for one user from all addresses mark the user as under a
    # distributed attack: for the cooling period one failure blocks an address for
    # that user. The right password is never refused because of it.
    auth_fail_user_limit: int = Field(100, ge=1)
    auth_fail_window: int = Field(60, ge=1)
    auth_block_seconds: int = Field(300, ge=1)

    # Calls
    ring_timeout: int = Field(60, ge=1)
    max_call_duration: int = Field(14400, ge=1)
    media_timeout: int = Field(60, ge=1)
    # RFC 4028 session timer each call leg is offered (seconds): a side that stops
    # refreshing is hung up before it runs out. RFC 4028 §4 allows no less than 90.
    session_expires: int = Field(1800, ge=90)
    record_calls_default: bool = True
    # Seconds between refreshes of the checkpoints of answered calls (one UPDATE for
    # all of them): after a crash a call in progress keeps its CDR, with the duration
    # and billing known at its last checkpoint (at most this much short).
    checkpoint_interval: float = Field(2.0, gt=0)

    # Open API
    token_ttl: int = Field(3600, ge=60)
    recording_url_ttl: int = Field(900, ge=10)
    ws_retain_events: int = Field(1000, ge=10)
    ws_queue_limit: int = Field(1000, ge=10)
    ws_ping_interval: float = Field(20.0, gt=0)
    # The app-wide event stream (/oapi/v1/events/ws) keeps each app's latest events
    # for replay with since=: in the database, or in Redis Streams with a Redis bus.
    app_events_retain: int = Field(10_000, ge=100)
    # Open API brute-force protection: failed authentications (app hash, device
    # password, websocket token) from one client address within the window block
    # the address (429) for the cooling period.
    api_auth_fail_limit: int = Field(20, ge=1)
    api_auth_fail_window: int = Field(60, ge=1)
    api_auth_block_seconds: int = Field(300, ge=1)
    # Per-app request limits (api/ratelimit.py): requests an app may make per second
    # on average, and at once; over them it gets 429 app_rate_limited with
    # Retry-After. A rate of 0 turns the limit off.
    api_app_rate: float = Field(20.0, ge=0)
    api_app_burst: int = Field(100, ge=1)
    # Reverse proxies whose X-Forwarded-For names the client (comma-separated IPs
    # or CIDRs). Empty: the header is ignored and the TCP peer is the client.
    trusted_proxies: str = ""
    # Who may read /metrics (comma-separated IPs or CIDRs; the client as for the
    # throttle, X-Forwarded-For only from trusted proxies). Empty: nobody.
    metrics_allow: str = "127.0.0.0/8,::1"
    # Webhooks (tongdai/webhooks, docs/webhooks.md). Targets on loopback, link-local
    # and private addresses are refused (SSRF) unless allowed here. An attempt without
    # a 2xx within the timeout rests its endpoint retry_base * 2^(n-1) seconds after
    # the n-th failure in a row (at most retry_max, jittered); after disable_after
    # failures in a row the endpoint is disabled (its deliveries wait). At most
    # `concurrency` requests in flight; delivered records kept retention_days.
    webhook_allow_private: bool = False
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_retry_base: float = Field(1.0, gt=0)
    webhook_retry_max: float = Field(600.0, gt=0)
    webhook_disable_after: int = Field(100, ge=1)
    webhook_concurrency: int = Field(64, ge=1, le=1000)
    webhook_retention_days: int = Field(7, ge=1)

    @field_validator("rtp_ports")
    @classmethod
    def _check_rtp_ports(cls, v: str) -> str:
        lo, sep, hi = v.partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise ValueError("must be a range like 20000-29999")
        a, b = int(lo), int(hi)
        if not (1024 <= a < b <= 65535) or (b - a) < 3:
            raise ValueError("must be a range of at least 4 ports within 1024-65535")
        return f"{a}-{b}"

    @field_validator("media_engine")
    @classmethod
    def _check_media_engine(cls, v: str) -> str:
        if v and _rtpengine_address(v) is None:
            raise ValueError("must be empty (the built-in relay) or rtpengine:HOST:PORT, "
                             "e.g. rtpengine:127.0.0.1:22222")
        return v

    @field_validator("digest_algorithms")
    @classmethod
    def _check_algs(cls, v: str) -> str:
        algs = [a.strip().upper() for a in v.split(",") if a.strip()]
        if not algs or any(a not in ("MD5", "SHA-256") for a in algs):
            raise ValueError("must list MD5 and/or SHA-256, e.g. SHA-256,MD5")
        return ",".join(algs)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Asia/Ho_Chi_Minh") from exc
        return v

    @field_validator("bus_url")
    @classmethod
    def _check_bus(cls, v: str) -> str:
        if v and not v.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be empty, memory:// or a redis:// URL")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str) -> str:
        if v and not v.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return v

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, v: str) -> str:
        if v.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return v.lower()

    @field_validator("log_format")
    @classmethod
    def _check_format(cls, v: str) -> str:
        if v.lower() not in {"text", "json"}:
            raise ValueError("must be text or json")
        return v.lower()

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _check_proxies(cls, v: str) -> str:
        nets = []
        for item in (i.strip() for i in v.split(",")):
            if not item:
                continue
            try:
                nets.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError as exc:
                raise ValueError(
                    f"{item!r} is not an IP address or network; list them comma-separated,"
                    " e.g. 10.0.0.5,192.168.1.0/24") from exc
        return ",".join(nets)

    @field_validator("sip_edge_proxies")
    @classmethod
    def _check_edges(cls, v: str) -> str:
        items = [i.strip() for i in v.split(",") if i.strip()]
        for item in items:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port; list the edge proxies "
                                 "comma-separated, e.g. 10.0.0.5:5060")
        return ",".join(items)

    @field_validator("sip_ws_origins")
    @classmethod
    def _check_origins(cls, v: str) -> str:
        origins = [o.strip().rstrip("/") for o in v.split(",") if o.strip()]
        for o in origins:
            scheme, sep, rest = o.partition("://")
            if o != "*" and (not sep or scheme.lower() not in ("http", "https") or not rest
                             or "/" in rest):
                raise ValueError(
                    f"{o!r} is not an origin; list them comma-separated, e.g."
                    " https://crm.example.vn,http://10.0.0.5:8080 (or * for any)")
        return ",".join(origins)

    @model_validator(mode="after")
    def _check_expires(self) -> Settings:
        if self.register_min_expires > self.register_max_expires:
            raise ValueError("register_min_expires must not exceed register_max_expires")
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.sip_wss_port and not self.tls_cert:
            raise ValueError("sip_wss_port needs tls_cert and tls_key (PEM files)")
        return self

    # Derived values ---------------------------------------------------------

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        a, b = self.rtp_ports.split("-")
        return int(a), int(b)

    @property
    def rtpengine_address(self) -> tuple[str, int] | None:
        """(host, port) of rtpengine's ng protocol, or None for the built-in relay."""
        return _rtpengine_address(self.media_engine) if self.media_engine else None

    @property
    def digest_algorithm_list(self) -> tuple[str, ...]:
        return tuple(self.digest_algorithms.split(","))

    @property
    def sip_edge_addresses(self) -> frozenset[tuple[str, int]]:
        """The edge proxies as (host, port), IPv6 without brackets."""
        out = set()
        for item in self.sip_edge_proxies.split(",") if self.sip_edge_proxies else ():
            host, _, port = item.rpartition(":")
            out.add((host.strip("[]").lower(), int(port)))
        return frozenset(out)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The trusted proxies as networks (``10.0.0.5/32``)."""
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    @property
    def metrics_allow_list(self) -> list[str]:
        """The networks that may read /metrics."""
        return self.metrics_allow.split(",") if self.metrics_allow else []

    @property
    def sip_ws_origin_list(self) -> tuple[str, ...]:
        return tuple(self.sip_ws_origins.split(",")) if self.sip_ws_origins else ()

    @property
    def domain(self) -> str:
        return self.sip_domain or self.sip_host

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy async URL of the database."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'tongdai.sqlite3').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + url[len("postgresql://"):]
        if url.startswith("sqlite://") and not url.startswith("sqlite+"):
            return "sqlite+aiosqlite://" + url[len("sqlite://"):]
        return url

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def prompts_dir(self) -> Path:
        """Apps' uploaded prompts (``tongdai.media.prompts.PromptLibrary``)."""
        return self.data_dir / "prompts"

    @property
    def log_style(self) -> LogFormat:
        return "json" if self.log_format == "json" else "text"


def _rtpengine_address(value: str) -> tuple[str, int] | None:
    scheme, _, rest = value.partition(":")
    host, _, port = rest.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # rtpengine:[::1]:22222
    if scheme != "rtpengine" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def find_config(explicit: Path | None = None) -> Path | None:
    """The settings file to read: ``--config``, else ``$TONGDAI_CONFIG``, else
    ``./tongdai.toml`` when the current directory has one, else none."""
    if explicit is not None:
        return explicit
    named = os.environ.get(CONFIG_ENV, "")
    if named:
        return Path(named)
    return LOCAL_CONFIG if LOCAL_CONFIG.is_file() else None


def source_of(name: str, config_file: Path | None) -> str:
    """Where setting ``name`` came from, in words: the environment variable, the
    config file, or the default (for messages such as "data dir from ...")."""
    env = f"TONGDAI_{name.upper()}"
    if env in os.environ:
        return env
    if config_file is not None and config_file.is_file():
        try:
            if name in _read_toml(config_file):
                return f"config file {config_file}"
        except SettingsError:
            pass
    return "the default"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    section = raw.get("tongdai", raw)
    if not isinstance(section, dict):
        raise SettingsError(f"config file {path}: [tongdai] must be a table")
    values = {str(k).lower(): v for k, v in section.items()}
    data_dir = values.get("data_dir")
    if isinstance(data_dir, str) and not Path(data_dir).expanduser().is_absolute():
        # A relative data dir in a file means "next to the file", wherever the command
        # is run from (as operators expect of /etc/tongdai/tongdai.toml).
        values["data_dir"] = str(path.parent / data_dir)
    return values


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise SettingsError with one line naming a bad setting."""
    file_values = _read_toml(config_file) if config_file else {}

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, init_settings: Any, env_settings: Any,
            dotenv_settings: Any, file_secret_settings: Any,
        ) -> tuple[Any, ...]:
            # Order is precedence: explicit overrides, then env, then the file.
            return (init_settings, env_settings, _DictSource(settings_cls, file_values))

    try:
        s = _FromFile(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "not a tongdai setting (see the settings table in README.md)"
        env = f"TONGDAI_{loc.upper()}"
        from_file = loc in file_values and loc not in overrides and env not in os.environ
        if from_file:
            # Name the key as the operator wrote it, not an env variable they never set.
            raise SettingsError(f"config file {config_file}: {loc}: {msg}") from None
        name = env if loc != "settings" else "settings"
        raise SettingsError(f"invalid setting {name}: {msg}") from None
    return Settings.model_construct(**s.model_dump())


class _DictSource:
    """A pydantic-settings source returning fixed values (from the TOML file)."""

    def __init__(self, settings_cls: Any, values: dict[str, Any]) -> None:
        self.values = values

    def __call__(self) -> dict[str, Any]:
        return self.values
