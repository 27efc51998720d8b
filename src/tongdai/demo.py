"""A ready-to-try tenant for ``tongdai demo``: an app with two devices, and a text with
everything needed to register two softphones and call the four Open API endpoints."""

from __future__ import annotations

import secrets
import shlex
import string
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tongdai.api.auth import sha256_hex
from tongdai.settings import Settings
from tongdai.store.protocol import Store

DEMO_DEVICES = (("alice", "101"), ("bob", "102"))
_ALNUM = string.ascii_letters + string.digits


def _password() -> str:
    # 16 alphanumerics (95 bits): nothing to escape in a shell or an account line.
    return "".join(secrets.choice(_ALNUM) for _ in range(16))


async def ensure_demo(store: Store, settings: Settings) -> dict[str, Any] | None:
    """On an empty database, create app "demo" with devices alice (101) and bob (102)
    and return their credentials (shown once: only HA1 is stored); otherwise None."""
    if await store.list_apps():
        return None
    app = await store.create_app("demo")
    devices = []
    for sip_user, extension in DEMO_DEVICES:
        password = _password()
        await store.add_device(
            app.app_id, sip_user, password, realm=settings.domain,
            display_name=sip_user.capitalize(), extension=extension,
        )
        devices.append({"sip_user": sip_user, "password": password, "extension": extension})
    return {"app_id": app.app_id, "app_secret": app.app_secret, "devices": devices}


def _sip_host(settings: Settings) -> str:
    host = settings.sip_host
    if host in ("0.0.0.0", "::", ""):
        return settings.sip_domain or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def demo_text(info: dict[str, Any], settings: Settings) -> str:
    """The demo's credentials, softphone account lines and copy-paste curl commands."""
    app_id, secret = str(info["app_id"]), str(info["app_secret"])
    devices: list[dict[str, str]] = list(info["devices"])
    base = settings.base_url
    hostport = f"{_sip_host(settings)}:{settings.sip_port}"
    q = shlex.quote
    app_headers = (
        f"-H 'x-auth-app-id: {app_id}' -H 'x-auth-app-hash: {sha256_hex(app_id + secret)}'"
    )
    caller, callee = devices[0], devices[-1]
    body = q(f'{{"sipUser": "{caller["sip_user"]}", "sipPassword": "{caller["password"]}"}}')
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    start, end, limit, page = str(today - timedelta(days=7)), str(today), "20", "1"
    h_hash = sha256_hex(app_id + start + end + limit + page + secret)
    histories = (
        f"{base}/oapi/v1/call/histories?appId={app_id}&created_from={start}"
        f"&created_to={end}&limit={limit}&page={page}&hash={h_hash}"
    )
    lines = [
        "Demo app (created on this first start; the passwords are not stored, keep them):",
        f"  appId      {app_id}",
        f"  appSecret  {secret}",
        f"Devices (SIP realm {settings.domain}, registrar {hostport}):",
    ]
    lines += [
        f"  {d['sip_user']:<6} extension {d['extension']}  password {d['password']}"
        for d in devices
    ]
    lines.append("Softphone accounts (one line each in ~/.baresip/accounts):")
    lines += [f"  <sip:{d['sip_user']}@{hostport}>;auth_pass={d['password']}" for d in devices]
    lines += [
        "Open API (hashes precomputed):",
        "  # 1. a websocket auth token for alice",
        f"  curl -X POST {base}/oapi/v1/voice/auth_token {app_headers} \\",
        f"       -H 'Content-Type: application/json' -d {body}",
        f"  # 2. click-to-call: ring alice, then call {callee['sip_user']} (extension"
        f" {callee['extension']})",
        f"  curl -X POST {base}/oapi/v1/call/click-to-call/{callee['extension']} {app_headers} \\",
        f"       -H 'Content-Type: application/json' -d {body}",
        f"  # 3. call history of the last week ({start} to {end})",
        f"  curl {q(histories)}",
        "  # 4. a recording's URL: set media to a \"recording\" value from the history",
        "  media=call_recording_XXXX.mp3",
        f"  curl \"{base}/oapi/v1/call/play_recording?appId={app_id}&media=$media&hash="
        f"$(printf '%s' '{app_id}'\"$media\"'{secret}' | sha256sum | cut -d' ' -f1)\"",
    ]
    return "\n".join(lines)
