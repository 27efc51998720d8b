"""An rtpengine daemon for tests and benchmarks: userspace only (no kernel module, no
iptables), on loopback, its ng port and media ports picked free, pcap recordings in a
spool directory. In CI a missing rtpengine is an error, not a skip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import free_port, port_block, wait_until

from tongdai.deploy.process import terminate
from tongdai.media.rtpengine.ng import pack, unpack

BINARY = "rtpengine"


def missing() -> str:
    """Why rtpengine tests cannot run here, or "" when they can."""
    if shutil.which(BINARY) is None:
        return "rtpengine is not installed (.ci/run installs rtpengine-daemon)"
    return ""


def marks() -> list[pytest.MarkDecorator]:
    """The e2e mark, and a skip when rtpengine is absent outside CI (inside CI, an error)."""
    why = missing()
    if os.environ.get("CI") and why:
        raise RuntimeError(f"rtpengine tests cannot run in CI: {why}")
    return [pytest.mark.e2e, pytest.mark.skipif(bool(why), reason=why or "-")]


class Rtpengine:
    def __init__(self, root: Path, ports: int = 200) -> None:
        self.spool = root / "spool"
        self.spool.mkdir(parents=True)
        self.ng_port = free_port()
        self.ports = port_block(ports)  # 4 a call: RTP and RTCP of two legs
        self.log_path = root / "rtpengine.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The value of TONGDAI_MEDIA_ENGINE for this daemon."""
        return f"rtpengine:127.0.0.1:{self.ng_port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [BINARY, "--config-file=none", "--table=-1", "--interface=127.0.0.1",
                 f"--listen-ng=127.0.0.1:{self.ng_port}", f"--port-min={self.ports[0]}",
                 f"--port-max={self.ports[1]}", "--foreground", "--log-stderr",
                 "--log-level=6", "--delete-delay=0", f"--recording-dir={self.spool}",
                 "--recording-method=pcap", "--recording-format=raw"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=10)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"rtpengine exited: {self.log()[-2000:]}")
        try:
            return self.ng("ping", timeout=0.2).get("result") == "pong"
        except TimeoutError:
            return False

    def ng(self, command: str, timeout: float = 2.0, **args: Any) -> dict[str, Any]:
        """One ng command, answered (``call_id`` is sent as ``call-id``)."""
        message = {"command": command, **{k.replace("_", "-"): v for k, v in args.items()}}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(pack("c" + os.urandom(4).hex(), message), ("127.0.0.1", self.ng_port))
            _, reply = unpack(s.recv(65535))
        return reply

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None
