"""Calls through the B2BUA with real peers: baresip devices and SIPp as the carrier."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.audiocheck import dominant_hz, duration, rms, tone_power
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import (
    Phones,
    Server,
    free_port,
    make_server,
    scenario,
    wait_process,
    wait_until,
)

pytestmark = pytest.mark.e2e

DID = "02873019555"


class Pbx:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        app = server.cli("app", "create", "calls")
        self.app_id: str = app["app_id"]
        self.carrier_port = free_port()
        for user, ext in (("alice", "101"), ("bob", "102")):
            server.cli("device", "add", "--app", self.app_id, user, "--password",
                       f"{user}-secret-pw", "--extension", ext)
        server.cli("trunk", "add", "--app", self.app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(self.carrier_port), "--username", "trunkuser",
                   "--password", "trunkpass")
        server.cli("did", "add", "--app", self.app_id, DID, "--device", "alice")

    def recording(self, name: str) -> Path:
        path = self.server.data_dir / "recordings" / self.app_id / name
        assert path.is_file(), f"no recording {path}"
        return path

    def cdrs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return result

    def wait_cdr(self, count: int, timeout: float = 20.0) -> dict[str, Any]:
        rows = wait_until(lambda: (r := self.cdrs()) and len(r) >= count and r, timeout)
        return dict(rows[0])

    def carrier(self, scen: str, *extra: str, audio: Path | None = None,
                ring_ms: int = 500) -> subprocess.Popen[bytes]:
        src = Path(scenario(scen)).read_text()
        src = src.replace("@RING_MS@", str(ring_ms))
        if audio is not None:
            src = src.replace("@AUDIO@", str(audio))
        path = self.tmp / f"carrier-{time.monotonic_ns()}.xml"
        path.write_text(src)
        return subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.carrier_port),
             "-mp", str(free_port()), "-m", "1", "-timeout", "60", "-nostdin", *extra],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def dial(self, phone: Baresip, target: str) -> None:
        res = phone.ctl.cmd("dial", f"sip:{target}@{self.server.sip}")
        assert res.get("ok"), f"baresip refused to dial {target}: {res}"

    def expect(self, phone: Baresip, event: str, timeout: float = 10) -> dict[str, Any]:
        """Wait for a softphone event; on failure show what tongdai logged."""
        try:
            return phone.ctl.wait_event(event, timeout)
        except TimeoutError as exc:
            log = self.server.log()[-4000:]
            raise AssertionError(f"{exc}\n--- tongdai log ---\n{log}") from None

    def phone(self, phones: Phones, user: str, tone: str = "tone440") -> Baresip:
        p = phones.start(f"{user}-{time.monotonic_ns()}", tone)
        p.add_account(user, f"{user}-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("calls")
    server = make_server(tmp, ring_timeout="4", media_timeout="4")
    server.start()
    try:
        yield Pbx(server, tmp)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pbx_patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    """A PBX with the default ring timeout, for tests whose phones ring a while."""
    tmp = tmp_path_factory.mktemp("calls-patient")
    server = make_server(tmp, media_timeout="4")
    server.start()
    try:
        yield Pbx(server, tmp)
    finally:
        server.stop()


def test_internal_call_with_audio(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    a = pbx.phone(phones, "alice", "tone440")
    b = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(a, "102")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    pbx.expect(b, "CALL_ESTABLISHED", 10)
    time.sleep(3)
    a.ctl.cmd("hangup")
    pbx.expect(b, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["class"] == "one_one"
    assert cdr["direction"] == "from_ab"
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["caller"] == {"number": "101", "type": "user", "username": "alice"}
    assert cdr["callee"] == {"number": "102", "type": "user", "username": "bob"}
    assert cdr["did_number"] is None
    assert 2 <= cdr["billing_seconds"] <= 5
    assert cdr["duration_seconds"] >= cdr["billing_seconds"]
    assert cdr["recording"].startswith("call_recording_")
    # the recording holds both parties, as long as the talk time
    mp3 = pbx.recording(cdr["recording"])
    floor = tone_power(mp3, 700)  # a frequency nobody played
    assert tone_power(mp3, 440) > 20 * floor and tone_power(mp3, 1000) > 20 * floor
    assert abs(duration(mp3) - cdr["billing_seconds"]) <= 1.5
    # media went end to end through the relay: each side heard the other's tone
    a.stop()
    b.stop()
    heard_b = b.received_wavs()
    heard_a = a.received_wavs()
    assert heard_b and heard_a
    assert rms(heard_b[-1]) > 0.05
    assert abs(dominant_hz(heard_b[-1]) - 440) < 30
    assert abs(dominant_hz(heard_a[-1]) - 1000) < 30


def test_outbound_answered(pbx: Pbx, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_answer.xml", audio=audio["tone1000_pcmu"])
    a = pbx.phone(phones, "alice")
    pbx.dial(a, "0901234567")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    time.sleep(2)
    a.ctl.cmd("hangup")
    assert wait_process(carrier) == 0
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["class"] == "trunking"
    assert cdr["direction"] == "from_ab"
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["did_number"] is None
    assert cdr["callee"] == {"number": "0901234567", "type": "realnumber"}
    assert cdr["billing_seconds"] >= 1
    # the carrier's RTP stream (SIPp rtp_stream, 1000 Hz) is in the recording
    mp3 = pbx.recording(cdr["recording"])
    assert tone_power(mp3, 1000) > 20 * tone_power(mp3, 700)


@pytest.mark.parametrize(
    ("scen", "expected"),
    [("uas_busy.xml", "BUSY"), ("uas_503.xml", "ERROR")],
)
def test_outbound_rejected(pbx: Pbx, phones: Phones, scen: str, expected: str) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier(scen)
    a = pbx.phone(phones, "alice")
    pbx.dial(a, "0901234567")
    pbx.expect(a, "CALL_CLOSED", 10)
    wait_process(carrier)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == expected
    assert cdr["billing_seconds"] == 0
    assert cdr["recording"] == ""


def test_outbound_caller_gives_up(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_ring_noanswer.xml")
    a = pbx.phone(phones, "alice")
    pbx.dial(a, "0901234567")
    pbx.expect(a, "CALL_RINGING", 10)
    time.sleep(0.5)
    a.ctl.cmd("hangup")
    assert wait_process(carrier) == 0  # the carrier saw the CANCEL
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "CANCELLED"


def test_outbound_ring_timeout(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_ring_noanswer.xml")
    a = pbx.phone(phones, "alice")
    pbx.dial(a, "0901234567")
    pbx.expect(a, "CALL_RINGING", 10)
    pbx.expect(a, "CALL_CLOSED", 15)  # tongdai gave up after TONGDAI_RING_TIMEOUT=4
    assert wait_process(carrier) == 0
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "IVR"
    assert 3 <= cdr["duration_seconds"] <= 7


def test_carrier_challenge_answered_with_trunk_credentials(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    carrier = pbx.carrier("uas_auth407.xml")
    a = pbx.phone(phones, "alice")
    pbx.dial(a, "0909876543")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    time.sleep(1)
    a.ctl.cmd("hangup")
    assert wait_process(carrier) == 0
    assert pbx.wait_cdr(before + 1)["status_detail"] == "SUCCESS"


def test_inbound_did(pbx: Pbx, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(pbx.cdrs())
    a = pbx.phone(phones, "alice")
    src = Path(scenario("uac_did.xml")).read_text().replace("@AUDIO@", str(audio["tone1000_pcmu"]))
    path = pbx.tmp / "uac_did.xml"
    path.write_text(src)
    carrier = subprocess.Popen(
        ["sipp", pbx.server.sip, "-sf", str(path), "-s", DID, "-i", "127.0.0.1",
         "-p", str(pbx.carrier_port), "-mp", str(free_port()), "-m", "1", "-d", "2000",
         "-timeout", "30", "-nostdin"],
        cwd=pbx.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    assert wait_process(carrier) == 0
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["direction"] == "to_ab"
    assert cdr["class"] == "trunking"
    assert cdr["did_number"] == DID
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["callee"]["username"] == "alice"
    assert cdr["caller"] == {"number": "0901234567", "type": "realnumber"}


def test_inbound_from_a_stranger_is_forbidden(pbx: Pbx) -> None:
    src = Path(scenario("uac_forbidden.xml")).read_text().replace("@EXPECT@", "403")
    path = pbx.tmp / "uac_forbidden.xml"
    path.write_text(src)
    res = subprocess.run(
        ["sipp", pbx.server.sip, "-sf", str(path), "-s", DID, "-i", "127.0.0.1",
         "-p", str(free_port()), "-m", "1", "-timeout", "10", "-nostdin"],
        cwd=pbx.tmp, capture_output=True, timeout=30,
    )
    assert res.returncode == 0, res.stderr[-1000:]


def test_callee_vanishes_mid_call(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.cdrs())
    a = pbx.phone(phones, "alice")
    b = pbx.phone(phones, "bob")
    pbx.dial(a, "bob")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    time.sleep(1)
    os.kill(b.proc.pid, signal.SIGKILL)  # no BYE, no more RTP
    pbx.expect(a, "CALL_CLOSED", 20)  # TONGDAI_MEDIA_TIMEOUT=4 ended it
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["billing_seconds"] >= 1


def test_hold_and_resume_pass_through(pbx: Pbx, phones: Phones) -> None:
    """re-INVITEs (hold: sendonly, resume: sendrecv) cross the B2BUA and the call goes on."""
    before = len(pbx.cdrs())
    a = pbx.phone(phones, "alice", "tone440")
    b = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(a, "bob")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    pbx.expect(b, "CALL_ESTABLISHED", 10)
    assert a.ctl.cmd("hold")["ok"]
    time.sleep(6)  # longer than TONGDAI_MEDIA_TIMEOUT=4: a held call is not hung up
    assert a.ctl.cmd("resume")["ok"]

    def remote_sdps() -> list[dict[str, Any]]:
        b.ctl.cmd("listcalls")  # drains pending events into b.ctl.events
        return [e for e in b.ctl.events if e.get("type") == "CALL_REMOTE_SDP"]

    # bob sees both re-offers, and the call is still up on both sides
    try:
        wait_until(lambda: len(remote_sdps()) >= 2, timeout=10, interval=0.2)
    except AssertionError:
        raise AssertionError([(e.get("type"), e.get("param")) for e in b.ctl.events]) from None
    assert not any(e.get("type") == "CALL_CLOSED" for e in a.ctl.events + b.ctl.events)
    a.ctl.cmd("hangup")
    pbx.expect(b, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["billing_seconds"] >= 6  # the hold alone lasted 6 s


def test_late_offer_call(pbx: Pbx, phones: Phones) -> None:
    """An INVITE without SDP: the offer comes from bob's 200, the answer in the ACK."""
    before = len(pbx.cdrs())
    b = pbx.phone(phones, "bob", "tone1000")
    csv = pbx.tmp / "late.csv"
    csv.write_text("SEQUENTIAL\nalice;alice-secret-pw;"
                   "[authentication username=alice password=alice-secret-pw];\n")
    res = subprocess.run(
        ["sipp", pbx.server.sip, "-sf", scenario("uac_late_offer.xml"), "-inf", str(csv),
         "-s", "102", "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
         "-m", "1", "-timeout", "30", "-nostdin", "-trace_msg"],
        cwd=pbx.tmp, capture_output=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:].decode() + "".join(
        p.read_text()[-6000:] for p in pbx.tmp.glob("uac_late_offer_*_messages.log"))
    pbx.expect(b, "CALL_ESTABLISHED", 10)
    pbx.expect(b, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["callee"]["username"] == "bob"


def test_call_to_a_device_registered_over_tcp(pbx: Pbx, phones: Phones) -> None:
    """The INVITE reaches a TCP-registered phone over the connection it registered on."""
    before = len(pbx.cdrs())
    a = phones.start(f"alice-tcp-{time.monotonic_ns()}", "tone440")
    a.add_account("alice", "alice-secret-pw", pbx.server.sip, transport="tcp")
    pbx.expect(a, "REGISTER_OK", 10)
    regs = [r for r in pbx.server.cli("registration", "list", "--app", pbx.app_id)
            if r["sip_user"] == "alice"]
    assert any(r["transport"] == "tcp" for r in regs)
    b = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(b, "101")
    pbx.expect(a, "CALL_ESTABLISHED", 10)
    pbx.expect(b, "CALL_ESTABLISHED", 10)
    time.sleep(1)
    b.ctl.cmd("hangup")
    pbx.expect(a, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["callee"]["username"] == "alice"


def test_a_device_registered_twice_rings_on_both(pbx_patient: Pbx, phones: Phones) -> None:
    """Forking: both of alice's phones ring; the one that answers wins, the other is
    cancelled."""
    pbx = pbx_patient
    before = len(pbx.cdrs())
    desk = phones.start(f"alice-desk-{time.monotonic_ns()}", "tone440")
    desk.add_account("alice", "alice-secret-pw", pbx.server.sip, answer="manual")
    pbx.expect(desk, "REGISTER_OK", 10)
    soft = pbx.phone(phones, "alice", "tone440")  # answers by itself
    b = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(b, "101")
    pbx.expect(desk, "CALL_INCOMING", 10)  # it rang...
    pbx.expect(soft, "CALL_ESTABLISHED", 10)
    pbx.expect(b, "CALL_ESTABLISHED", 10)
    pbx.expect(desk, "CALL_CLOSED", 10)  # ...and stopped ringing when the other answered
    time.sleep(1)
    b.ctl.cmd("hangup")
    pbx.expect(soft, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["callee"]["username"] == "alice"


def test_all_forks_declining_ends_the_call(pbx_patient: Pbx, phones: Phones) -> None:
    """Both of alice's phones decline: the call ends with their answer, after the last."""
    pbx = pbx_patient
    before = len(pbx.cdrs())
    p1 = phones.start(f"alice-p1-{time.monotonic_ns()}", "tone440")
    p1.add_account("alice", "alice-secret-pw", pbx.server.sip, answer="manual")
    pbx.expect(p1, "REGISTER_OK", 10)
    p2 = phones.start(f"alice-p2-{time.monotonic_ns()}", "tone440")
    p2.add_account("alice", "alice-secret-pw", pbx.server.sip, answer="manual")
    pbx.expect(p2, "REGISTER_OK", 10)
    b = pbx.phone(phones, "bob", "tone1000")
    pbx.dial(b, "101")
    pbx.expect(p1, "CALL_INCOMING", 10)
    pbx.expect(p2, "CALL_INCOMING", 10)
    p1.ctl.cmd("hangup")  # one declines: bob still hears ringing
    time.sleep(1)
    b.ctl.cmd("listcalls")  # drains pending events into b.ctl.events
    assert not any(e.get("type") == "CALL_CLOSED" for e in b.ctl.events)
    p2.ctl.cmd("hangup")
    pbx.expect(b, "CALL_CLOSED", 10)
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] in ("BUSY", "ERROR")
    assert cdr["billing_seconds"] == 0
