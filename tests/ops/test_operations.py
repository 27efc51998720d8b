"""/healthz, /readyz and /metrics on the whole PBX in-process: real SIP over UDP on
loopback, a real database, the HTTP app through ASGI."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.pbx.carrier import DID, SDP, answered, route_did_to_alice
from tests.pbx.peers import UdpPeer, sip_text

from tongdai import cli
from tongdai.server import Pbx, build, http_app, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Request, Response

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKops1;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: <sip:{did}@127.0.0.1>
Call-ID: ops-call-1
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port}>
Content-Type: application/sdp

{body}"""
ACK = """ACK {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKops2;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: ops-call-1
CSeq: 1 ACK

"""
BYE = """BYE {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKops3;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: ops-call-1
CSeq: 2 BYE

"""


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    p = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42400-42499"))
    try:
        yield p
    finally:
        await shutdown(p)


@pytest.fixture
async def pbx_on(tmp_path: Path, db_url: str) -> AsyncIterator[Pbx]:
    """The PBX on SQLite and on PostgreSQL: for what queries the database."""
    p = await build(load_settings(data_dir=tmp_path, database_url=db_url, sip_port=0,
                                  rtp_ports="42400-42499"))
    try:
        yield p
    finally:
        await shutdown(p)


def client(pbx: Pbx, address: str = "127.0.0.1") -> httpx.AsyncClient:
    app = http_app(pbx)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),  # type: ignore[arg-type]
                             base_url="http://pbx.test")


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text, or None when it is absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) \
                == ",".join(sorted(want.split(","))):
            return float(m.group(3))
    return None


async def test_healthz_answers_while_the_process_serves(pbx: Pbx) -> None:
    async with client(pbx, "198.51.100.20") as c:
        r = await c.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_names_the_store_once_it_is_closed(pbx_on: Pbx) -> None:
    pbx = pbx_on
    async with client(pbx) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready",
                                "checks": {"store": "ok", "sip": "ok", "bus": "ok"}}
        await pbx.store.close()
        r = await c.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "not_ready"
    assert body["not_ready"] == ["store"]
    assert body["message"] == "Not ready: store: closed."
    assert body["checks"]["sip"] == "ok"


async def test_readyz_names_the_sip_transports_once_they_are_closed(pbx: Pbx) -> None:
    await pbx.shell.stop()
    async with client(pbx) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["not_ready"] == ["sip"]
    assert r.json()["checks"]["sip"] == "not listening on udp, tcp"


async def test_metrics_are_prometheus_text(pbx: Pbx) -> None:
    async with client(pbx) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["tongdai_registrations"].type == "gauge"
    assert families["tongdai_calls"].type == "counter"
    assert families["tongdai_call_setup_seconds"].type == "histogram"


async def test_metrics_are_refused_to_an_address_not_allowed(pbx: Pbx) -> None:
    async with client(pbx, "203.0.113.9") as c:
        r = await c.get("/metrics")
    assert r.status_code == 403
    assert r.json() == {
        "code": "forbidden",
        "message": "Metrics are not served to 203.0.113.9; list its address in "
                   "TONGDAI_METRICS_ALLOW."}
    assert "tongdai_" not in r.text


async def test_metrics_allow_lists_networks(tmp_path: Path) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42500-42599",
                                    metrics_allow="10.1.0.0/16"))
    try:
        async with client(pbx, "10.1.2.3") as c:
            assert (await c.get("/metrics")).status_code == 200
        async with client(pbx, "127.0.0.1") as c:
            assert (await c.get("/metrics")).status_code == 403
    finally:
        await shutdown(pbx)


async def test_a_trusted_proxy_does_not_make_its_clients_local(tmp_path: Path) -> None:
    """Behind a reverse proxy on loopback, the client is the one X-Forwarded-For names."""
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42600-42699",
                                    trusted_proxies="127.0.0.1"))
    try:
        async with client(pbx, "127.0.0.1") as c:
            relayed = await c.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
            direct = await c.get("/metrics")
        assert relayed.status_code == 403
        assert "198.51.100.7" in relayed.json()["message"]
        assert direct.status_code == 200
    finally:
        await shutdown(pbx)


async def test_operations_endpoints_answer_get_only(pbx: Pbx) -> None:
    async with client(pbx) as c:
        r = await c.post("/healthz")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


async def add_device(pbx: Pbx, app_id: str, user: str, password: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As an administrator does, with the CLI, while the server runs."""
    if pbx.settings.database_url:
        monkeypatch.setenv("TONGDAI_DATABASE_URL", pbx.settings.database_url)
    code = await asyncio.to_thread(cli.main, [
        "--data-dir", str(pbx.settings.data_dir), "device", "add", "--app", app_id, user,
        "--password", password, "--json"])
    assert code == 0


async def test_metrics_after_a_registration_and_a_call(
    pbx_on: Pbx, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pbx = pbx_on
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    try:
        app = await pbx.store.create_app("ops")
        await add_device(pbx, app.app_id, "alice", "alice-secret", monkeypatch)
        await route_did_to_alice(pbx, app.app_id, carrier, alice)

        ok, _ = await answered(carrier, alice, sip_text(INVITE.format(
            did=DID, port=carrier.port, body=SDP.format(port=40000))), ringing=True)
        ruri = (ok.headers.get("contact") or "").strip("<>")
        to = ok.headers.get("to") or ""
        await carrier.send(sip_text(ACK.format(ruri=ruri, port=carrier.port, to=to)))
        async with client(pbx) as c:
            during = (await c.get("/metrics")).text
            await carrier.send(sip_text(BYE.format(ruri=ruri, port=carrier.port, to=to)))
            bye = await alice.recv(lambda m: isinstance(m, Request) and m.method == "BYE")
            assert isinstance(bye, Request)
            await alice.answer(bye, 200)
            await carrier.recv(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")
            for _ in range(100):  # call.ended is published once the CDR is stored
                text = (await c.get("/metrics")).text
                if sample(text, "tongdai_calls_total", status="SUCCESS") == 1:
                    break
                await carrier.collect(0.05)
            await c.get("/oapi/v1/nothing-here")
            text = (await c.get("/metrics")).text
    finally:
        carrier.close()
        alice.close()

    assert sample(during, "tongdai_registrations") == 1
    assert sample(during, "tongdai_calls_active", state="answered") == 1
    assert sample(during, "tongdai_media_sessions") == 1
    assert sample(text, "tongdai_calls_total", status="SUCCESS") == 1
    assert sample(text, "tongdai_calls_total", status="BUSY") == 0
    assert sample(text, "tongdai_calls_active", state="answered") == 0
    assert sample(text, "tongdai_call_setup_seconds_count", stage="ringing") == 1
    assert sample(text, "tongdai_call_setup_seconds_count", stage="answer") == 1
    setup = sample(text, "tongdai_call_setup_seconds_sum", stage="answer")
    assert setup is not None and 0 < setup < 5
    assert sample(text, "tongdai_register_requests_total", outcome="ok") == 1
    assert sample(text, "tongdai_register_requests_total", outcome="challenged") == 1
    # Every event reached this node's subscribers; a lag was measured for each.
    lag = sample(text, "tongdai_bus_lag_seconds_count")
    assert lag is not None and lag >= 3
    assert sample(text, "tongdai_bus_connected") == 1
    assert sample(text, "tongdai_webhook_backlog") == 0
    assert sample(text, "tongdai_http_requests_total", route="/metrics", method="GET",
                  status="200") is not None
    assert sample(text, "tongdai_http_requests_total", route="unmatched", method="GET",
                  status="404") == 1
    assert sample(text, "process_cpu_seconds_total") is not None
    assert "_created" not in text


async def test_readyz_counts_the_websocket_listener_among_the_sip_transports(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ws_port = s.getsockname()[1]
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42800-42899",
                                    sip_ws_port=ws_port))
    try:
        async with client(pbx) as c:
            assert (await c.get("/readyz")).status_code == 200
            await pbx.shell.stop()
            r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["sip"] == "not listening on udp, tcp, ws"
    finally:
        await shutdown(pbx)
