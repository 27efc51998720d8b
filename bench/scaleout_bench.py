"""REGISTER/s and calls/s with one and with two tongdai nodes, beside Kamailio alone.

Both tongdai cases run on a fresh PostgreSQL database and a Redis bus (as a
multi-node deployment does), so the only difference between them is the number of
nodes. With two nodes SIPp drives each node directly, at half the rate each (each
node registers its own half of the devices; the caller is registered at both and
calls through each). The REGISTER steps are those of bench/register_bench.py (401
challenge, digest answer, 200); the call steps those of bench/calls_bench.py (both
legs, INVITE to BYE, recording off, one CDR per call checked). "cpu" is the sum over
the nodes, in cores; cpu-s/1k the CPU-seconds the nodes spent per 1,000 completed
operations, which a shared machine does not distort as it does the rates.

Then REGISTER with two nodes behind the Kamailio edge of deploy/kamailio (one SIPp
sending everything to the edge, which forwards with Path; CPU of nodes and edge).

Anchor, same run: Kamailio alone (bench/anchor_kamailio.cfg) answering the same
REGISTERs statelessly with a digest check, its CPU summed over all its processes.

On this 2-core machine SIPp itself needs CPU, so two nodes can at best double one
node's clean rate and in practice do not: read the cpu-s/1k columns.

    python bench/scaleout_bench.py [--devices 2000] [--register-rates 500,1000,2000]
        [--call-rates 50,100,200] [--seconds 4] [--edge-only]

``--edge-only`` runs the edge case and its Kamailio anchor only.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import calls_bench
import redis
from register_bench import REGISTER_SETTINGS, provision_devices, register_args, users_csv
from sipbench import SippResult, Tongdai, free_port, print_table, run_sipp

from tongdai.deploy.edge import Edge

HERE = Path(__file__).parent
PG = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def shared_state() -> Iterator[dict[str, str]]:
    """A new PostgreSQL database and a Redis prefix of its own; both removed after."""
    name = f"tongdai_scaleout_{secrets.token_hex(4)}"
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f'CREATE DATABASE "{name}"'], check=True)
    prefix = f"bench{secrets.token_hex(4)}"
    try:
        yield {"database_url": f"{PG}/{name}",
               "bus_url": f"redis://127.0.0.1:6379/0?prefix={prefix}"}
    finally:
        subprocess.run(["psql", f"{PG}/postgres", "-qc",
                        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=True)
        r = redis.Redis()
        keys = list(r.scan_iter(match=f"{prefix}:*"))
        if keys:
            r.delete(*keys)


@contextmanager
def cluster(nodes: int, shared: dict[str, str], provision: Callable[[Tongdai], None],
            **settings: str) -> Iterator[list[Tongdai]]:
    """``nodes`` tongdai processes on the shared database and bus, with one data
    directory (one store key) between them; ``provision`` runs once before they start."""
    first = Tongdai.create(**shared, **settings)
    rest = [Tongdai.create(**shared, **settings, data_dir=str(first.data_dir))
            for _ in range(nodes - 1)]
    provision(first)
    started: list[Tongdai] = []
    try:
        for td in (first, *rest):
            td.start()
            started.append(td)
        yield started
    finally:
        for td in started:
            td.stop()


def run_parallel(steps: list[Callable[[], SippResult]]) -> SippResult:
    """Run one SIPp step per node at once and add their results up (rate, count,
    completions and CPU summed; latency and wall time the worst node's)."""
    with ThreadPoolExecutor(len(steps)) as pool:
        parts = list(pool.map(lambda step: step(), steps))
    total = parts[0]
    for p in parts[1:]:
        total = replace(
            total, rate=total.rate + p.rate, calls=total.calls + p.calls, ok=total.ok + p.ok,
            failed=total.failed + p.failed, retrans=total.retrans + p.retrans,
            p50_ms=max(total.p50_ms, p.p50_ms), p99_ms=max(total.p99_ms, p.p99_ms),
            seconds=max(total.seconds, p.seconds),
            cpu_seconds=total.cpu_seconds + p.cpu_seconds)
    return replace(total, cpu=total.cpu_seconds / total.seconds)


def clean(r: SippResult) -> bool:
    return not r.failed and not r.retrans and r.ok >= r.calls


def rising(rates: list[int], step: Callable[[int], SippResult]) -> list[SippResult]:
    """Run ``step`` at each rate until one is not clean (failures or retransmissions)."""
    results: list[SippResult] = []
    for rate in rates:
        try:
            results.append(step(rate))
        except subprocess.TimeoutExpired:
            print(f"the step at {rate}/s did not finish: SIPp was stopped", flush=True)
            break
        if not clean(results[-1]):
            break
    return results


def register_steps(nodes: int, devices: int, rates: list[int], seconds: float,
                   shared: dict[str, str]) -> list[SippResult]:
    share = devices // nodes
    with cluster(nodes, shared, lambda td: provision_devices(td, devices),
                 **REGISTER_SETTINGS) as tds:
        works = [Path(tempfile.mkdtemp(prefix=f"scaleout-reg{i}-")) for i in range(nodes)]
        args = [register_args(td.sip_port, users_csv(w / "users.csv",
                                                     range(i * share, (i + 1) * share)))
                for i, (td, w) in enumerate(zip(tds, works, strict=True))]

        def step(rate: int) -> SippResult:
            per = rate // nodes
            return run_parallel([
                lambda a=a, td=td, w=w: run_sipp(a, rate=per, count=int(per * seconds),
                                                 server_pid=td.pid, workdir=w)
                for a, td, w in zip(args, tds, works, strict=True)])

        step(min(rates[0], 500))  # warm the device caches
        return rising(rates, step)


def call_steps(nodes: int, rates: list[int], seconds: float, talk_ms: int,
               shared: dict[str, str]) -> list[SippResult]:
    uas_port = free_port()
    with cluster(nodes, shared, lambda td: calls_bench.provision_calls(td, uas_port),
                 ring_timeout="30") as tds:
        works = [Path(tempfile.mkdtemp(prefix=f"scaleout-call{i}-")) for i in range(nodes)]
        ports = [free_port() for _ in tds]
        for td, w, port in zip(tds, works, ports, strict=True):
            calls_bench.write_caller(w, talk_ms)
            calls_bench.register_caller(td, w, port)

        def step(rate: int) -> SippResult:
            per = rate // nodes
            uas = calls_bench.start_uas(works[0], uas_port)
            try:
                time.sleep(0.3)  # SIPp gives no sign that it is listening
                before = calls_bench.count_cdrs(tds[0])
                r = run_parallel([
                    lambda td=td, w=w, port=port: run_sipp(
                        calls_bench.call_args(td, w, port), rate=per,
                        count=int(per * seconds), server_pid=td.pid, workdir=w)
                    for td, w, port in zip(tds, works, ports, strict=True)])
            finally:
                uas.terminate()
                uas.wait()
            cdrs = cdrs_written(tds[0], before, r.ok)
            print(f"{nodes} node(s), {rate} calls/s: {r.ok} completed, {cdrs} CDRs",
                  flush=True)
            return r if cdrs >= r.ok else replace(r, failed=r.failed + r.ok - cdrs)

        return rising(rates, step)


def cdrs_written(td: Tongdai, before: int, expected: int, timeout: float = 10.0) -> int:
    """The CDRs written since ``before``, once ``expected`` are there or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        n = calls_bench.count_cdrs(td) - before
        if n >= expected or time.monotonic() > deadline:
            return n


def edge_register_steps(devices: int, rates: list[int], seconds: float,
                        shared: dict[str, str]) -> list[SippResult]:
    """Two nodes behind the Kamailio edge of deploy/kamailio (deploy/run's, started the
    same way): one SIPp sends every REGISTER to the edge, which forwards it with Path
    to a node chosen by Call-ID. The CPU is the nodes' and the edge's together."""
    with cluster(2, shared, lambda td: provision_devices(td, devices),
                 **REGISTER_SETTINGS) as tds:
        work = Path(tempfile.mkdtemp(prefix="scaleout-edge-"))
        edge = Edge(host="127.0.0.1", port=free_port(), ws_port=free_port(),
                    run_dir=work / "edge",
                    nodes=[f"127.0.0.1:{td.sip_port}" for td in tds])
        edge.start()
        try:
            edge.wait_active(2)
            assert edge.proc is not None
            pids = [td.pid for td in tds] + kamailio_pids(edge.proc.pid)
            args = register_args(edge.port, users_csv(work / "users.csv", range(devices)))
            run_sipp(args, rate=min(rates[0], 500), count=min(devices, 2000),
                     server_pid=pids, workdir=work)  # warm the device caches
            return rising(rates, lambda rate: run_sipp(
                args, rate=rate, count=int(rate * seconds), server_pid=pids, workdir=work))
        finally:
            edge.stop()


def kamailio_steps(devices: int, rates: list[int], seconds: float) -> list[SippResult]:
    """The anchor: Kamailio alone, stateless REGISTER with a digest check."""
    work = Path(tempfile.mkdtemp(prefix="scaleout-kam-"))
    port = free_port()
    cfg = work / "kamailio.cfg"
    cfg.write_text((HERE / "anchor_kamailio.cfg").read_text()
                   .replace("@PORT@", str(port)).replace("@CHILDREN@", "2"))
    (work / "run").mkdir()
    kam = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(work / "run"),
                            "-P", str(work / "kamailio.pid")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = kamailio_pids(kam.pid)
        args = register_args(port, users_csv(work / "users.csv", range(devices)))
        return rising(rates, lambda rate: run_sipp(args, rate=rate, count=int(rate * seconds),
                                                   server_pid=pids, workdir=work))
    finally:
        kam.send_signal(signal.SIGTERM)
        kam.wait(10)


def kamailio_pids(main: int, timeout: float = 10.0) -> list[int]:
    """Kamailio's main process and the workers it forks (once they stop appearing)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        now = [main, *map(int, kids)]
        if len(now) > 1 and now == seen:
            return now
        seen = now
        time.sleep(0.2)
    raise RuntimeError("Kamailio did not start its workers")


def best(results: list[SippResult]) -> int:
    return max((r.rate for r in results if clean(r)), default=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--register-rates", default="500,1000,2000,3000")
    ap.add_argument("--call-rates", default="50,100,200,300")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each step")
    ap.add_argument("--talk-ms", type=int, default=200)
    ap.add_argument("--edge-only", action="store_true",
                    help="only the case behind the Kamailio edge, and the anchor")
    args = ap.parse_args()
    reg_rates = [int(r) for r in args.register_rates.split(",")]
    call_rates = [int(r) for r in args.call_rates.split(",")]

    tables: list[tuple[str, list[SippResult]]] = []

    def case(title: str, results: list[SippResult]) -> None:
        print_table(title, results)
        tables.append((title, results))

    for nodes in () if args.edge_only else (1, 2):
        with shared_state() as shared:
            case(f"REGISTER, {nodes} tongdai node(s) on PostgreSQL + Redis",
                 register_steps(nodes, args.devices, reg_rates, args.seconds, shared))
        with shared_state() as shared:
            case(f"calls, {nodes} tongdai node(s) on PostgreSQL + Redis",
                 call_steps(nodes, call_rates, args.seconds, args.talk_ms, shared))
    with shared_state() as shared:
        case("REGISTER, 2 tongdai nodes behind the Kamailio edge (nodes + edge)",
             edge_register_steps(args.devices, reg_rates, args.seconds, shared))
    case("anchor: Kamailio alone, stateless REGISTER with digest (all processes)",
         kamailio_steps(args.devices, reg_rates, args.seconds))
    print("\nhighest clean rate per case:")
    for title, results in tables:
        print(f"  {best(results):>6}/s  {title}")


if __name__ == "__main__":
    main()
