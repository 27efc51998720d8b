"""Typed settings: embedded defaults, an optional TOML file, then environment variables.

Environment variables win over the file. Every setting has an environment name
``TONGDAI_<FIELD>`` (upper case); in a TOML file the same names are written in lower
case without the prefix (``http_port = 8080``), at the top level or under ``[tongdai]``.
"""

from __future__ import annotations

import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    rtp_ports: str = "20000-20999"
    public_url: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: str = "info"

    # Registrar (RFC 3261 §10.3): bounds on binding lifetimes, in seconds.
    register_min_expires: int = Field(60, ge=1)
    register_max_expires: int = Field(3600, ge=1)
    register_default_expires: int = Field(3600, ge=1)
    nonce_lifetime: int = Field(300, ge=10)
    # Digest algorithms offered in challenges, strongest first (RFC 8760). Some
    # deployed phones (baresip 1.x, older libre) fail on any challenge they cannot
    # parse, so SHA-256 is opt-in: "SHA-256,MD5".
    digest_algorithms: str = "MD5"
    # Brute-force protection: this many failed authentications within the window
    # from one source address (or for one user) blocks it for the cooling period.
    auth_fail_limit: int = Field(10, ge=1)
    auth_fail_window: int = Field(60, ge=1)
    auth_block_seconds: int = Field(300, ge=1)

    # Calls
    ring_timeout: int = Field(60, ge=1)
    max_call_duration: int = Field(14400, ge=1)
    media_timeout: int = Field(60, ge=1)
    record_calls_default: bool = True

    # Open API
    token_ttl: int = Field(3600, ge=60)
    recording_url_ttl: int = Field(900, ge=10)
    ws_retain_events: int = Field(1000, ge=10)
    ws_queue_limit: int = Field(1000, ge=10)
    ws_ping_interval: float = Field(20.0, gt=0)

    @field_validator("rtp_ports")
    @classmethod
    def _check_rtp_ports(cls, v: str) -> str:
        lo, sep, hi = v.partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise ValueError("must be a range like 20000-20999")
        a, b = int(lo), int(hi)
        if not (1024 <= a < b <= 65535) or (b - a) < 3:
            raise ValueError("must be a range of at least 4 ports within 1024-65535")
        return f"{a}-{b}"

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

    @model_validator(mode="after")
    def _check_expires(self) -> Settings:
        if self.register_min_expires > self.register_max_expires:
            raise ValueError("register_min_expires must not exceed register_max_expires")
        return self

    # Derived values ---------------------------------------------------------

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        a, b = self.rtp_ports.split("-")
        return int(a), int(b)

    @property
    def digest_algorithm_list(self) -> tuple[str, ...]:
        return tuple(self.digest_algorithms.split(","))

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
    return {str(k).lower(): v for k, v in section.items()}


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
        name = f"TONGDAI_{loc.upper()}" if loc != "settings" else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}: {msg}") from None
    return Settings.model_construct(**s.model_dump())


class _DictSource:
    """A pydantic-settings source returning fixed values (from the TOML file)."""

    def __init__(self, settings_cls: Any, values: dict[str, Any]) -> None:
        self.values = values

    def __call__(self) -> dict[str, Any]:
        return self.values
