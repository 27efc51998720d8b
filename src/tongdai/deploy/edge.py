"""The Kamailio edge of a topology: its configuration (``deploy/kamailio``) filled in
for this machine, its dispatcher list, and the process."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tongdai.deploy.process import terminate

# deploy/kamailio/tongdai-edge.cfg of the source tree this package is part of.
CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "kamailio" / "tongdai-edge.cfg"
# Seconds Kamailio has to open its sockets, and the nodes to answer its probes.
START_TIMEOUT = 15.0


def render(template: str, *, host: str, port: int, ws_port: int, run_dir: Path) -> str:
    """The configuration with its @HOST@, @PORT@, @WS_PORT@ and @RUN_DIR@ filled in."""
    return (template.replace("@HOST@", host).replace("@PORT@", str(port))
            .replace("@WS_PORT@", str(ws_port)).replace("@RUN_DIR@", str(run_dir)))


def dispatcher_list(nodes: Sequence[str]) -> str:
    """Kamailio's dispatcher list: every node (``host:port``) in set 1."""
    return "".join(f"1 sip:{hostport}\n" for hostport in nodes)


class Edge:
    """One Kamailio process in the foreground of its own session, logging to a file."""

    def __init__(self, *, host: str, port: int, ws_port: int, run_dir: Path,
                 nodes: Sequence[str], config: Path = CONFIG) -> None:
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.run_dir = run_dir
        self.nodes = list(nodes)
        self.config = config
        self.log_path = run_dir / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sip(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Where browsers connect for SIP over WebSocket."""
        return f"ws://{self.host}:{self.ws_port}"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.run_dir / "kamailio.cfg"
        cfg.write_text(render(self.config.read_text(), host=self.host, port=self.port,
                              ws_port=self.ws_port, run_dir=self.run_dir))
        (self.run_dir / "dispatcher.list").write_text(dispatcher_list(self.nodes))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(self.run_dir),
                 "-P", str(self.run_dir / "kamailio.pid")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def active(self) -> list[str]:
        """The nodes the dispatcher holds as up (flags A...) now, as ``host:port``."""
        res = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.run_dir}/kamctl.sock", "dispatcher.list"],
            capture_output=True, text=True, timeout=10, check=False)
        found = re.findall(r"URI:\s*sip:(\S+)\s+FLAGS:\s*(\S+)", res.stdout)
        return [uri for uri, flags in found if flags.startswith("A")]

    def wait_active(self, count: int, timeout: float = START_TIMEOUT) -> None:
        """Return once ``count`` nodes answer the edge's probes; raise otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: see {self.log_path}")
            if len(self.active()) >= count:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the edge sees fewer than {count} live nodes: see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
