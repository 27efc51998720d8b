"""Start and stop a whole topology on one machine: a fresh (or given) PostgreSQL
database, N tongdai nodes on it and on one Redis, and the Kamailio edge in front.

Every process runs in its own session (a Ctrl-C in the terminal reaches only the
runner, which stops them in order) and logs to a file of the run directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tongdai.deploy import database
from tongdai.deploy.edge import Edge
from tongdai.deploy.ports import free_port
from tongdai.deploy.process import terminate

# Seconds a node has to migrate its database and open its sockets.
NODE_START_TIMEOUT = 60.0
# The line a node prints once it serves (server.py's banner).
READY = "stop with Ctrl-C"
# RTP ports per node, in consecutive blocks from this one.
RTP_BASE = 30000
RTP_BLOCK = 2000


@dataclass(slots=True, kw_only=True)
class TopologySpec:
    """What to start. Ports left at 0 are picked free; an empty ``database_url``
    means a fresh database created through ``pg_admin`` (and dropped at stop)."""

    run_dir: Path
    nodes: int = 2
    host: str = "127.0.0.1"
    edge_port: int = 0
    edge_ws_port: int = 0  # SIP over WebSocket (browsers)
    database_url: str = ""
    pg_admin: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    rtp_base: int = RTP_BASE
    env: dict[str, str] = field(default_factory=dict)  # more TONGDAI_* settings


@dataclass(slots=True, kw_only=True)
class Node:
    """One tongdai process."""

    name: str
    sip_port: int
    http_port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def sip(self) -> str:
        return f"{self.env['TONGDAI_SIP_HOST']}:{self.sip_port}"

    @property
    def http(self) -> str:
        return f"http://{self.env['TONGDAI_HTTP_HOST']}:{self.http_port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tongdai", "serve"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = NODE_START_TIMEOUT) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            if READY in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start in {timeout:.0f} s: see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the node dies as in a crash, nothing flushed."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Topology:
    """The processes of one ``TopologySpec``; ``start`` then ``stop`` (also on error)."""

    def __init__(self, spec: TopologySpec) -> None:
        self.spec = spec
        self.database_url = spec.database_url
        self._fresh_database = not spec.database_url
        # One Redis, a key prefix of this topology's own.
        sep = "&" if "?" in spec.redis_url else "?"
        self.bus_url = f"{spec.redis_url}{sep}prefix=td{secrets.token_hex(4)}"
        self.nodes: list[Node] = []
        self.edge: Edge | None = None
        self.edge_port = spec.edge_port or free_port(spec.host)
        self.edge_ws_port = spec.edge_ws_port or free_port(spec.host)

    @property
    def data_dir(self) -> Path:
        return self.spec.run_dir / "data"

    def node_env(self) -> dict[str, str]:
        """The settings every node shares, for ``tongdai`` admin commands as well."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
        env.update({
            "TONGDAI_DATA_DIR": str(self.data_dir),
            "TONGDAI_DATABASE_URL": self.database_url,
            "TONGDAI_BUS_URL": self.bus_url,
            "TONGDAI_LOG_LEVEL": "info",
            **self.spec.env,
        })
        return env

    def start(self) -> None:
        """Create the database, start the nodes one after the other (the first
        migrates the schema), then the edge; return once it sees every node live."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        s = self.spec
        for tool in ("kamailio", "kamcmd"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (Debian: apt-get install kamailio "
                                   "kamailio-websocket-modules)")
        s.run_dir.mkdir(parents=True, exist_ok=True)
        if self._fresh_database:
            self.database_url = database.create(s.pg_admin)
        for i in range(s.nodes):
            node = self._node(i)
            self.nodes.append(node)
            node.start()
            node.wait_ready()
        self.edge = Edge(host=s.host, port=self.edge_port, ws_port=self.edge_ws_port,
                         run_dir=s.run_dir / "edge", nodes=[n.sip for n in self.nodes])
        self.edge.start()
        self.edge.wait_active(len(self.nodes))

    def _node(self, i: int) -> Node:
        s = self.spec
        sip_port, http_port = free_port(s.host), free_port(s.host)
        lo = s.rtp_base + i * RTP_BLOCK
        env = self.node_env()
        env.update({
            "TONGDAI_SIP_HOST": s.host, "TONGDAI_SIP_PORT": str(sip_port),
            "TONGDAI_HTTP_HOST": s.host, "TONGDAI_HTTP_PORT": str(http_port),
            "TONGDAI_RTP_PORTS": f"{lo}-{lo + RTP_BLOCK - 1}",
            "TONGDAI_SIP_EDGE_PROXIES": f"{s.host}:{self.edge_port}",
        })
        return Node(name=f"node{i + 1}", sip_port=sip_port, http_port=http_port, env=env,
                    log_path=s.run_dir / f"node{i + 1}.log")

    def stop(self) -> None:
        """Stop the edge, then the nodes (each writes what it holds), then drop the
        database if this topology created it."""
        if self.edge is not None:
            self.edge.stop()
        for node in self.nodes:
            node.stop()
        if self._fresh_database and self.database_url:
            database.drop(self.spec.pg_admin, self.database_url)
            self.database_url = ""

    def describe(self) -> str:
        """How to reach the topology, for a person at a terminal."""
        assert self.edge is not None
        lines = [
            f"tongdai topology: {len(self.nodes)} nodes behind a Kamailio edge",
            f"  devices   register and call through sip:{self.edge.sip} (UDP and TCP)",
            f"  browsers  SIP over WebSocket at {self.edge.ws_url}",
        ]
        lines += [f"  {n.name}     SIP {n.sip}  HTTP {n.http}  log {n.log_path}"
                  for n in self.nodes]
        lines += [
            f"  edge log  {self.edge.log_path}",
            f"  database  {self.database_url}",
            f"  events    {self.bus_url}",
            "  admin     TONGDAI_DATA_DIR=" + str(self.data_dir)
            + " TONGDAI_DATABASE_URL='" + self.database_url + "' tongdai app create NAME",
            "  stop with Ctrl-C",
        ]
        return "\n".join(lines)
