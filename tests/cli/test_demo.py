"""The demo tenant and its instructions."""

import hashlib
import re
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tongdai.demo import demo_text, ensure_demo, load_demo, start_demo
from tongdai.pbx.credentials import digest_keys
from tongdai.settings import Settings, load_settings
from tongdai.sip.digest import ha1
from tongdai.store.sql import SqlStore


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TONGDAI_SIP_DOMAIN", "pbx.test")
    monkeypatch.setenv("TONGDAI_SIP_PORT", "5099")
    monkeypatch.setenv("TONGDAI_PUBLIC_URL", "https://pbx.test:8443/")
    return load_settings()


async def test_ensure_demo_only_on_an_empty_database(store: SqlStore, settings: Settings) -> None:
    info = await ensure_demo(store, settings)
    assert info is not None
    app = await store.get_app(info["app_id"])
    assert app is not None and app.name == "demo"
    assert app.app_secret.reveal() == info["app_secret"]
    devices = {d["sip_user"]: d for d in info["devices"]}
    assert {u: d["extension"] for u, d in devices.items()} == {"alice": "101", "bob": "102"}
    for user, d in devices.items():
        assert len(d["password"]) >= 16
        stored = await store.get_device(user)
        assert stored is not None and stored.app_id == app.app_id
        assert stored.ha1_md5 == ha1("MD5", user, "pbx.test", d["password"])
    assert devices["alice"]["password"] != devices["bob"]["password"]
    assert await ensure_demo(store, settings) is None  # never twice
    assert len(await store.list_apps()) == 1


async def test_ensure_demo_leaves_existing_apps_alone(store: SqlStore, settings: Settings) -> None:
    await store.create_app("production")
    assert await ensure_demo(store, settings) is None
    assert await store.list_devices() == []


async def test_every_start_shows_the_demo_again(store: SqlStore, settings: Settings) -> None:
    first = await start_demo(store, settings)
    assert first is not None and first["created"] is True
    kept = settings.data_dir / "secrets" / "demo-devices.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    again = await start_demo(store, settings)
    assert again == first | {"created": False}
    assert "Demo app (shown at every start):" in demo_text(again, settings)

    # What an operator changed since shows as it is now: the rotated secret, and no
    # stale password (with the command that sets one instead).
    rotated = await store.rotate_secret(first["app_id"])
    await store.set_keys("bob", digest_keys("bob", "pbx.test", "Changed-Since-1"))
    now = await load_demo(store, settings)
    assert now is not None and now["app_secret"] == rotated.app_secret.reveal() != first[
        "app_secret"]
    passwords = {d["sip_user"]: d["password"] for d in now["devices"]}
    assert passwords == {"alice": first["devices"][0]["password"], "bob": None}
    text = demo_text(now, settings)
    assert "tongdai device passwd bob --password -" in text
    assert "auth_pass=None" not in text and "<sip:bob@" not in text
    assert rotated.app_secret.reveal() in text


async def test_no_demo_app_no_demo_text(store: SqlStore, settings: Settings) -> None:
    await store.create_app("production")
    assert await start_demo(store, settings) is None
    assert not (settings.data_dir / "secrets" / "demo-devices.json").exists()


def test_demo_text(settings: Settings) -> None:
    app_id, secret = "abcdefghij0123456789", "s" * 64
    info = {"app_id": app_id, "app_secret": secret, "devices": [
        {"sip_user": "alice", "password": "PwAlice123456789", "extension": "101"},
        {"sip_user": "bob", "password": "PwBob12345678901", "extension": "102"},
    ]}
    text = demo_text(info, settings)
    assert app_id in text and secret in text
    assert "<sip:alice@127.0.0.1:5099>;auth_pass=PwAlice123456789" in text
    assert "<sip:bob@127.0.0.1:5099>;auth_pass=PwBob12345678901" in text
    assert f"x-auth-app-hash: {_sha(app_id + secret)}" in text
    assert "https://pbx.test:8443/oapi/v1/voice/auth_token" in text
    assert "https://pbx.test:8443/oapi/v1/call/click-to-call/102" in text

    # The histories URL's hash covers its own query values, as sent.
    url = re.search(r"'(https://\S+/oapi/v1/call/histories\?\S+)'", text)
    assert url is not None
    q = {k: v[0] for k, v in parse_qs(urlsplit(url.group(1)).query).items()}
    assert q["appId"] == app_id and (q["limit"], q["page"]) == ("20", "1")
    assert q["hash"] == _sha(app_id + q["created_from"] + q["created_to"] + "20" + "1" + secret)

    # The play_recording line computes its hash in the shell: run it with echo.
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip().startswith("media="))
    script = lines[i].strip() + "\n" + lines[i + 1].strip().replace("curl ", "echo ", 1)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    q = {k: v[0] for k, v in parse_qs(urlsplit(out.stdout.strip()).query).items()}
    assert q["media"] == "call_recording_XXXX.mp3"
    assert q["hash"] == _sha(app_id + "call_recording_XXXX.mp3" + secret)
