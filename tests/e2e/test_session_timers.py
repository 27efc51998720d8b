"""What carriers expect, with a real carrier (SIPp): RFC 4028 session timers (a carrier
that names itself the refresher and then goes silent gets its call ended, with the CDR
written) and RFC 3262 (a carrier that requires 100rel gets its PRACK)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import Phones, Server, free_port, make_server, scenario, wait_until

pytestmark = pytest.mark.e2e

OUTSIDE = "0901234567"


class Pbx:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.app_id: str = server.cli("app", "create", "timers")["app_id"]
        self.carrier_port = free_port()
        server.cli("device", "add", "--app", self.app_id, "alice", "--password",
                   "alice-secret-pw", "--extension", "101")
        server.cli("trunk", "add", "--app", self.app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(self.carrier_port))

    def cdrs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return result

    def carrier(self, scen: str, audio: Path) -> subprocess.Popen[bytes]:
        src = Path(scenario(scen)).read_text().replace("@AUDIO@", str(audio))
        path = self.tmp / f"carrier-{time.monotonic_ns()}.xml"
        path.write_text(src)
        return subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.carrier_port),
             "-mp", str(free_port()), "-m", "1", "-timeout", "120", "-nostdin",
             "-trace_err"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def phone(self, phones: Phones) -> Baresip:
        p = phones.start(f"alice-{time.monotonic_ns()}", "tone440")
        p.add_account("alice", "alice-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("session-timers")
    # Media never goes quiet here, and must not be what ends the call.
    server = make_server(tmp, media_timeout="600")
    server.start()
    try:
        yield Pbx(server, tmp)
    finally:
        server.stop()


def test_a_carrier_that_stops_refreshing_gets_its_call_ended_with_a_cdr(
        pbx: Pbx, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_session_timer_silent.xml", audio["tone1000_pcmu"])
    a = pbx.phone(phones)
    res = a.ctl.cmd("dial", f"sip:{OUTSIDE}@{pbx.server.sip}")
    assert res.get("ok"), res
    a.ctl.wait_event("CALL_ESTABLISHED", 10)
    answered = time.monotonic()
    # RFC 4028 §10: 90 s negotiated, the carrier refreshes: we give up at 60 s.
    a.ctl.wait_event("CALL_CLOSED", 80)
    ended = time.monotonic() - answered
    assert 55 < ended < 70, ended
    try:
        assert carrier.wait(15) == 0  # the carrier got our BYE and nothing else
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait()
    cdr = wait_until(lambda: (r := pbx.cdrs()) and len(r) > before and r, 20)[0]
    assert (cdr["status_detail"], cdr["hangup_by"]) == ("SUCCESS", "system")
    assert cdr["billing_seconds"] >= 55
    assert "call.session_expired" in pbx.server.log()


def test_a_carrier_that_requires_100rel_gets_its_prack_and_the_call_connects(
        pbx: Pbx, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_100rel.xml", audio["tone1000_pcmu"])
    a = pbx.phone(phones)
    res = a.ctl.cmd("dial", f"sip:{OUTSIDE}@{pbx.server.sip}")
    assert res.get("ok"), res
    # The carrier answers only after our PRACK of its reliable 180 (RFC 3262 §3).
    a.ctl.wait_event("CALL_ESTABLISHED", 15)
    time.sleep(1)
    a.ctl.cmd("hangup")
    try:
        assert carrier.wait(15) == 0
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait()
    rows = wait_until(lambda: (r := pbx.cdrs()) and len(r) > before and r, 20)
    assert rows[0]["status_detail"] == "SUCCESS"
