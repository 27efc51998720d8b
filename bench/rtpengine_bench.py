"""Benchmark: the built-in relay against rtpengine, as tongdai's media engine.

    python bench/rtpengine_bench.py [--calls 50] [--seconds 4] [--setups 300]

Each engine runs in its own process (tongdai's side), and rtpengine in its daemon
(userspace forwarding, started here on loopback with ephemeral ports), so the CPU
of each can be read from /proc alone. Two measurements per engine, in one run:

* setup: ``create_session`` + both ``set_remote`` + ``close``, one call after the
  other: calls/s and CPU-seconds per 1,000 calls (tongdai's process, plus the
  daemon for rtpengine).
* media: N calls, each two "phones" sending 20 ms PCMU packets both ways (50
  packets/s per direction) through the engine for S seconds: packets relayed, loss,
  and CPU-seconds per 1,000 packets relayed (tongdai's process, plus the daemon).
  No recording: this compares forwarding.

The built-in relay is the anchor of the rtpengine figures (same run, same load).
Wall-clock rates on a shared machine are pessimistic; the CPU columns hold.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.rtpengine_daemon import Rtpengine, missing

TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"\xff" * 160


def cpu_of(pid: int) -> float:
    """User + system CPU-seconds of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# tongdai's side: one engine in a process of its own ------------------------------------

def engine_main(conn: Connection, kind: str, ng_port: int, tmp: str) -> None:
    asyncio.run(_serve(conn, kind, ng_port, Path(tmp)))


async def _serve(conn: Connection, kind: str, ng_port: int, tmp: Path) -> None:
    from tongdai.media import MediaSession, RelayEngine
    from tongdai.media.rtpengine import RtpengineEngine

    engine: RelayEngine | RtpengineEngine
    if kind == "relay":
        engine = RelayEngine("127.0.0.1", (24000, 27999), tmp / "rec")
    else:
        engine = RtpengineEngine(host="127.0.0.1", port=ng_port, recordings_dir=tmp / "rec")
    await engine.start()
    conn.send("ready")
    loop = asyncio.get_running_loop()
    sessions: list[MediaSession] = []
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "setup":
            for i in range(arg):
                s = await engine.create_session(call_id=f"s{i}", app_id="bench", record=False)
                s.set_remote("a", "127.0.0.1", 9)
                s.set_remote("b", "127.0.0.1", 11)
                await s.close()
            conn.send(None)
        elif cmd == "open":
            for i, (a, b) in enumerate(arg):
                s = await engine.create_session(call_id=f"m{i}", app_id="bench", record=False)
                s.set_remote("a", *a)
                s.set_remote("b", *b)
                sessions.append(s)
            if isinstance(engine, RtpengineEngine):
                for s in sessions:
                    await s.settled()  # type: ignore[attr-defined]
            conn.send([(s.local_address("a"), s.local_address("b")) for s in sessions])
        elif cmd == "close":
            await asyncio.gather(*(s.close() for s in sessions))
            sessions.clear()
            conn.send(None)
        else:
            await engine.stop()
            conn.send(None)
            return


# The phones: this process ----------------------------------------------------------------

def phones(n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        out.append(s)
    return out


def stream(socks: list[socket.socket], dests: list[tuple[str, int]],
           seconds: float) -> tuple[int, int]:
    """Every phone sends a packet to its destination each 20 ms; (sent, received)."""
    sent = received = 0
    start = time.monotonic()
    for tick in range(int(seconds / 0.02)):
        wait = start + tick * 0.02 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        header = struct.pack("!BBHII", 0x80, 0, tick & 0xFFFF, tick * 160, 0)
        for i, (s, d) in enumerate(zip(socks, dests, strict=True)):
            s.sendto(header[:8] + struct.pack("!I", i) + PAYLOAD, d)
            sent += 1
        received += drain(socks)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        received += drain(socks)
        time.sleep(0.01)
    return sent, received


def drain(socks: list[socket.socket]) -> int:
    got = 0
    for s in socks:
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            got += 1
    return got


def measure(kind: str, args: argparse.Namespace, daemon: Rtpengine | None,
            tmp: Path) -> dict[str, float]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=engine_main, args=(child, kind, daemon.ng_port if daemon else 0, str(tmp)))
    proc.start()
    assert proc.pid is not None and parent.recv() == "ready"
    pid = proc.pid

    def cpu() -> tuple[float, float]:
        """(tongdai's engine process, the rtpengine daemon) CPU-seconds so far."""
        return cpu_of(pid), cpu_of(daemon.proc.pid) if daemon and daemon.proc else 0.0

    def ask(cmd: str, arg: Any = None) -> Any:
        parent.send((cmd, arg))
        return parent.recv()

    out: dict[str, float] = {}
    c0, t0 = cpu(), time.monotonic()
    ask("setup", args.setups)
    wall, c1 = time.monotonic() - t0, cpu()
    out["setup_rate"] = args.setups / wall
    out["setup_own"] = (c1[0] - c0[0]) / args.setups * 1000
    out["setup_daemon"] = (c1[1] - c0[1]) / args.setups * 1000
    socks = phones(2 * args.calls)
    addrs = [s.getsockname()[:2] for s in socks]
    legs = ask("open", [(addrs[2 * i], addrs[2 * i + 1]) for i in range(args.calls)])
    dests = [addr for a, b in legs for addr in (a, b)]
    c0 = cpu()
    sent, received = stream(socks, dests, args.seconds)
    c1 = cpu()
    ask("close")
    ask("stop")
    proc.join(10)
    for s in socks:
        s.close()
    out["sent"], out["received"] = sent, received
    out["media_own"] = (c1[0] - c0[0]) / max(received, 1) * 1000
    out["media_daemon"] = (c1[1] - c0[1]) / max(received, 1) * 1000
    out["media_load"] = (c1[0] - c0[0] + c1[1] - c0[1]) / args.seconds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50, help="concurrent calls in the media run")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--setups", type=int, default=300, help="calls set up and torn down")
    args = ap.parse_args()
    why = missing()
    if why:
        sys.exit(f"rtpengine_bench: {why}")
    load = os.getloadavg()
    print(f"rtpengine_bench: {os.cpu_count()} CPUs, load average {load[0]:.2f}; "
          f"{args.setups} setups, then {args.calls} calls x {args.seconds:g} s of RTP")
    head = (f"{'engine':<26} {'setup/s':>7} {'CPU-s/1k setups':>17} {'pkts sent':>9} "
            f"{'relayed':>8} {'loss':>6} {'CPU-s/1k pkts':>15} {'CPU':>5}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="rtpengine-bench-") as tmp:
        daemon = Rtpengine(Path(tmp) / "daemon", ports=8 * args.calls + 40)
        daemon.start()
        try:
            for kind, label in (("relay", "built-in relay (anchor)"),
                                ("rtpengine", "rtpengine 10.5 userspace")):
                r = measure(kind, args, daemon if kind == "rtpengine" else None, Path(tmp))
                loss = 1 - r["received"] / r["sent"] if r["sent"] else 0.0
                print(f"{label:<26} {r['setup_rate']:>7.0f} "
                      f"{r['setup_own']:>8.2f} + {r['setup_daemon']:<6.2f} "
                      f"{r['sent']:>9.0f} {r['received']:>8.0f} {loss * 100:>5.1f}% "
                      f"{r['media_own']:>6.3f} + {r['media_daemon']:<6.3f} "
                      f"{r['media_load'] * 100:>4.0f}%")
        finally:
            daemon.stop()
    print("CPU-s columns: tongdai's engine process + the rtpengine daemon; CPU: both, "
          "during the media run, as a share of one core")


if __name__ == "__main__":
    main()
