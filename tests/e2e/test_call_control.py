"""Call control and transfer end to end: a real server, baresip devices, a SIPp
carrier, the Open API over HTTP."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.audiocheck import dominant_hz, duration, rms, samples, tone_power
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import (
    Phones,
    Server,
    free_port,
    make_server,
    port_block,
    scenario,
    wait_process,
    wait_until,
)

pytestmark = pytest.mark.e2e


class Pbx:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        app = server.cli("app", "create", "control")
        self.app_id: str = app["app_id"]
        self.secret: str = app["app_secret"]
        self.carrier_port = free_port()
        for user, ext in (("alice", "101"), ("bob", "102"), ("carol", "103")):
            server.cli("device", "add", "--app", self.app_id, user, "--password",
                       f"{user}-secret-pw", "--extension", ext)
        server.cli("trunk", "add", "--app", self.app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(self.carrier_port))
        self.http = httpx.Client(base_url=server.http, timeout=10)
        hash_ = hashlib.sha256((self.app_id + self.secret).encode()).hexdigest()
        self.headers = {"x-auth-app-id": self.app_id, "x-auth-app-hash": hash_}

    def phone(self, phones: Phones, user: str, tone: str = "tone440") -> Baresip:
        p = phones.start(f"{user}-{time.monotonic_ns()}", tone)
        p.add_account(user, f"{user}-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p

    def dial(self, phone: Baresip, target: str) -> None:
        res = phone.ctl.cmd("dial", f"sip:{target}@{self.server.sip}")
        assert res.get("ok"), res

    def expect(self, phone: Baresip, event: str, timeout: float = 10) -> dict[str, Any]:
        try:
            return phone.ctl.wait_event(event, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- tongdai log ---\n"
                                 f"{self.server.log()[-4000:]}") from None

    def live(self) -> list[dict[str, Any]]:
        r = self.http.get("/oapi/v1/calls", headers=self.headers)
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()["data"]
        return result

    def post(self, call_id: str, what: str, **body: Any) -> dict[str, Any]:
        r = self.http.post(f"/oapi/v1/calls/{call_id}/{what}", headers=self.headers,
                           json=body or None)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def cdrs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return result

    def wait_cdr(self, count: int, timeout: float = 20.0) -> dict[str, Any]:
        rows = wait_until(lambda: (r := self.cdrs()) and len(r) >= count and r, timeout)
        return dict(rows[0])

    def recording(self, name: str) -> Path:
        path = self.server.data_dir / "recordings" / self.app_id / name
        assert path.is_file(), f"no recording {path}"
        return path


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("control")
    server = make_server(tmp, api_app_rate="0")
    server.start()
    try:
        the_pbx = Pbx(server, tmp)
        with the_pbx.http:
            yield the_pbx
    finally:
        server.stop()


def _one_call(pbx: Pbx) -> dict[str, Any]:
    return wait_until(lambda: (calls := pbx.live()) and calls[0]["state"] == "talking"
                      and calls[0])


def test_blind_transfer_from_one_baresip_agent_to_another(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    alice = pbx.phone(phones, "alice", "tone440")
    bob = pbx.phone(phones, "bob", "tone1000")
    carol = pbx.phone(phones, "carol", "tone1000")
    pbx.dial(alice, "102")
    pbx.expect(alice, "CALL_ESTABLISHED")
    pbx.expect(bob, "CALL_ESTABLISHED")
    time.sleep(1)
    # bob hands alice on to carol: a blind REFER from his phone.
    res = bob.ctl.cmd("transfer", f"sip:carol@{pbx.server.sip}")
    assert res.get("ok"), res
    pbx.expect(carol, "CALL_ESTABLISHED", 15)
    pbx.expect(bob, "CALL_CLOSED", 15)
    call = _one_call(pbx)
    assert call["callee"]["username"] == "carol" and "carol" in call["devices"]
    assert not [e for e in alice.ctl.events if e.get("type") == "CALL_CLOSED"]
    time.sleep(3)  # alice and carol talk
    alice.ctl.cmd("hangup")
    pbx.expect(carol, "CALL_CLOSED")
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS" and cdr["hangup_by"] == "caller"
    assert cdr["caller"]["username"] == "alice" and cdr["callee"]["username"] == "carol"
    assert cdr["billing_seconds"] >= 4
    assert "transfer" in pbx.server.log()
    # carol heard alice through the relay after the transfer.
    carol.stop()
    heard = carol.received_wavs()
    assert heard and rms(heard[-1]) > 0.05 and abs(dominant_hz(heard[-1]) - 440) < 30


def test_hold_resume_and_hangup_through_the_api_on_a_real_call(
    pbx: Pbx, phones: Phones, audio: dict[str, Path]
) -> None:
    before = len(pbx.cdrs())
    src = Path(scenario("uas_held.xml")).read_text()
    scen = pbx.tmp / f"held-{time.monotonic_ns()}.xml"
    scen.write_text(src.replace("@RING_MS@", "300").replace("@AUDIO@",
                                                            str(audio["tone1000_pcmu"])))
    carrier = subprocess.Popen(
        ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(pbx.carrier_port),
         "-mp", str(free_port()), "-m", "1", "-timeout", "60", "-nostdin"],
        cwd=pbx.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        alice = pbx.phone(phones, "alice", "tone440")
        pbx.dial(alice, "0901234567")
        pbx.expect(alice, "CALL_ESTABLISHED")
        call = _one_call(pbx)
        assert call["direction"] == "from_ab" and call["callee"]["number"] == "0901234567"
        held = pbx.post(call["call_id"], "hold")
        assert held["held"] == "callee"
        time.sleep(1)
        assert pbx.live()[0]["held"] == "callee"
        resumed = pbx.post(call["call_id"], "resume")
        assert resumed["held"] is None
        time.sleep(1)
        assert pbx.post(call["call_id"], "hangup")["call_id"] == call["call_id"]
        pbx.expect(alice, "CALL_CLOSED")
        # The carrier saw inactive, then sendrecv, then the BYE: its scenario passed.
        assert wait_process(carrier, 20) == 0
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait()
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["hangup_by"] == "api" and cdr["status_detail"] == "SUCCESS"
    r = pbx.http.post(f"/oapi/v1/calls/{call['call_id']}/hangup", headers=pbx.headers)
    assert r.status_code == 404 and r.json()["code"] == "call_not_found"


def _level(pcm: Any, rate: int, start: float, end: float) -> float:
    part = pcm[int(start * rate):int(end * rate)]
    return (sum(x * x for x in part) / max(1, len(part))) ** 0.5 / 32768.0


def test_recording_pause_leaves_a_silent_gap(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    alice = pbx.phone(phones, "alice", "tone440")
    bob = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(alice, "102")
    pbx.expect(alice, "CALL_ESTABLISHED")
    call = _one_call(pbx)
    answered = call["answered_at"]  # the recording starts here (same clock: wall)
    time.sleep(2)
    before_pause = time.time() - answered
    assert pbx.post(call["call_id"], "recording/pause")["recording_paused"] is True
    paused_at = time.time() - answered
    time.sleep(4)
    before_resume = time.time() - answered
    assert pbx.post(call["call_id"], "recording/resume")["recording_paused"] is False
    resumed_at = time.time() - answered
    time.sleep(2)
    pbx.post(call["call_id"], "hangup")
    pbx.expect(bob, "CALL_CLOSED")
    cdr = pbx.wait_cdr(before + 1)
    mp3 = pbx.recording(cdr["recording"])
    pcm, rate = samples(mp3)
    # The file lasts the whole call; the paused seconds are silence, the rest is tone.
    assert abs(duration(mp3) - cdr["billing_seconds"]) <= 1.5
    assert _level(pcm, rate, 0.5, before_pause - 0.5) > 0.05
    assert _level(pcm, rate, paused_at + 0.5, before_resume - 0.5) < 0.005
    assert _level(pcm, rate, resumed_at + 0.5, resumed_at + 1.5) > 0.05


def test_attended_transfer_from_a_pjsua2_agent(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    customer = pbx.phone(phones, "bob", "tone1000")
    colleague = pbx.phone(phones, "carol", "tone440")
    agent = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "pj_attended.py"), pbx.server.sip,
         "alice", "alice-secret-pw", str(free_port()), str(port_block(10)[0]),
         f"sip:103@{pbx.server.sip}", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert agent.stdout is not None
        lines: list[str] = []
        for line in agent.stdout:  # (PJSIP's own start-up lines come first)
            lines.append(line.strip())
            if line.startswith("REG_STATE"):
                break
        assert lines[-1].startswith("REG_STATE 200"), lines
        pbx.dial(customer, "101")
        pbx.expect(customer, "CALL_ESTABLISHED")
        pbx.expect(colleague, "CALL_ESTABLISHED", 15)  # the agent consults carol
        for line in agent.stdout:
            lines.append(line.strip())
            if line.startswith("DONE"):
                break
        assert "DONE referred 200" in lines, lines
        assert wait_process(agent, 20) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
    # The customer and carol now talk; neither was hung up by the transfer.
    assert not [e for e in customer.ctl.events if e.get("type") == "CALL_CLOSED"]
    assert not [e for e in colleague.ctl.events if e.get("type") == "CALL_CLOSED"]
    call = _one_call(pbx)
    assert call["callee"]["username"] == "carol" and call["caller"]["username"] == "bob"
    time.sleep(3)
    customer.ctl.cmd("hangup")
    pbx.expect(colleague, "CALL_CLOSED")
    rows = wait_until(lambda: (r := pbx.cdrs()) and len(r) >= before + 2 and r, 20)
    by_id = {r["call_id"]: r for r in rows[:2]}
    consult = next(r for r in by_id.values() if r["hangup_by"] == "transfer")
    first = next(r for r in by_id.values() if r is not consult)
    assert consult["caller"]["username"] == "alice" and consult["callee"]["username"] == "carol"
    assert first["caller"]["username"] == "bob" and first["callee"]["username"] == "carol"
    assert first["status_detail"] == "SUCCESS" and first["hangup_by"] == "caller"
    # carol heard the customer's tone once she was joined to the call.
    colleague.stop()
    heard = colleague.received_wavs()
    assert heard and tone_power(heard[-1], 1000) > 20 * tone_power(heard[-1], 700)


def test_transfer_through_the_api_to_another_device(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    alice = pbx.phone(phones, "alice", "tone440")
    bob = pbx.phone(phones, "bob", "tone1000")
    carol = pbx.phone(phones, "carol", "tone1000")
    pbx.dial(alice, "102")
    pbx.expect(bob, "CALL_ESTABLISHED")
    call = _one_call(pbx)
    r = pbx.http.post(f"/oapi/v1/calls/{call['call_id']}/transfer", headers=pbx.headers,
                      json={"to": "nobody"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_number"
    # bob (the callee) hands alice on to carol by her extension.
    moved = pbx.post(call["call_id"], "transfer", to="103", replace="callee")
    assert moved["transferring"] is True
    pbx.expect(carol, "CALL_ESTABLISHED", 15)
    pbx.expect(bob, "CALL_CLOSED", 15)
    assert wait_until(lambda: pbx.live()[0]["callee"]["username"] == "carol")
    time.sleep(2)
    pbx.post(call["call_id"], "hangup")
    pbx.expect(alice, "CALL_CLOSED")
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["callee"]["username"] == "carol" and cdr["hangup_by"] == "api"
    carol.stop()
    heard = carol.received_wavs()
    assert heard and abs(dominant_hz(heard[-1]) - 440) < 30
