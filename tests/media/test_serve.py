"""Serving recordings by signed URL, in-process through httpx's ASGI transport."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from tongdai.media import RecordingSigner, recording_routes

NAME = "call_recording_abcdefghij0123456789.mp3"
BODY = os.urandom(10_000)


@pytest.fixture
def signer() -> RecordingSigner:
    return RecordingSigner(b"s" * 32, "http://test", 900)


@pytest.fixture
async def client(tmp_path: Path, signer: RecordingSigner) -> AsyncIterator[httpx.AsyncClient]:
    for app_id in ("app1", "app2"):
        (tmp_path / app_id).mkdir()
        (tmp_path / app_id / NAME).write_bytes(BODY)
    (tmp_path / "app1" / f".{NAME}.part").write_bytes(b"half")
    (tmp_path / "secret.txt").write_bytes(b"do not serve")
    app = Starlette(routes=recording_routes(signer, tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as c:
        yield c


def link(signer: RecordingSigner, app_id: str = "app1", name: str = NAME,
         now: float | None = None) -> str:
    url, _ = signer.signed_url(app_id, name, time.time() if now is None else now)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_download_exact_bytes(client: httpx.AsyncClient, signer: RecordingSigner) -> None:
    r = await client.get(link(signer))
    assert r.status_code == 200
    assert r.content == BODY
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.headers["content-length"] == str(len(BODY))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"].startswith("private")
    h = await client.head(link(signer))
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == str(len(BODY))


@pytest.mark.parametrize(("spec", "start", "end"), [
    ("bytes=0-99", 0, 100),
    ("bytes=9000-", 9000, 10_000),
    ("bytes=-500", 9500, 10_000),
    ("bytes=9990-20000", 9990, 10_000),  # the end is clamped to the file
])
async def test_single_range(client: httpx.AsyncClient, signer: RecordingSigner,
                            spec: str, start: int, end: int) -> None:
    r = await client.get(link(signer), headers={"Range": spec})
    assert r.status_code == 206
    assert r.content == BODY[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(BODY)}"
    assert r.headers["content-length"] == str(end - start)
    assert r.headers["content-type"] == "audio/mpeg"


async def test_unsatisfiable_range(client: httpx.AsyncClient, signer: RecordingSigner) -> None:
    r = await client.get(link(signer), headers={"Range": "bytes=10000-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(BODY)}"


async def refused(client: httpx.AsyncClient, url: str, status: int, code: str | None) -> None:
    r = await client.get(url)
    assert r.status_code == status, (url, r.text)
    assert BODY not in r.content
    if code is not None:
        assert r.json()["code"] == code
        assert r.json()["message"]


async def test_expired_and_tampered_links(client: httpx.AsyncClient,
                                          signer: RecordingSigner) -> None:
    await refused(client, link(signer, now=time.time() - 901), 403, "recording_link_expired")
    good = link(signer)
    path, query = good.split("?")
    await refused(client, path, 403, "recording_link_invalid")
    await refused(client, good.replace("sig=", "sig=0"), 403, "recording_link_invalid")
    expires = int(query.split("&")[0].split("=")[1])
    await refused(client, good.replace(f"expires={expires}", f"expires={expires + 86400}"),
                  403, "recording_link_invalid")
    await refused(client, good.replace(f"expires={expires}", "expires=-1"), 403,
                  "recording_link_invalid")
    other = RecordingSigner(b"t" * 32, "http://test", 900)
    await refused(client, link(other), 403, "recording_link_invalid")


async def test_foreign_app_is_refused(client: httpx.AsyncClient,
                                      signer: RecordingSigner) -> None:
    # A valid link for app1's recording, pointed at app2's folder (same file name).
    good = link(signer, "app1")
    await refused(client, good.replace("/app1/", "/app2/"), 403, "recording_link_invalid")
    assert (await client.get(link(signer, "app2"))).content == BODY


async def test_unknown_file(client: httpx.AsyncClient, signer: RecordingSigner) -> None:
    await refused(client, link(signer, name="call_recording_nosuchfile.mp3"), 404,
                  "recording_not_found")
    await refused(client, link(signer, app_id="app3"), 404, "recording_not_found")


@pytest.mark.parametrize("path", [
    "/recordings/app1/..%2Fsecret.txt",
    "/recordings/app1/%2e%2e%2fsecret.txt",
    "/recordings/%2e%2e/secret.txt",
    "/recordings/..%2F..%2Fetc/passwd",
    "/recordings/app1%2F..%2Fapp2/" + NAME,
    "/recordings/app1/%2e%2e",
    "/recordings/..%5capp2/" + NAME,
    f"/recordings/app1/.{NAME}.part",
    "/recordings/app1/%2Fetc%2Fpasswd",
    "/recordings/app1/call_recording_x.mp3%00.txt",
    "/recordings/app1/CALL_RECORDING_X.MP3",
])
async def test_traversal_and_odd_names_are_refused(client: httpx.AsyncClient,
                                                   signer: RecordingSigner, path: str) -> None:
    # Even with a signature that matches the decoded names, nothing outside the
    # recordings (or not shaped like one) is served.
    app_id, _, name = unquote(path.removeprefix("/recordings/")).partition("/")
    url, _ = signer.signed_url(app_id, name, time.time())
    query = urlsplit(url).query
    r = await client.get(f"{path}?{query}")
    assert r.status_code in (403, 404)
    assert b"do not serve" not in r.content and b"half" not in r.content


async def test_partial_file_is_never_served(client: httpx.AsyncClient,
                                            signer: RecordingSigner) -> None:
    # The route matches and the signature is right: the name check alone refuses it.
    part = f".{NAME}.part"
    url, _ = signer.signed_url("app1", part, time.time())
    await refused(client, urlsplit(url).path + "?" + urlsplit(url).query, 404,
                  "recording_not_found")
