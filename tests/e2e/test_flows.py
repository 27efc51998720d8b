"""Call flows with real peers: a SIPp carrier calls a DID whose flow is the issue's
example, loaded as written; baresip phones are the queue's agents. DTMF arrives as
RFC 4733 telephone-events and as SIP INFO. Also: a late offer, a hold after the queue,
blind transfer between agents, a callee queued by its caller's transfer, a flow on an
extension, and the time and number nodes through real carriers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.e2e.audiocheck import rms, tone_power
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import (
    Phones,
    Server,
    download_recording,
    free_port,
    make_server,
    scenario,
    wait_process,
    wait_until,
)
from tests.flows.test_document import EXAMPLE
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

DID = "02873014444"
INFO = """  <send retrans="500"><![CDATA[
INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Customer" <sip:0901234567@[local_ip]:[local_port]>;tag=[pid]c[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 INFO
Contact: <sip:carrier@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=@DIGIT@
Duration=160
]]></send>
  <recv response="200"/>
"""
RFC4733 = """  <nop><action><exec play_dtmf="@DIGIT@"/></action></nop>
  <pause milliseconds="500"/>
"""


class Centre:
    """An app whose DID runs the issue's example flow; alice and bob are agents."""

    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        app = server.cli("app", "create", "centre")
        self.app_id: str = app["app_id"]
        self.secret: str = app["app_secret"]
        self.carrier_port = free_port()
        for user, ext in (("alice", "101"), ("bob", "102")):
            server.cli("device", "add", "--app", self.app_id, user, "--password",
                       f"{user}-secret-pw", "--extension", ext)
        server.cli("trunk", "add", "--app", self.app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(self.carrier_port))
        server.cli("did", "add", "--app", self.app_id, DID, "--device", "alice")
        server.cli("queue", "add", "--app", self.app_id, "sales", "--agents", "alice,bob",
                   "--ring-timeout", "10", "--wrapup", "0")
        flow = tmp / "flow.yaml"
        flow.write_text(EXAMPLE)
        got = server.cli("flow", "set", "--app", self.app_id, "--did", DID, str(flow))
        assert got["version"] == 1
        assert server.cli("flow", "show", "--did", DID)["document"] == EXAMPLE

    def cdrs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return result

    def wait_cdr(self, count: int, timeout: float = 20.0) -> dict[str, Any]:
        rows = wait_until(lambda: (r := self.cdrs()) and len(r) >= count and r, timeout)
        return dict(rows[0])

    def call(self, *, how: str, digit: str = "1", before_ms: int = 1500, talk_ms: int = 3000,
             audio: Path, did: str = DID, port: int | None = None,
             then: str = "", scen: str = "uac_flow.xml") -> subprocess.Popen[bytes]:
        """The carrier calls ``did`` from ``port`` (the app's carrier trunk), presses
        ``digit`` as ``how`` says, then runs the scenario text ``then``, and talks."""
        press = {"rfc4733": RFC4733, "info": INFO, "none": ""}[how].replace("@DIGIT@", digit)
        press += then
        src = Path(scenario(scen)).read_text()
        for key, value in (("@PRESS@", press), ("@BEFORE_MS@", str(before_ms)),
                           ("@TALK_MS@", str(talk_ms)), ("@AUDIO@", str(audio))):
            src = src.replace(key, value)
        path = self.tmp / f"uac_flow-{time.monotonic_ns()}.xml"
        path.write_text(src)
        return subprocess.Popen(
            ["sipp", self.server.sip, "-sf", str(path), "-s", did, "-i", "127.0.0.1",
             "-p", str(port or self.carrier_port), "-mp", str(free_port()), "-m", "1",
             "-timeout", "90", "-nostdin"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def phone(self, phones: Phones, user: str, *, answer: str = "auto",
              tone: str = "tone440") -> Baresip:
        p = phones.start(f"{user}-{time.monotonic_ns()}", tone)
        p.add_account(user, f"{user}-secret-pw", self.server.sip, answer=answer)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p

    def events(self, user: str) -> ClientConnection:
        """The device's event websocket (as its softphone app would open it)."""
        with httpx.Client(base_url=self.server.http, timeout=10) as http:
            r = http.post("/oapi/v1/voice/auth_token", headers={
                "x-auth-app-id": self.app_id,
                "x-auth-app-hash": hashlib.sha256(
                    f"{self.app_id}{self.secret}".encode()).hexdigest()},
                json={"sipUser": user, "sipPassword": f"{user}-secret-pw"})
            assert r.status_code == 200, r.text
        token = r.json()["value"]
        return connect(f"ws://127.0.0.1:{self.server.http_port}/oapi/v1/voice/ws?token={token}",
                       open_timeout=5)

    def download(self, media: str) -> Path:
        return download_recording(self.server, self.app_id, self.secret, media, self.tmp)


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    tmp = tmp_path_factory.mktemp("flows")
    server = make_server(tmp, ring_timeout="20")
    server.start()
    try:
        yield Centre(server, tmp)
    finally:
        server.stop()


def call_events(ws: ClientConnection, until: str = "call.ended",
                timeout: float = 30) -> list[str]:
    """The call event types a websocket got, up to ``until``."""
    seen: list[str] = []
    end = time.time() + timeout
    while not seen or seen[-1] != until:
        msg = json.loads(ws.recv(timeout=max(0.1, end - time.time())))
        if str(msg.get("type", "")).startswith("call."):
            seen.append(msg["type"])
    return seen


def test_menu_to_queue_to_the_agent_who_answers(centre: Centre, phones: Phones,
                                                 audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice")
    bob = centre.phone(phones, "bob", answer="manual")  # rings, never answers
    with centre.events("alice") as alice_ws, centre.events("bob") as bob_ws:
        carrier = centre.call(how="rfc4733", talk_ms=4000, audio=audio["tone1000_pcmu"])
        alice.ctl.wait_event("CALL_ESTABLISHED", 20)
        bob.ctl.wait_event("CALL_INCOMING", 5)
        assert wait_process(carrier, 40) == 0
        # Each agent hears of its own ringing; only the one who answered of the answer.
        assert call_events(alice_ws) == ["call.ringing", "call.answered", "call.ended"]
        assert call_events(bob_ws) == ["call.ringing", "call.ended"]
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["callee"] == {"number": "101", "type": "user", "username": "alice"}
    assert cdr["did_number"] == DID and cdr["direction"] == "to_ab"
    assert 2 <= cdr["billing_seconds"] < cdr["duration_seconds"]
    media = cdr["recording"]
    assert media.startswith("call_recording_")
    mp3 = centre.download(media)
    floor = tone_power(mp3, 700)  # a frequency nobody played
    # Both voices, and not the menu: the carrier's 1000 Hz and alice's 440 Hz.
    assert tone_power(mp3, 1000) > 20 * floor and tone_power(mp3, 440) > 20 * floor


def test_caller_hanging_up_in_the_queue_is_ivr(centre: Centre, phones: Phones,
                                                audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice")
    for agent in ("alice", "bob"):
        centre.server.cli("agent", "pause", "--app", centre.app_id, agent)
    try:
        time.sleep(2.5)  # the server sees the pause within a configuration poll (1 s)
        carrier = centre.call(how="info", talk_ms=3000, audio=audio["tone1000_pcmu"])
        assert wait_process(carrier, 30) == 0
    finally:
        for agent in ("alice", "bob"):
            centre.server.cli("agent", "unpause", "--app", centre.app_id, agent)
    cdr = centre.wait_cdr(before + 1)
    assert (cdr["status_detail"], cdr["billing_seconds"], cdr["recording"]) == ("IVR", 0, "")
    assert cdr["callee"]["number"] == DID
    # The INFO key took the caller to the queue (not a hang-up in the menu), where the
    # paused agents were not rung.
    log = centre.server.log()
    assert "flow.queued" in log and "queue=sales" in log
    assert not [e for e in alice.ctl.events if e.get("type") == "CALL_INCOMING"]


def test_caller_who_never_presses_leaves_a_voicemail(centre: Centre,
                                                      audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    # Three tries of the menu (a 3 s prompt + 5 s each), the beep, then a message of
    # about 8 s, the caller hanging up at the end of it.
    carrier = centre.call(how="none", before_ms=0, talk_ms=32000,
                          audio=audio["tone1000_pcmu"])
    assert wait_process(carrier, 75) == 0
    cdr = centre.wait_cdr(before + 1)
    assert (cdr["status_detail"], cdr["billing_seconds"]) == ("IVR", 0)
    media = cdr["recording"]
    assert media.startswith("voicemail_") and media.endswith(".mp3")
    mp3 = centre.download(media)
    assert rms(mp3) > 0.02
    assert tone_power(mp3, 1000) > 20 * tone_power(mp3, 700)


def test_menu_to_a_simultaneous_ring_group_the_member_who_answers(
        centre: Centre, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice", answer="manual")  # rings, never answers
    bob = centre.phone(phones, "bob")
    with centre.events("alice") as alice_ws, centre.events("bob") as bob_ws:
        # "3": ring_group {members: [alice, bob], strategy: simultaneous}
        carrier = centre.call(how="rfc4733", digit="3", talk_ms=4000,
                              audio=audio["tone1000_pcmu"])
        alice.ctl.wait_event("CALL_INCOMING", 20)
        bob.ctl.wait_event("CALL_ESTABLISHED", 20)
        alice.ctl.wait_event("CALL_CLOSED", 10)  # cancelled: bob answered first
        assert wait_process(carrier, 40) == 0
        assert call_events(alice_ws) == ["call.ringing", "call.ended"]
        assert call_events(bob_ws) == ["call.ringing", "call.answered", "call.ended"]
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["callee"] == {"number": "102", "type": "user", "username": "bob"}
    assert 2 <= cdr["billing_seconds"] < cdr["duration_seconds"]
    mp3 = centre.download(cdr["recording"])
    floor = tone_power(mp3, 700)
    assert tone_power(mp3, 1000) > 20 * floor and tone_power(mp3, 440) > 20 * floor


HOLD = """  <pause milliseconds="@WAIT_MS@"/>
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Customer" <sip:0901234567@[local_ip]:[local_port]>;tag=[pid]c[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:carrier@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carrier 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
a=sendonly
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200">
    <action>
      <ereg regexp="a=recvonly" search_in="body" check_it="true" assign_to="held"/>
    </action>
  </recv>
  <Reference variables="held"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Customer" <sip:0901234567@[local_ip]:[local_port]>;tag=[pid]c[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Contact: <sip:carrier@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
"""


def test_a_hold_from_the_caller_after_the_queue_reaches_the_agent(
        centre: Centre, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice")
    centre.phone(phones, "bob", answer="manual")
    # The carrier presses 1, and 4 s later (alice answered the queue's ring at once)
    # puts the call on hold with a sendonly re-INVITE; its scenario checks the answer
    # is recvonly.
    carrier = centre.call(how="rfc4733", talk_ms=3000, audio=audio["tone1000_pcmu"],
                          then=HOLD.replace("@WAIT_MS@", "4000"))
    alice.ctl.wait_event("CALL_ESTABLISHED", 20)
    alice.ctl.events.clear()
    # alice's phone is offered the hold (tongdai relays it, not answers it itself).
    offer = alice.ctl.wait_event("CALL_REMOTE_SDP", 15)
    assert offer.get("param") == "offer"
    assert wait_process(carrier, 40) == 0
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["callee"]["username"] == "alice"
    log = centre.server.log()
    assert "flow.queued" in log


def test_blind_transfer_from_the_agent_who_answered_to_another_agent(
        centre: Centre, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice")
    bob = centre.phone(phones, "bob", answer="manual", tone="tone440")
    carrier = centre.call(how="rfc4733", talk_ms=12000, audio=audio["tone1000_pcmu"])
    alice.ctl.wait_event("CALL_ESTABLISHED", 20)
    bob.ctl.wait_event("CALL_CLOSED", 10)  # the queue rang him too; alice answered first
    bob.ctl.events.clear()
    # alice hands the customer on to bob: a blind REFER from her phone.
    res = alice.ctl.cmd("transfer", f"sip:bob@{centre.server.sip}")
    assert res.get("ok"), res
    bob.ctl.wait_event("CALL_INCOMING", 10)
    assert bob.ctl.cmd("accept").get("ok")
    bob.ctl.wait_event("CALL_ESTABLISHED", 10)
    alice.ctl.wait_event("CALL_CLOSED", 10)
    assert wait_process(carrier, 40) == 0
    bob.ctl.wait_event("CALL_CLOSED", 10)
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS" and cdr["hangup_by"] == "caller", cdr
    assert cdr["callee"] == {"number": "102", "type": "user", "username": "bob"}
    # bob heard the customer (1000 Hz) through the relay after the transfer.
    bob.stop()
    heard = bob.received_wavs()
    assert heard and tone_power(heard[-1], 1000) > 20 * tone_power(heard[-1], 700)


def test_the_caller_leaves_and_the_callee_waits_in_a_queue(
        centre: Centre, phones: Phones) -> None:
    before = len(centre.cdrs())
    centre.server.cli("device", "add", "--app", centre.app_id, "carol", "--password",
                      "carol-secret-pw", "--extension", "103")
    centre.server.cli("queue", "add", "--app", centre.app_id, "support", "--agents",
                      "carol", "--ring-timeout", "10", "--wrapup", "0")
    alice = centre.phone(phones, "alice", tone="tone440")
    bob = centre.phone(phones, "bob", tone="tone1000")
    carol = centre.phone(phones, "carol", tone="tone1000")
    assert bob.ctl.cmd("dial", f"sip:101@{centre.server.sip}").get("ok")
    alice.ctl.wait_event("CALL_ESTABLISHED", 10)
    bob.ctl.wait_event("CALL_ESTABLISHED", 10)
    # bob, the caller, hands alice on to the support queue and leaves.
    assert bob.ctl.cmd("transfer", f"sip:support@{centre.server.sip}").get("ok")
    bob.ctl.wait_event("CALL_CLOSED", 10)
    carol.ctl.wait_event("CALL_ESTABLISHED", 15)
    assert not [e for e in alice.ctl.events if e.get("type") == "CALL_CLOSED"]
    time.sleep(3)  # alice and carol talk
    alice.ctl.cmd("hangup")
    carol.ctl.wait_event("CALL_CLOSED", 10)
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["caller"]["username"] == "carol" and cdr["callee"]["username"] == "alice"
    # carol heard alice (440 Hz) through tongdai's media after the queue.
    carol.stop()
    heard = carol.received_wavs()
    assert heard and tone_power(heard[-1], 440) > 20 * tone_power(heard[-1], 700)


def test_a_late_offer_reaches_the_queue_and_its_agent(
        centre: Centre, phones: Phones, audio: dict[str, Path]) -> None:
    before = len(centre.cdrs())
    alice = centre.phone(phones, "alice")
    centre.phone(phones, "bob", answer="manual")
    # No SDP in the INVITE: tongdai offers in its 200, the carrier answers in the ACK
    # (telephone-event on its own payload type, 96), then presses 1 as RFC 4733.
    carrier = centre.call(how="rfc4733", talk_ms=4000, audio=audio["tone1000_pcmu"],
                          scen="uac_flow_late.xml")
    alice.ctl.wait_event("CALL_ESTABLISHED", 20)
    assert wait_process(carrier, 40) == 0
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["callee"]["username"] == "alice"
    mp3 = centre.download(cdr["recording"])
    floor = tone_power(mp3, 700)
    assert tone_power(mp3, 1000) > 20 * floor and tone_power(mp3, 440) > 20 * floor


HOURS = """time:
  hours: {mon-sun: "00:00-24:00"}
  holidays: [@HOLIDAYS@]
  open: {number: "0907654321"}
  closed: {voicemail: {box: dana, limit: 30}}
"""


def test_business_hours_send_the_caller_out_through_a_trunk_and_a_holiday_to_voicemail(
        centre: Centre, audio: dict[str, Path]) -> None:
    """Through a real carrier: the `time` node in TONGDAI_TIMEZONE (the server's
    default, Asia/Ho_Chi_Minh) and the `number` node out through another carrier."""
    server, did = centre.server, "02873015555"
    app = server.cli("app", "create", "hours")["app_id"]
    server.cli("device", "add", "--app", app, "dana", "--password", "dana-secret-pw",
               "--extension", "201")
    inbound, out = free_port(), free_port()
    # The carrier that calls in serves no number out; the other one serves them all.
    server.cli("trunk", "add", "--app", app, "in", "--host", "127.0.0.1", "--port",
               str(inbound), "--match", "0000", "--priority", "5")
    server.cli("trunk", "add", "--app", app, "out", "--host", "127.0.0.1", "--port", str(out))
    server.cli("did", "add", "--app", app, did, "--device", "dana")
    flow = centre.tmp / "hours.yaml"

    def cdrs() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = server.cli("cdr", "list", "--app", app)
        return rows

    # Open (every hour of every day): the caller goes out to 0907654321.
    flow.write_text(HOURS.replace("@HOLIDAYS@", ""))
    server.cli("flow", "set", "--app", app, "--did", did, str(flow))
    uas = Path(scenario("uas_answer.xml")).read_text().replace("@RING_MS@", "300") \
        .replace("@AUDIO@", str(audio["tone440_pcmu"]))
    uas_path = centre.tmp / f"uas-{time.monotonic_ns()}.xml"
    uas_path.write_text(uas)
    far = subprocess.Popen(
        ["sipp", "-sf", str(uas_path), "-i", "127.0.0.1", "-p", str(out), "-mp",
         str(free_port()), "-m", "1", "-timeout", "60", "-nostdin"],
        cwd=centre.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.5)  # the server sees the new flow within a configuration poll (1 s)
        carrier = centre.call(how="none", before_ms=0, talk_ms=4000, did=did, port=inbound,
                              audio=audio["tone1000_pcmu"])
        assert wait_process(carrier, 40) == 0
        assert wait_process(far, 20) == 0
    finally:
        if far.poll() is None:
            far.kill()
            far.wait()
    rows = wait_until(lambda: (r := cdrs()) and r)
    cdr = rows[0]
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["callee"]["number"] == "0907654321" and cdr["callee"]["type"] != "user"
    assert cdr["billing_seconds"] >= 2

    # Today a holiday (in the server's time zone): closed, to dana's voicemail.
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    flow.write_text(HOURS.replace("@HOLIDAYS@", today))
    assert server.cli("flow", "set", "--app", app, "--did", did, str(flow))["version"] == 2
    time.sleep(2.5)  # as above
    carrier = centre.call(how="none", before_ms=0, talk_ms=5000, did=did, port=inbound,
                          audio=audio["tone1000_pcmu"])
    assert wait_process(carrier, 40) == 0
    rows = wait_until(lambda: (r := cdrs()) and len(r) >= 2 and r)
    cdr = rows[0]
    assert (cdr["status_detail"], cdr["billing_seconds"]) == ("IVR", 0), cdr
    assert cdr["recording"].startswith("voicemail_")


def test_a_device_dialling_an_extension_with_a_flow_enters_it(
        centre: Centre, phones: Phones) -> None:
    before = len(centre.cdrs())
    flow = centre.tmp / "ext.yaml"
    flow.write_text("play: {prompt: welcome, next: {device: alice}}\n")
    got = centre.server.cli("flow", "set", "--app", centre.app_id, "--extension", "300",
                            str(flow))
    assert (got["extension"], got["version"]) == ("300", 1)
    shown = centre.server.cli("flow", "show", "--app", centre.app_id, "--extension", "300")
    assert shown["document"] == flow.read_text()
    alice = centre.phone(phones, "alice", tone="tone440")
    bob = centre.phone(phones, "bob", tone="tone1000")
    time.sleep(2.5)  # the server sees the new flow within a configuration poll (1 s)
    assert bob.ctl.cmd("dial", f"sip:300@{centre.server.sip}").get("ok")
    bob.ctl.wait_event("CALL_ESTABLISHED", 10)  # tongdai answers: the prompt plays
    alice.ctl.wait_event("CALL_ESTABLISHED", 20)  # then the flow's device node rings her
    time.sleep(3)  # they talk
    bob.ctl.cmd("hangup")
    alice.ctl.wait_event("CALL_CLOSED", 10)
    cdr = centre.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS", cdr
    assert cdr["caller"]["username"] == "bob" and cdr["callee"]["username"] == "alice"
    assert cdr["direction"] == "from_ab" and cdr["billing_seconds"] >= 2
    mp3 = centre.download(cdr["recording"])
    floor = tone_power(mp3, 700)
    assert tone_power(mp3, 1000) > 20 * floor and tone_power(mp3, 440) > 20 * floor
    centre.server.cli("flow", "remove", "--app", centre.app_id, "--extension", "300")
