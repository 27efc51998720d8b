"""A ready-to-try tenant for ``tongdai demo``: an app with two devices, and a text with
everything needed to register two softphones and call the four Open API endpoints.

The text is shown at every start, not only the first: the app secret is read back from
the store, and the demo devices' passwords are kept in ``<data dir>/secrets/`` (0600),
the one place tongdai keeps device passwords, so that a demo is never locked out.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import shlex
import string
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tongdai.api.auth import sha256_hex
from tongdai.pbx.credentials import digest_keys
from tongdai.settings import Settings
from tongdai.sip.digest import ha1
from tongdai.store.protocol import Administration

DEMO_DEVICES = (("alice", "101"), ("bob", "102"))
DEMO_FILE = "demo-devices.json"
_ALNUM = string.ascii_letters + string.digits


def _password() -> str:
    # 16 alphanumerics (95 bits): nothing to escape in a shell or an account line.
    return "".join(secrets.choice(_ALNUM) for _ in range(16))


async def ensure_demo(store: Administration, settings: Settings) -> dict[str, Any] | None:
    """On an empty database, create app "demo" with devices alice (101) and bob (102)
    and return their credentials (shown once: only HA1 is stored); otherwise None."""
    if await store.list_apps():
        return None
    app = await store.create_app("demo")
    devices = []
    for sip_user, extension in DEMO_DEVICES:
        password = _password()
        await store.add_device(
            app.app_id, sip_user, digest_keys(sip_user, settings.domain, password),
            display_name=sip_user.capitalize(), extension=extension,
        )
        devices.append({"sip_user": sip_user, "password": password, "extension": extension})
    _save(settings, app.app_id, {d["sip_user"]: d["password"] for d in devices})
    return {"app_id": app.app_id, "app_secret": app.app_secret.reveal(), "devices": devices,
            "created": True}


async def load_demo(store: Administration, settings: Settings) -> dict[str, Any] | None:
    """The demo app's credentials as they stand now (for every later start), or None
    when there is no demo app. The app secret comes from the store (so a rotated one
    shows); a device's password only while it still matches (None once changed)."""
    saved = _load(settings)
    app = None
    if isinstance(saved.get("app_id"), str):
        app = await store.get_app(saved["app_id"])
    if app is None:
        app = next((a for a in await store.list_apps() if a.name == "demo"), None)
    if app is None:
        return None
    kept = saved.get("passwords") if saved.get("app_id") == app.app_id else None
    passwords: dict[str, Any] = kept if isinstance(kept, dict) else {}
    devices = []
    for dev in await store.list_devices(app.app_id):
        pw = passwords.get(dev.sip_user)
        if not isinstance(pw, str) or not hmac.compare_digest(
                ha1("MD5", dev.sip_user, dev.realm, pw), dev.ha1_md5):
            pw = None
        devices.append({"sip_user": dev.sip_user, "password": pw,
                        "extension": dev.extension or ""})
    return {"app_id": app.app_id, "app_secret": app.app_secret.reveal(), "devices": devices,
            "created": False}


async def start_demo(store: Administration, settings: Settings) -> dict[str, Any] | None:
    """Create the demo on an empty database, else read it back (None: no demo app)."""
    return await ensure_demo(store, settings) or await load_demo(store, settings)


def _demo_path(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / DEMO_FILE


def _save(settings: Settings, app_id: str, passwords: dict[str, str]) -> None:
    path = _demo_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{DEMO_FILE}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"app_id": app_id, "passwords": passwords}, f)
    os.replace(tmp, path)


def _load(settings: Settings) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(_demo_path(settings).read_text())
        if isinstance(data, dict):
            return data
    return {}


def _sip_host(settings: Settings) -> str:
    host = settings.sip_host
    if host in ("0.0.0.0", "::", ""):
        return settings.sip_domain or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def demo_text(info: dict[str, Any], settings: Settings) -> str:
    """The demo's credentials, softphone account lines and copy-paste curl commands."""
    app_id, secret = str(info["app_id"]), str(info["app_secret"])
    devices: list[dict[str, Any]] = list(info["devices"])
    base = settings.base_url
    hostport = f"{_sip_host(settings)}:{settings.sip_port}"
    q = shlex.quote
    app_headers = (
        f"-H 'x-auth-app-id: {app_id}' -H 'x-auth-app-hash: {sha256_hex(app_id + secret)}'"
    )
    usable = [d for d in devices if d.get("password")]
    caller = usable[0] if usable else {"sip_user": "SIP_USER", "password": "PASSWORD"}
    callee = next((d for d in devices if d["sip_user"] != caller["sip_user"]),
                  {"sip_user": "another device", "extension": "EXTENSION"})
    target = callee.get("extension") or callee["sip_user"]
    body = q(f'{{"sipUser": "{caller["sip_user"]}", "sipPassword": "{caller["password"]}"}}')
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    start, end, limit, page = str(today - timedelta(days=7)), str(today), "20", "1"
    h_hash = sha256_hex(app_id + start + end + limit + page + secret)
    histories = (
        f"{base}/oapi/v1/call/histories?appId={app_id}&created_from={start}"
        f"&created_to={end}&limit={limit}&page={page}&hash={h_hash}"
    )
    when = "created on this first start" if info.get("created", True) else "shown at every start"
    lines = [
        f"Demo app ({when}):",
        f"  appId      {app_id}",
        f"  appSecret  {secret}",
        f"Devices (SIP realm {settings.domain}, registrar {hostport}):",
    ]
    for d in devices:
        pw = d.get("password") or (
            f"(changed since; set one with: tongdai device passwd {d['sip_user']} --password -)")
        lines.append(f"  {d['sip_user']:<6} extension {d['extension'] or '-'}  password {pw}")
    lines.append("Softphone accounts (one line each in ~/.baresip/accounts):")
    lines += [f"  <sip:{d['sip_user']}@{hostport}>;auth_pass={d['password']}" for d in usable]
    lines += [
        "Open API (hashes precomputed):",
        f"  # 1. a websocket auth token for {caller['sip_user']}",
        f"  curl -X POST {base}/oapi/v1/voice/auth_token {app_headers} \\",
        f"       -H 'Content-Type: application/json' -d {body}",
        f"  # 2. click-to-call: ring {caller['sip_user']}, then call {callee['sip_user']}"
        f" ({target})",
        f"  curl -X POST {base}/oapi/v1/call/click-to-call/{target} {app_headers} \\",
        f"       -H 'Content-Type: application/json' -d {body}",
        f"  # 3. call history of the last week ({start} to {end})",
        f"  curl {q(histories)}",
        "  # 4. a recording's URL: set media to a \"recording\" value from the history",
        "  media=call_recording_XXXX.mp3",
        f"  curl \"{base}/oapi/v1/call/play_recording?appId={app_id}&media=$media&hash="
        f"$(printf '%s' '{app_id}'\"$media\"'{secret}' | sha256sum | cut -d' ' -f1)\"",
        "Lost a credential? 'tongdai app rotate-secret APP_ID' issues a new app secret;",
        "'tongdai device passwd SIP_USER --password -' sets a device's password.",
    ]
    return "\n".join(lines)
