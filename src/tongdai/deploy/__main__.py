"""``python -m tongdai.deploy`` (``deploy/run``): the topology in the foreground until
Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from tongdai.deploy.topology import Topology, TopologySpec

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="deploy/run", description="A Kamailio edge and N tongdai nodes on PostgreSQL "
        "and Redis, on this machine, until Ctrl-C.")
    p.add_argument("--nodes", type=int, default=2, help="tongdai nodes (default 2)")
    p.add_argument("--host", default="127.0.0.1", help="address every process listens on")
    p.add_argument("--edge-port", type=int, default=0, help="the edge's SIP port (UDP and "
                   "TCP; default: a free one)")
    p.add_argument("--edge-ws-port", type=int, default=0, help="the edge's SIP over "
                   "WebSocket port, for browsers (default: a free one)")
    p.add_argument("--database-url", default="", help="tongdai's database (default: a "
                   "fresh PostgreSQL database, dropped at the end)")
    p.add_argument("--pg-admin", default=PG_ADMIN,
                   help="an admin URL of the PostgreSQL where the fresh database is made")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="logs, data and the edge's files (default: a new temporary folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    run_dir = a.run_dir or Path(tempfile.mkdtemp(prefix="tongdai-topology-"))
    topo = Topology(TopologySpec(
        run_dir=run_dir, nodes=a.nodes, host=a.host, edge_port=a.edge_port,
        edge_ws_port=a.edge_ws_port, database_url=a.database_url, pg_admin=a.pg_admin,
        redis_url=a.redis_url))
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        topo.start()
    except RuntimeError as exc:
        print(f"deploy/run: {exc}", file=sys.stderr)
        return 1
    print(topo.describe(), flush=True)
    try:
        while not done.wait(1.0):
            for node in topo.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    print(f"{node.name} exited ({node.proc.returncode}): see {node.log_path}",
                          file=sys.stderr, flush=True)
                    node.proc = None
    finally:
        print("stopping", flush=True)
        topo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
