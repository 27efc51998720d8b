"""Operations endpoints of a real tongdai process: after a SIPp device registers and a
SIPp carrier's call to it is answered, /metrics counts both; /readyz is ready; an
address outside TONGDAI_METRICS_ALLOW gets 403."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import Server, free_port, make_server, scenario, wait_until
from tests.ops.test_operations import sample

pytestmark = pytest.mark.e2e

DID = "02873019555"


def get(server: Server, path: str, source: str = "127.0.0.1") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path, metrics_allow="127.0.0.1")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def run(tmp: Path, name: str, src: str, *args: str) -> subprocess.Popen[bytes]:
    path = tmp / name
    path.write_text(src)
    return subprocess.Popen(["sipp", "-sf", str(path), "-i", "127.0.0.1", "-nostdin",
                             "-timeout", "30", "-m", "1", *args],
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_metrics_and_readiness_after_a_sipp_registration_and_call(
    server: Server, tmp_path: Path, audio: dict[str, Path],
) -> None:
    app = server.cli("app", "create", "ops")["app_id"]
    server.cli("device", "add", "--app", app, "alice", "--password", "alice-secret-pw")
    carrier_port, device_port = free_port(), free_port()
    server.cli("trunk", "add", "--app", app, "carrier", "--host", "127.0.0.1",
               "--port", str(carrier_port))
    server.cli("did", "add", "--app", app, DID, "--device", "alice")

    # The device registers from device_port, then answers calls there.
    users = tmp_path / "users.csv"
    users.write_text("SEQUENTIAL\nalice;alice-secret-pw;"
                     "[authentication username=alice password=alice-secret-pw];\n")
    reg = run(tmp_path, "register.xml", Path(scenario("register_auth_uac.xml")).read_text(),
              server.sip, "-inf", str(users), "-p", str(device_port))
    assert reg.wait(30) == 0, server.log()[-3000:]
    status, text = get(server, "/metrics")
    assert status == 200
    assert sample(text, "tongdai_registrations") == 1

    tone = str(audio["tone440_pcmu"])
    phone = run(tmp_path, "phone.xml", Path(scenario("uas_answer.xml")).read_text()
                .replace("@RING_MS@", "200").replace("@AUDIO@", tone),
                "-p", str(device_port), "-mp", str(free_port()))
    carrier = run(tmp_path, "carrier.xml", Path(scenario("uac_did.xml")).read_text()
                  .replace("@AUDIO@", tone),
                  server.sip, "-s", DID, "-p", str(carrier_port), "-mp", str(free_port()),
                  "-d", "1000")
    try:
        assert carrier.wait(30) == 0, server.log()[-3000:]
        assert phone.wait(30) == 0, server.log()[-3000:]
    finally:
        for p in (carrier, phone):
            if p.poll() is None:
                p.kill()
                p.wait()

    # call.ended is counted once the CDR is stored.
    text = wait_until(lambda: (t := get(server, "/metrics")[1]) and sample(
        t, "tongdai_calls_total", status="SUCCESS") == 1 and t, timeout=15)
    assert sample(text, "tongdai_registrations") == 1
    assert sample(text, "tongdai_calls_active", state="answered") == 0
    assert sample(text, "tongdai_call_setup_seconds_count", stage="ringing") == 1
    assert sample(text, "tongdai_call_setup_seconds_count", stage="answer") == 1
    answer = sample(text, "tongdai_call_setup_seconds_sum", stage="answer")
    assert answer is not None and 0.2 <= answer < 5  # the phone rang 200 ms
    assert sample(text, "tongdai_register_requests_total", outcome="ok") == 1

    status, body = get(server, "/readyz")
    assert status == 200
    assert json.loads(body)["checks"] == {"store": "ok", "sip": "ok", "bus": "ok"}
    status, body = get(server, "/healthz", source="127.0.0.2")
    assert status == 200

    # Another loopback address is not in TONGDAI_METRICS_ALLOW=127.0.0.1.
    status, body = get(server, "/metrics", source="127.0.0.2")
    assert status == 403
    assert json.loads(body)["code"] == "forbidden"
    assert "tongdai_calls_total" not in body
