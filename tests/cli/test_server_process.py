"""``tongdai serve`` as a process: what it logs (and never logs), and how it says that a
port it needs is taken."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tongdai.cli import main
from tongdai.sip import digest

PASSWORD = "Alice-Secret-77"
PUSH_TOKEN = "PushTokenNotForLogs"


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
    base = random.randrange(40000, 60000, 2)
    env |= {"TONGDAI_DATA_DIR": str(tmp_path / "data"), "TONGDAI_SIP_PORT": "0",
            "TONGDAI_HTTP_PORT": "0", "TONGDAI_RTP_PORTS": f"{base}-{base + 39}"}
    env |= {f"TONGDAI_{k.upper()}": v for k, v in settings.items()}
    return env


@dataclass
class Running:
    proc: subprocess.Popen[str]
    out: Path
    err: Path
    sip_port: int = 0
    http_port: int = 0

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.out.read_text(), self.err.read_text()


@contextmanager
def _serve(tmp_path: Path, env: dict[str, str],
           open_files: tuple[int, int] | None = None) -> Iterator[Running]:
    """``tongdai serve`` started as a shell would, with ``open_files`` as its (soft,
    hard) limit on open files when given."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "tongdai", "serve"], env=env,
                                stdout=o, stderr=e, text=True, cwd=tmp_path,
                                preexec_fn=limit)
    run = Running(proc, out, err)
    try:
        deadline = time.monotonic() + 60
        while "stop with Ctrl-C" not in out.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        banner = out.read_text()
        sip = re.search(r"udp\+tcp 127\.0\.0\.1:(\d+)", banner)
        http = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert sip is not None and http is not None, banner
        run.sip_port, run.http_port = int(sip.group(1)), int(http.group(1))
        yield run
    finally:
        run.stop()


def _register(sip_port: int, *, contact: str, expires: int) -> int:
    """A REGISTER for alice with digest over UDP; returns the final status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        port = s.getsockname()[1]
        auth = ""
        for cseq in (1, 2):
            s.sendto((
                f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\n"
                f"To: <sip:alice@127.0.0.1>\r\nCall-ID: reg-{port}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <{contact}>\r\nExpires: {expires}\r\n"
                f"User-Agent: test-phone\r\n{auth}Content-Length: 0\r\n\r\n"
            ).encode(), ("127.0.0.1", sip_port))
            data = s.recv(65535).decode()
            status = int(data.split(" ", 2)[1])
            if status != 401:
                return status
            chal = re.search(r"(?im)^WWW-Authenticate: (.*)\r$", data)
            assert chal is not None
            value = digest.authorization(chal.group(1), method="REGISTER", uri="sip:127.0.0.1",
                                         username="alice", password=PASSWORD, cnonce="c0ffee")
            auth = f"Authorization: {value}\r\n"
        return status


def _http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
          ) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _events(stderr: str, fmt: str) -> list[dict[str, Any]]:
    """Each log line as ``{"msg": event, "level": ..., field: value}``."""
    out = []
    for line in stderr.splitlines():
        if fmt == "json":
            out.append(json.loads(line))  # every line is one JSON object
            continue
        m = re.fullmatch(r"\S+Z (\w+) (\S+) (\S+)((?: \w+=(?:\"[^\"]*\"|\S*))*)", line)
        assert m is not None, line
        fields = dict(re.findall(r" (\w+)=(\"[^\"]*\"|\S*)", m.group(4)))
        out.append({"level": m.group(1), "logger": m.group(2), "msg": m.group(3)}
                   | {k: v.strip('"') for k, v in fields.items()})
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_server_logs_registrations_and_requests_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    env = _env(tmp_path, log_format=fmt, register_min_expires="1")
    for k in [k for k in os.environ if k.startswith("TONGDAI_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("TONGDAI_DATA_DIR", env["TONGDAI_DATA_DIR"])
    assert main(["db", "init"]) == 0
    capsys.readouterr()
    assert main(["app", "create", "acme", "--json"]) == 0
    app = json.loads(capsys.readouterr().out)
    app_id, app_secret = app["app_id"], app["app_secret"]
    assert main(["device", "add", "--app", app_id, "alice", "--password", PASSWORD]) == 0
    app_hash = hashlib.sha256((app_id + app_secret).encode()).hexdigest()
    bogus_hash = "5ec7e7" * 8

    with _serve(tmp_path, env) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        contact = f"sip:alice@127.0.0.1:5999;transport=udp;pn-prid={PUSH_TOKEN}"
        assert _register(srv.sip_port, contact=contact, expires=600) == 200
        assert _register(srv.sip_port, contact=contact, expires=0) == 200  # unregister
        assert _register(srv.sip_port, contact="sip:alice@127.0.0.1:5998", expires=1) == 200

        status, _ = _http(f"{base}/oapi/v1/call/histories?appId={app_id}&created_from=2026-01-01"
                          f"&created_to=2026-01-02&limit=1&page=1&hash={bogus_hash}")
        assert status == 401
        status, token = _http(
            f"{base}/oapi/v1/voice/auth_token",
            data=json.dumps({"sipUser": "alice", "sipPassword": PASSWORD}).encode(),
            headers={"x-auth-app-id": app_id, "x-auth-app-hash": app_hash,
                     "Content-Type": "application/json"})
        assert status == 200
        with connect(f"ws://127.0.0.1:{srv.http_port}/oapi/v1/voice/ws?token={token['value']}"):
            pass
        time.sleep(2)  # the 1 s binding expires; the sweeper runs every 0.5 s
        out, err = srv.stop()

    events = _events(err, fmt)
    names = [e["msg"] for e in events]
    started = next(e for e in events if e["msg"] == "server.started")
    assert started["level"] == "INFO" and started["sip"] == f"127.0.0.1:{srv.sip_port}"
    assert names[-1] == "server.stopped"

    regs = [e for e in events if e["msg"].startswith("registration.")]
    assert [e["msg"] for e in regs] == ["registration.added", "registration.removed",
                                        "registration.added", "registration.expired"]
    first = regs[0]
    assert first["level"] == "INFO" and first["user"] == "alice"
    assert first["app_id"] == app_id and first["transport"] == "udp"
    assert first["contact"] == "sip:alice@127.0.0.1:5999"  # without its parameters
    assert re.fullmatch(r"127\.0\.0\.1:\d+", first["source"])
    assert first["user_agent"] == "test-phone"

    http = [(e["method"], e["path"], int(e["status"])) for e in events
            if e["msg"] == "http.request"]
    assert http == [("GET", "/oapi/v1/call/histories", 401),
                    ("POST", "/oapi/v1/voice/auth_token", 200),
                    ("WS", "/oapi/v1/voice/ws", 101)]
    assert all(float(e["ms"]) >= 0 and e["client"].startswith("127.0.0.1:")
               for e in events if e["msg"] == "http.request")

    for secret in (PASSWORD, app_secret, app_hash, bogus_hash, token["value"], PUSH_TOKEN,
                   digest.ha1("MD5", "alice", "127.0.0.1", PASSWORD)):
        assert secret not in err and secret not in out


def _taken(kind: str) -> tuple[socket.socket, int]:
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen()
    return s, int(s.getsockname()[1])


@pytest.mark.parametrize(("setting", "kind"), [("TONGDAI_SIP_PORT", "udp"),
                                               ("TONGDAI_SIP_PORT", "tcp"),
                                               ("TONGDAI_HTTP_PORT", "tcp")])
def test_a_port_in_use_is_named(tmp_path: Path, setting: str, kind: str) -> None:
    sock, port = _taken(kind)
    try:
        env = _env(tmp_path) | {setting: str(port)}
        res = subprocess.run([sys.executable, "-m", "tongdai", "serve"], env=env,
                             capture_output=True, text=True, timeout=60)
    finally:
        sock.close()
    assert res.returncode == 1
    assert res.stderr.endswith(
        f"tongdai: cannot start: {setting} {port} is in use on 127.0.0.1 (another tongdai, or "
        f"another server, is listening there); stop it or set {setting} to a free port\n"
    ), res.stderr
    assert "Traceback" not in res.stderr


def _open_files(pid: int) -> tuple[int, int]:
    """The (soft, hard) limit on open files of process ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/PID/limits")


def test_the_server_raises_its_open_file_limit_to_the_hard_one(tmp_path: Path) -> None:
    """A shell's soft limit of 1,024 open files would cap the media relay at ~250
    calls: the server takes what the hard limit allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise to")
    with _serve(tmp_path, _env(tmp_path), open_files=(1024, 2048)) as srv:
        assert _open_files(srv.proc.pid) == (2048, 2048)
