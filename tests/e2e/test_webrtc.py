"""Browsers as devices: the softphone page in Debian's Chromium (fake microphone playing
a tone), registering over SIP/WebSocket, with WebRTC media (ICE-lite, DTLS-SRTP)
bridged to plain RTP. Everything runs in a private network namespace (Chromium gathers
no ICE candidates on loopback)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e import baresip_ctl, browser, netns
from tests.e2e.audiocheck import dominant_hz, tone_power
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.browser import CHROMIUM
from tests.e2e.conftest import Server, free_port, make_server, port_block, wait_until

BROWSER_HZ, OTHER_HZ, PHONE_HZ = 1000, 660, 440
USERS = {"alice": "101", "bob": "102", "carol": "103"}  # SIP user: extension


pytestmark = browser.marks(netns.available() or browser.missing())


def _tone(path: Path, hz: int) -> Path:
    # Chromium's fake microphone loops a 16-bit PCM WAV file.
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(path),
                    "synth", "60", "sine", str(hz), "vol", "0.5"], check=True)
    return path


class Net:
    """tongdai, its devices and browsers inside the namespace."""

    def __init__(self, tmp: Path, address: str) -> None:
        self.tmp = tmp
        self.address = address
        self.ws_port = free_port()
        self.server: Server = make_server(
            tmp, sip_host=address, http_host=address, sip_ws_port=str(self.ws_port),
            media_timeout="4", ring_timeout="15")
        self.server.start()
        app = self.server.cli("app", "create", "webrtc")
        self.app_id: str = app["app_id"]
        self.secret: str = app["app_secret"]
        self._add_devices()
        self.http = httpx.Client(base_url=f"http://{address}:{self.server.http_port}",
                                 timeout=10)
        self.phones: list[Baresip] = []

    def _add_devices(self) -> None:
        # One process for all (each CLI run costs a Python start-up).
        code = (
            "import asyncio, json, sys\n"
            "from tongdai.settings import load_settings\n"
            "from tongdai.keys import store_key\n"
            "from tongdai.pbx.credentials import digest_keys\n"
            "from tongdai.store.sql import open_store\n"
            "async def main():\n"
            "    s = load_settings(); st = await open_store(s.db_url, key=store_key(s.data_dir))\n"
            "    for user, ext in json.load(sys.stdin).items():\n"
            f"        await st.add_device({self.app_id!r}, user, digest_keys(\n"
            "            user, s.domain, user + '-secret-pw'), extension=ext)\n"
            "    await st.close()\n"
            "asyncio.run(main())\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.server.env, check=True,
                       timeout=120, input=json.dumps(USERS), text=True)

    @property
    def page_url(self) -> str:
        return f"http://{self.address}:{self.server.http_port}/phone"

    def phone(self, user: str, hz: int) -> Baresip:
        """A baresip desk phone on the namespace's address, auto-answering."""
        tone = self.tmp / f"{user}-{hz}.wav"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(tone), "synth",
                        "120", "sine", str(hz), "vol", "0.5"], check=True)
        config = baresip_ctl.CONFIG.replace("sip_listen\t\t127.0.0.1",
                                            f"sip_listen\t\t{self.address}")
        config = config.replace("net_interface\t\t127.0.0.1",
                                f"net_interface\t\t{self.address}")
        old = baresip_ctl.CONFIG
        baresip_ctl.CONFIG = config
        try:
            p = Baresip(self.tmp / f"{user}-{time.monotonic_ns()}", sip_port=free_port(),
                        ctrl_port=free_port(), rtp=port_block(40), tone=tone)
        finally:
            baresip_ctl.CONFIG = old
        self.phones.append(p)
        p.add_account(user, f"{user}-secret-pw", f"{self.address}:{self.server.sip_port}")
        p.ctl.wait_event("REGISTER_OK", 10)
        return p

    def click_to_call(self, agent: str, number: str) -> str:
        h = hashlib.sha256((self.app_id + self.secret).encode()).hexdigest()
        r = self.http.post(f"/oapi/v1/call/click-to-call/{number}",
                           headers={"x-auth-app-id": self.app_id, "x-auth-app-hash": h},
                           json={"sipUser": agent, "sipPassword": f"{agent}-secret-pw"})
        assert r.status_code == 200, r.text
        return str(r.json()["call_id"])

    def cdrs(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return rows

    def wait_cdr(self, call_id: str | None = None, count: int = 1,
                 within: float = 20) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            rows = self.cdrs()
            if call_id is not None:
                return next((r for r in rows if r["call_id"] == call_id), None)
            return rows[0] if len(rows) >= count else None
        return dict(wait_until(found, within, 0.3))

    def recording(self, name: str) -> Path:
        path = self.server.data_dir / "recordings" / self.app_id / name
        assert path.is_file(), f"no recording {path}"
        return path

    def close(self) -> None:
        for p in self.phones:
            p.stop()
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    with netns.namespace(f"tdwrtc{os.getpid()}") as address:
        yield address


@pytest.fixture(scope="module")
def net(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("webrtc"), namespace)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture(scope="module")
def loopback(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """tongdai on 127.0.0.1 as ./scripts/start runs it, the page on the same machine
    (Chromium's own candidates are on the namespace's other address)."""
    n = Net(tmp_path_factory.mktemp("webrtc-lo"), "127.0.0.1")
    try:
        yield n
    finally:
        n.close()


class Browser:
    """One Chromium whose fake microphone plays ``hz``, with the softphone page."""

    def __init__(self, pw: Any, net: Net, name: str, hz: int) -> None:
        self.tone = _tone(net.tmp / f"browser-{name}-{time.monotonic_ns()}.wav", hz)
        origin = f"http://{net.address}:{net.server.http_port}"
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={self.tone}",
            # getUserMedia needs a secure context; the namespace's address is not one.
            f"--unsafely-treat-insecure-origin-as-secure={origin}",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ])
        self.page = self.browser.new_page()
        self.page.goto(net.page_url)

    def sign_in(self, user: str) -> None:
        self.page.fill("#user", user)
        self.page.fill("#password", f"{user}-secret-pw")
        self.page.click("#signin")
        self.wait_text("#status", "registered")

    def wait_text(self, sel: str, text: str, within: float = 15) -> None:
        self.page.wait_for_function(
            "([s, t]) => document.querySelector(s).textContent === t", arg=[sel, text],
            timeout=within * 1000)

    def heard_hz(self) -> float:
        """The loudest frequency of what the page plays (the far end's audio)."""
        return float(self.page.evaluate("""async () => {
            const stream = document.getElementById('remote').srcObject;
            const ctx = new AudioContext();
            await ctx.resume();
            const an = ctx.createAnalyser();
            an.fftSize = 8192;
            ctx.createMediaStreamSource(stream).connect(an);
            const peaks = [];
            for (let k = 0; k < 5; k++) {
              await new Promise(r => setTimeout(r, 300));
              const d = new Float32Array(an.frequencyBinCount);
              an.getFloatFrequencyData(d);
              let best = 1;
              for (let i = 2; i < d.length; i++) if (d[i] > d[best]) best = i;
              peaks.push(best * ctx.sampleRate / an.fftSize);
            }
            await ctx.close();
            peaks.sort((a, b) => a - b);
            return peaks[2];
        }"""))

    def stats(self) -> dict[str, Any]:
        """Inbound and outbound RTP packet counts of the live call."""
        return dict(self.page.evaluate("""async () => {
            const s = window.tongdaiPhone.session;
            const out = {received: 0, sent: 0};
            if (!s || !s.connection) return out;
            (await s.connection.getStats()).forEach(r => {
              if (r.type === 'inbound-rtp' && r.kind === 'audio') out.received += r.packetsReceived;
              if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent += r.packetsSent;
            });
            return out;
        }"""))

    def processes(self) -> list[int]:
        """The browser's processes: those whose command line names our tone file."""
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if str(self.tone).encode() in (d / "cmdline").read_bytes():
                        pids.append(int(d.name))
                except OSError:
                    continue
        return pids

    def close(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)
        self.browser.close()


@pytest.fixture
def browsers(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Opens browsers on the test's PBX (``net`` or ``loopback``); at the end closes
    them and hangs up the test's desk phones."""
    from playwright.sync_api import sync_playwright

    pbx: Net = request.getfixturevalue(
        "loopback" if "loopback" in request.fixturenames else "net")
    opened: list[Browser] = []
    with sync_playwright() as pw:
        def open_(name: str, hz: int) -> Browser:
            b = Browser(pw, pbx, name, hz)
            opened.append(b)
            return b
        try:
            yield open_
        finally:
            for b in opened:
                b.close()
            for p in pbx.phones:
                p.stop()
            pbx.phones.clear()


def _in_call(b: Browser) -> None:
    b.wait_text("#state", "in call")
    wait_until(lambda: (s := b.stats())["received"] > 50 and s["sent"] > 50, 10, 0.3)


def _received_within(b: Browser, seconds: float) -> int:
    before = b.stats()["received"]
    time.sleep(seconds)
    return int(b.stats()["received"] - before)


def test_click_to_call_rings_the_page_audio_both_ways_and_recorded(
        loopback: Net, browsers: Any) -> None:
    # With tongdai's embedded defaults: SIP, websocket, HTTP and RTP on 127.0.0.1.
    net = loopback
    bob = net.phone("bob", PHONE_HZ)
    alice = browsers("alice", BROWSER_HZ)
    alice.sign_in("alice")
    call_id = net.click_to_call("alice", "102")
    alice.wait_text("#state", "ringing")
    alice.page.click("#answer")
    _in_call(alice)
    bob.ctl.wait_event("CALL_ESTABLISHED", 10)
    time.sleep(2)
    assert abs(alice.heard_hz() - PHONE_HZ) < 30  # bob's tone reached the browser
    # The keypad's digits reach the phone as RFC 4733 events in the media.
    alice.page.click('#keypad button[data-digit="5"]')
    dtmf = bob.ctl.wait_event("CALL_DTMF_START", 10)
    # Hold (re-INVITE a=sendonly from the page): the phone stops sending; resume.
    alice.page.click("#hold")
    alice.wait_text("#state", "on hold")
    held = _received_within(alice, 1.5)
    alice.page.click("#hold")
    alice.wait_text("#state", "in call")
    resumed = _received_within(alice, 1.5)
    assert dtmf.get("param") == "5", dtmf
    assert held < 10 and resumed > 40, (held, resumed)
    alice.page.click("#hangup")
    alice.wait_text("#state", "idle")
    cdr = net.wait_cdr(call_id)
    assert cdr["status_detail"] == "SUCCESS", cdr
    heard = sorted(bob.rec_dir.glob("*-dec.wav"))
    assert heard and abs(dominant_hz(heard[-1]) - BROWSER_HZ) < 30  # and the browser's, bob
    mp3 = net.recording(cdr["recording"])
    floor = tone_power(mp3, 800)
    assert tone_power(mp3, PHONE_HZ) > 20 * floor and tone_power(mp3, BROWSER_HZ) > 20 * floor


def test_browser_to_browser_call(net: Net, browsers: Any) -> None:
    alice = browsers("alice", BROWSER_HZ)
    carol = browsers("carol", OTHER_HZ)
    alice.sign_in("alice")
    carol.sign_in("carol")
    alice.page.fill("#dial", "carol")
    alice.page.click("#call")
    carol.wait_text("#state", "ringing")
    carol.page.click("#answer")
    _in_call(alice)
    _in_call(carol)
    time.sleep(1)
    assert abs(alice.heard_hz() - OTHER_HZ) < 30
    assert abs(carol.heard_hz() - BROWSER_HZ) < 30
    carol.page.click("#hangup")
    alice.wait_text("#state", "idle")
    cdr = net.wait_cdr()
    rows = [r for r in net.cdrs() if r["callee"].get("username") == "carol"]
    assert rows and rows[0]["status_detail"] == "SUCCESS", rows or cdr
    mp3 = net.recording(rows[0]["recording"])
    floor = tone_power(mp3, 800)
    assert tone_power(mp3, OTHER_HZ) > 20 * floor and tone_power(mp3, BROWSER_HZ) > 20 * floor


def test_a_browser_whose_network_drops_ends_its_call_with_a_cdr(
        net: Net, browsers: Any) -> None:
    bob = net.phone("bob", PHONE_HZ)
    alice = browsers("alice", BROWSER_HZ)
    alice.sign_in("alice")
    alice.page.fill("#dial", "bob")
    alice.page.click("#call")
    _in_call(alice)
    bob.ctl.wait_event("CALL_ESTABLISHED", 10)
    # The browser's machine goes silent: no media, no SIP, no websocket pongs.
    for pid in alice.processes():
        os.kill(pid, signal.SIGSTOP)
    bob.ctl.wait_event("CALL_CLOSED", 15)  # media timeout (4 s): the PBX hung up
    rows = wait_until(lambda: [r for r in net.cdrs() if r["callee"].get("username") == "bob"
                               and r["caller"].get("username") == "alice"], 10, 0.3)
    assert rows[0]["hangup_by"] == "system", rows[0]
