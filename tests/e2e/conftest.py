"""End-to-end fixtures: tongdai started as the CLI starts it, real SIP peers on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.baresip_ctl import Baresip

HERE = Path(__file__).parent


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                # baresip also binds TCP on port+1 (see tests/e2e/README).
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t2:
                    try:
                        t2.bind(("127.0.0.1", port + 1))
                    except OSError:
                        continue
            return port
    raise RuntimeError("no free port")


def port_block(size: int = 200) -> tuple[int, int]:
    """An even-aligned RTP port range that is unlikely to collide with others: below the
    kernel's ephemeral range (32768 and up), where ``free_port`` and the peers' own
    sockets take theirs, since the relay keeps its ports bound between calls."""
    base = random.randrange(10000, 32768 - size, 2)
    return base, base + size - 1


@dataclass
class Server:
    env: dict[str, str]
    data_dir: Path
    sip_port: int
    http_port: int
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str) -> Any:
        """Run ``tongdai ARGS --json`` against this server's data; return the JSON."""
        res = subprocess.run(
            [sys.executable, "-m", "tongdai", *args, "--json"], env=self.env,
            capture_output=True, text=True, timeout=60,
        )
        if res.returncode != 0:
            raise AssertionError(f"tongdai {' '.join(args)} failed: {res.stderr}")
        return json.loads(res.stdout)

    def add_devices(self, app_id: str, devices: list[tuple[str, str]]) -> None:
        """Provision many devices in one process (the CLI costs a Python start-up each)."""
        code = (
            "import asyncio, json, sys\n"
            "from tongdai.settings import load_settings\n"
            "from tongdai.keys import store_key\n"
            "from tongdai.pbx.credentials import digest_keys\n"
            "from tongdai.store.sql import open_store\n"
            "async def main():\n"
            "    s = load_settings(); st = await open_store(s.db_url, key=store_key(s.data_dir))\n"
            "    for user, pw in json.load(sys.stdin):\n"
            f"        await st.add_device({app_id!r}, user, digest_keys(user, s.domain, pw))\n"
            "    await st.close()\n"
            "asyncio.run(main())\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=120,
                       input=json.dumps(devices), text=True)

    def start(self) -> None:
        self.output = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tongdai", "serve"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        deadline = time.time() + 30
        assert self.proc.stdout is not None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "stop with Ctrl-C" in line:
                os.set_blocking(self.proc.stdout.fileno(), False)
                return
        raise AssertionError("tongdai did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def log(self) -> str:
        if self.proc is not None and self.proc.stdout is not None:
            try:
                more = self.proc.stdout.read()
            except (OSError, TypeError):
                more = None
            if more:
                self.output.append(more)
        return "".join(self.output)


def make_server(tmp_path: Path, **settings: str) -> Server:
    sip_port = free_port()
    http_port = free_port()
    lo, hi = port_block(400)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
    env.update({
        "TONGDAI_DATA_DIR": str(tmp_path / "data"),
        "TONGDAI_SIP_HOST": "127.0.0.1",
        "TONGDAI_SIP_PORT": str(sip_port),
        "TONGDAI_HTTP_HOST": "127.0.0.1",
        "TONGDAI_HTTP_PORT": str(http_port),
        "TONGDAI_RTP_PORTS": f"{lo}-{hi}",
        "TONGDAI_LOG_LEVEL": "info",
    })
    env.update({f"TONGDAI_{k.upper()}": v for k, v in settings.items()})
    return Server(env=env, data_dir=tmp_path / "data", sip_port=sip_port, http_port=http_port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tones for softphones (16-bit WAV) and SIPp (mu-law WAV), made with sox."""
    if shutil.which("sox") is None:
        pytest.fail("sox is required (apt-get install sox); .ci/run installs it")
    d = tmp_path_factory.mktemp("audio")
    out: dict[str, Path] = {}
    for hz in (440, 1000):
        wav = d / f"tone{hz}.wav"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav),
                        "synth", "120", "sine", str(hz), "vol", "0.5"], check=True)
        out[f"tone{hz}"] = wav
        pcmu = d / f"tone{hz}_pcmu.wav"
        subprocess.run(["sox", str(wav), "-e", "mu-law", "-b", "8", str(pcmu), "trim", "0", "30"],
                       check=True)
        out[f"tone{hz}_pcmu"] = pcmu
    return out


class Phones:
    """Starts baresip softphones and stops them all at the end of a test."""

    def __init__(self, root: Path, audio: dict[str, Path]) -> None:
        self.root = root
        self.audio = audio
        self.started: list[Baresip] = []

    def start(self, name: str, tone: str = "tone440") -> Baresip:
        sip_port = free_port()
        ctrl_port = free_port()
        phone = Baresip(self.root / name, sip_port=sip_port, ctrl_port=ctrl_port,
                        rtp=port_block(40), tone=self.audio[tone])
        self.started.append(phone)
        return phone

    def stop_all(self) -> None:
        for p in self.started:
            p.stop()


@pytest.fixture
def phones(tmp_path: Path, audio: dict[str, Path]) -> Iterator[Phones]:
    ph = Phones(tmp_path / "phones", audio)
    try:
        yield ph
    finally:
        ph.stop_all()


def sipp(*args: str, cwd: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start SIPp in the background (always -nostdin)."""
    return subprocess.Popen(
        ["sipp", *args, "-nostdin"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_process(p: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """A peer's exit code; a peer still running after ``timeout`` is killed and fails the test."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise


def scenario(name: str) -> str:
    return str(HERE / "scenarios" / name)


def wait_until(pred: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def sipp_logged(work: Path, what: str) -> set[str]:
    """The call numbers a SIPp scenario logged as ``what`` (its ``-trace_logs`` lines)."""
    found: set[str] = set()
    for log in work.glob("*_logs.log"):
        found |= set(re.findall(rf"^{what} (\d+)$", log.read_text(), re.M))
    return found


def download_recording(server: Server, app_id: str, secret: str, media: str,
                       into: Path) -> Path:
    """The MP3 of ``media``, through the Open API's ``play_recording`` and the URL it
    returns, saved in ``into``."""
    digest = hashlib.sha256(f"{app_id}{media}{secret}".encode()).hexdigest()
    with httpx.Client(base_url=server.http, timeout=10) as http:
        r = http.get("/oapi/v1/call/play_recording",
                     params={"appId": app_id, "media": media, "hash": digest})
        assert r.status_code == 200, r.text
        mp3 = httpx.get(r.json()["url"], timeout=10)
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
    path = into / media
    path.write_bytes(mp3.content)
    return path
