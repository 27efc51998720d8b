"""A client for baresip's ctrl_tcp module (netstring-framed JSON) and a process wrapper.

Command  -> {"command": "dial", "params": "sip:bob@127.0.0.1:5090", "token": "t1"}
Response <- {"response": true, "ok": true, "data": "...", "token": "t1"}
Event    <- {"event": true, "type": "CALL_ESTABLISHED", "class": "call", ...}
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

CONFIG = """\
poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
call_local_timeout\t120
call_max_calls\t\t4
audio_player\t\talsa,null
audio_source\t\taufile,{tone}
audio_alert\t\talsa,null
ausrc_srate\t\t8000
auplay_srate\t\t8000
ausrc_channels\t\t1
auplay_channels\t\t1
audio_level\t\tno
ausrc_format\t\ts16
auplay_format\t\ts16
auenc_format\t\ts16
audec_format\t\ts16
audio_buffer\t\t20-160
rtp_tos\t\t\t0
rtp_ports\t\t{rtp_lo}-{rtp_hi}
rtcp_mux\t\tno
jitter_buffer_delay\t5-10
rtp_stats\t\tno
rtp_timeout\t\t0
net_interface\t\t127.0.0.1
dns_server\t\t127.0.0.1:53
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\talsa.so
module\t\t\taufile.so
module\t\t\tsndfile.so
snd_path\t\t{rec_dir}
module_tmp\t\tuuid.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}
"""


class BaresipCtrl:
    def __init__(self, host: str = "127.0.0.1", port: int = 4444, timeout: float = 10.0):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(None)
        self.buf = b""
        self.events: list[dict[str, Any]] = []
        self._n = 0

    def _send(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def _read_one(self, timeout: float) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        while True:
            if b":" in self.buf:
                n_raw, rest = self.buf.split(b":", 1)
                n = int(n_raw)
                if len(rest) >= n + 1:
                    msg, self.buf = rest[:n], rest[n + 1:]
                    result: dict[str, Any] = json.loads(msg)
                    return result
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("baresip closed ctrl_tcp")
            self.buf += chunk

    def cmd(self, command: str, params: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        self._n += 1
        tok = f"t{self._n}"
        msg: dict[str, Any] = {"command": command, "token": tok}
        if params is not None:
            msg["params"] = params
        self._send(msg)
        end = time.time() + timeout
        while True:
            m = self._read_one(max(0.01, end - time.time()))
            if m.get("event"):
                self.events.append(m)
                continue
            if m.get("response") and m.get("token") == tok:
                return m

    def wait_event(self, etype: str, timeout: float = 10.0) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("type") == etype:
                return self.events.pop(i)
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"{etype}; seen {[e.get('type') for e in self.events]}")
            try:
                m = self._read_one(left)
            except TimeoutError:
                raise TimeoutError(
                    f"{etype}; seen {[e.get('type') for e in self.events]}"
                ) from None
            if m.get("event"):
                if m.get("type") == etype:
                    return m
                self.events.append(m)

    def close(self) -> None:
        self.sock.close()


class Baresip:
    """A headless baresip softphone on loopback, driven over ctrl_tcp."""

    def __init__(self, workdir: Path, *, sip_port: int, ctrl_port: int, rtp: tuple[int, int],
                 tone: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rec_dir = self.dir / "rec"
        self.rec_dir.mkdir(exist_ok=True)
        (self.dir / "config").write_text(CONFIG.format(
            sip_port=sip_port, ctrl_port=ctrl_port, rtp_lo=rtp[0], rtp_hi=rtp[1],
            tone=tone, rec_dir=self.rec_dir,
        ))
        (self.dir / "accounts").write_text("")
        (self.dir / "contacts").write_text("")
        self.sip_port = sip_port
        self.log = (self.dir / "baresip.log").open("w")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.dir)], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.ctl = BaresipCtrl(port=ctrl_port)

    def received_wavs(self) -> list[Path]:
        """What the phone heard: sndfile dumps decoded audio to ``*-dec.wav``."""
        return sorted(self.rec_dir.glob("*-dec.wav"))

    def add_account(self, user: str, password: str, registrar: str, *, transport: str = "udp",
                    answer: str = "auto", extra: str = "") -> None:
        tp = ";transport=tcp" if transport == "tcp" else ""
        line = (f"<sip:{user}@{registrar}{tp}>;auth_user={user};auth_pass={password};"
                f"regint=300;answermode={answer};audio_codecs=PCMU{extra}")
        self.ctl.cmd("uanew", line)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ctl.cmd("quit", timeout=2)
        with contextlib.suppress(Exception):
            self.ctl.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
