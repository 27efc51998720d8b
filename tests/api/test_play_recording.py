from __future__ import annotations

import time

import httpx
import pytest

from tongdai.media.urls import RecordingSigner
from tongdai.store import Store

from .support import Tenant, Tenants, cdr, sha, sqlite_only

URL = "/oapi/v1/call/play_recording"
MEDIA = "call_recording_dl5m5j5hfh4n8njj1oor.mp3"


def signed(t: Tenant, media: str, *, app_id: str | None = None) -> dict[str, str]:
    app_id = app_id if app_id is not None else t.app_id
    return {"appId": app_id, "media": media, "hash": sha(app_id, media, t.secret)}


@pytest.fixture
async def recorded(store: Store, tenants: Tenants) -> None:
    await store.add_cdr(cdr(tenants.a.app_id, time.time() - 600, "call-rec", recording=MEDIA))


def url_parts(url: str) -> tuple[str, str, int, str]:
    u = httpx.URL(url)
    _, kind, app_id, name = u.path.split("/")
    assert kind == "recordings"
    return app_id, name, int(u.params["expires"]), u.params["sig"]


@pytest.mark.usefixtures("recorded")
async def test_returns_a_signed_url_of_the_apps_recording(
    client: httpx.AsyncClient, tenants: Tenants, recordings: RecordingSigner
) -> None:
    a = tenants.a
    r = await client.get(URL, params=signed(a, MEDIA))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"url", "expire"}
    assert body["url"].startswith(f"http://media.test/recordings/{a.app_id}/{MEDIA}?")
    assert int(time.time()) + 890 <= body["expire"] <= int(time.time()) + 900
    app_id, name, expires, sig = url_parts(body["url"])
    assert (app_id, name, expires) == (a.app_id, MEDIA, body["expire"])
    assert recordings.verify(app_id, name, expires, sig, time.time())
    assert not recordings.verify(tenants.b.app_id, name, expires, sig, time.time())
    assert not recordings.verify(app_id, name, expires, sig, expires + 1)
    q = signed(a, MEDIA)
    q["hash"] = q["hash"].upper()
    assert (await client.get(URL, params=q)).status_code == 200


@pytest.mark.usefixtures("recorded")
async def test_another_apps_recording_is_not_found(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    b = tenants.b
    r = await client.get(URL, params=signed(b, MEDIA))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    # Naming app A with B's secret is an auth failure, not a lookup.
    r = await client.get(URL, params=signed(b, MEDIA, app_id=tenants.a.app_id))
    assert r.status_code == 401
    assert "url" not in r.json()


@pytest.mark.usefixtures("recorded")
async def test_unknown_recording_is_404(client: httpx.AsyncClient, tenants: Tenants) -> None:
    r = await client.get(URL, params=signed(tenants.a, "call_recording_nosuchfile.mp3"))
    assert r.status_code == 404
    assert "call_recording_nosuchfile.mp3" in r.json()["message"]


@sqlite_only
@pytest.mark.parametrize(
    "media",
    [
        "",
        "recording.mp3",
        "call_recording_ABC.mp3",
        "call_recording_abc.wav",
        "call_recording_.mp3",
        "../call_recording_abc.mp3",
        "call_recording_abc.mp3/../../etc/passwd",
        "call_recording_abc.mp3\n",
        "call_recording_" + "a" * 101 + ".mp3",
    ],
)
async def test_bad_media_names_are_400(
    client: httpx.AsyncClient, tenants: Tenants, media: str
) -> None:
    r = await client.get(URL, params=signed(tenants.a, media))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_parameter"
    assert r.json()["message"].startswith("media ")


@sqlite_only
@pytest.mark.usefixtures("recorded")
async def test_wrong_or_missing_hash_is_401(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a = tenants.a
    q = signed(a, MEDIA)
    q["hash"] = sha(a.app_id, MEDIA + "x", a.secret)
    assert (await client.get(URL, params=q)).status_code == 401
    del q["hash"]
    r = await client.get(URL, params=q)
    assert r.status_code == 401
    assert r.json()["message"].startswith("hash is required")
