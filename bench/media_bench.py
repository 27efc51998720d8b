"""Benchmark: how many concurrent recorded G.711 calls one relay process carries.

    python bench/media_bench.py [--steps 50,100,200,300,400] [--seconds 4] [--no-uvloop]

The relay (``RelayEngine``, recording on) runs in its own process so its CPU can be
measured alone (user + system time), and so can its recording encoder process
("enc CPU"); their sum is what the calls cost. Both are pinned to one CPU (the
goal is calls per core) and the generator to another, unless ``--no-pin``; "gen
CPU" is the generator's own use. This process is the RTP generator: N calls, each
two "phones" on their own UDP sockets, sending 20 ms PCMU packets (160-byte
payload) at 50 packets/s per direction, the calls' send times spread over the
20 ms so they are not in lock step. Every packet carries its send time; the
receiving phone measures transit time.

Jitter is packet delay variation (ITU-T Y.1540 PDV): each packet's transit time
minus the smallest transit time of its stream; we report its 99th percentile. Each
step first runs the same N phones talking to each other directly (no relay): that
baseline is the generator's own delay variation on this machine at that load, and
"added" is the relay's p99 minus the baseline's. "waited" is the share of time the
relay was ready to run but had no CPU (/proc/self/schedstat): delay the scheduler
added, not the relay. N rises until a packet is lost or the added p99 passes 5 ms;
the highest passing N is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import time
from array import array
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

FRAME = 160
INTERVAL = 0.02
PORTS = (24000, 27999)  # below Linux's ephemeral range, where the phones' ports come from
_HDR = struct.Struct("!BBHIId")  # RTP fixed header + the send time in the payload's head


# The relay process ------------------------------------------------------------------

def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def relay_main(conn: Connection, use_uvloop: bool, recordings: str, record: bool,
               profile: bool, cpu: int | None) -> None:
    _pin(cpu)  # the encoder processes it starts inherit this: all on one core
    if use_uvloop:
        import uvloop
        uvloop.install()
    if not profile:
        asyncio.run(_relay(conn, Path(recordings), record))
        return
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    try:
        asyncio.run(_relay(conn, Path(recordings), record))
    finally:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(20)


async def _relay(conn: Connection, recordings: Path, record: bool) -> None:
    from tongdai.media import RelayEngine, RelaySession

    engine = RelayEngine("127.0.0.1", PORTS, recordings)
    await engine.start()
    loop = asyncio.get_running_loop()
    sessions: list[RelaySession] = []
    done = asyncio.Event()
    busy = False

    async def handle(cmd: str, arg: Any) -> Any:
        if cmd == "create":
            out = []
            for i, (a_addr, b_addr) in enumerate(arg):
                s = await engine.create_session(call_id=f"bench-{i}", app_id="bench",
                                                record=record)
                s.set_remote("a", *a_addr)
                s.set_remote("b", *b_addr)
                s.start_recording()
                sessions.append(s)
                out.append((s.local_address("a"), s.local_address("b")))
            return out
        if cmd == "cpu":
            t = os.times()
            waited = _run_delay()
            return (t.user + t.system, sum(_proc_cpu(pid) for pid in engine.recorders.pids),
                    waited)
        if cmd == "close":
            start = time.monotonic()
            names = await asyncio.gather(*(s.close() for s in sessions))
            sessions.clear()
            return time.monotonic() - start, sum(1 for n in names if n)
        if cmd == "stop":
            await engine.stop()
            done.set()
            return None
        raise ValueError(cmd)

    def readable() -> None:
        nonlocal busy
        if busy or not conn.poll():
            return
        busy = True
        cmd, arg = conn.recv()

        async def run() -> None:
            nonlocal busy
            conn.send(await handle(cmd, arg))
            busy = False
            readable()

        tasks.add(loop.create_task(run()))

    tasks: set[asyncio.Task[None]] = set()
    loop.add_reader(conn.fileno(), readable)
    await done.wait()
    loop.remove_reader(conn.fileno())


def _run_delay() -> float:
    """Seconds this process was runnable but waiting for a CPU (schedstat field 2)."""
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (fields 14 and 15 of its stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The generator ----------------------------------------------------------------------

def _tone() -> bytes:
    def ulaw(s: int) -> int:
        mask = 0xFF if s >= 0 else 0x7F
        s = min(abs(s), 32635) + 0x84
        seg = next(i for i, e in enumerate((0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF,
                                            0x3FFF, 0x7FFF)) if s <= e)
        return ((seg << 4) | ((s >> (seg + 3)) & 0x0F)) ^ mask
    return bytes(ulaw(round(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                 for i in range(FRAME))


PAYLOAD_TAIL = _tone()[8:]


class Run:
    """N calls for ``seconds``: 2N phones, each sending to ``dest[i]``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.socks = []
        for _ in range(2 * n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append(s)
        self.addrs = [s.getsockname() for s in self.socks]

    def close(self) -> None:
        for s in self.socks:
            s.close()

    def run(self, dests: list[tuple[str, int]], seconds: float) -> dict[str, float]:
        n2 = len(self.socks)
        by_fd = {s.fileno(): s for s in self.socks}
        ep = select.epoll()
        for s in self.socks:
            ep.register(s.fileno(), select.EPOLLIN)
        sent = [0] * n2
        received = [0] * n2  # by sending stream (SSRC = stream index)
        min_transit = [math.inf] * n2
        transits = array("d")
        streams = array("I")
        # Stream i sends at offset i / n2 of each 20 ms period.
        offsets = [INTERVAL * i / n2 for i in range(n2)]
        packets = int(seconds / INTERVAL)
        start = time.monotonic() + 0.05
        mono = time.monotonic
        tick, i = 0, 0
        while tick < packets:
            now = mono()
            due = start + tick * INTERVAL + offsets[i]
            while due <= now:
                sock = self.socks[i]
                seq = tick
                sock.sendto(_HDR.pack(0x80, 0, seq & 0xFFFF, seq * FRAME, i, mono())
                            + PAYLOAD_TAIL, dests[i])
                sent[i] += 1
                i += 1
                if i == n2:
                    i, tick = 0, tick + 1
                    if tick >= packets:
                        break
                due = start + tick * INTERVAL + offsets[i]
            self._drain(ep, by_fd, max(0.0, due - mono()), received, min_transit,
                        transits, streams)
        end = mono() + 0.5  # stragglers
        while mono() < end and sum(received) < sum(sent):
            self._drain(ep, by_fd, 0.05, received, min_transit, transits, streams)
        ep.close()
        pdv = sorted(t - min_transit[s] for t, s in zip(transits, streams, strict=True))
        p99 = pdv[int(len(pdv) * 0.99)] if pdv else math.nan
        return {"sent": sum(sent), "lost": sum(sent) - sum(received), "p99_ms": p99 * 1000,
                "max_ms": (pdv[-1] if pdv else math.nan) * 1000}

    @staticmethod
    def _drain(ep: select.epoll, by_fd: dict[int, socket.socket], timeout: float,
               received: list[int], min_transit: list[float], transits: array[float],
               streams: array[int]) -> None:
        mono = time.monotonic
        for fd, _ in ep.poll(timeout):
            sock = by_fd[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                now = mono()
                _, _, _, _, stream, sent_at = _HDR.unpack_from(data)
                transit = now - sent_at
                received[stream] += 1
                if transit < min_transit[stream]:
                    min_transit[stream] = transit
                transits.append(transit)
                streams.append(stream)


def forward_main(conn: Connection, cpu: int | None) -> None:
    """The "hop" anchor: the plainest possible forwarding process, nothing else.

    Blocking sockets and one epoll, no asyncio, no latching, no recording. Whatever
    delay variation it shows is what any process hop costs on this machine (waking
    a sleeping process, sharing the cores), which no relay can beat.
    """
    _pin(cpu)
    while True:
        pairs = conn.recv()
        if pairs is None:
            return
        socks, route = [], {}
        for a_phone, b_phone in pairs:
            a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
            for sock in (a, b):
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
            route[a.fileno()] = (a, b, b_phone)
            route[b.fileno()] = (b, a, a_phone)
            socks += [a, b]
        conn.send([(route[socks[i].fileno()][0].getsockname(),
                    route[socks[i + 1].fileno()][0].getsockname())
                   for i in range(0, len(socks), 2)])
        ep = select.epoll()
        for sock in socks:
            ep.register(sock.fileno(), select.EPOLLIN)
        ep.register(conn.fileno(), select.EPOLLIN)
        cpu0 = sum(os.times()[:2])
        running = True
        while running:
            for fd, _ in ep.poll():
                if fd == conn.fileno():
                    conn.recv()
                    running = False
                    continue
                inbound, outbound, dest = route[fd]
                while True:
                    try:
                        data = inbound.recv(2048)
                    except BlockingIOError:
                        break
                    outbound.sendto(data, dest)
        cpu = sum(os.times()[:2]) - cpu0
        ep.close()
        for sock in socks:
            sock.close()
        conn.send(cpu)


def call(conn: Connection, cmd: str, arg: Any = None) -> Any:
    conn.send((cmd, arg))
    return conn.recv()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="50,100,200,300,400")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="relay only, for comparison")
    ap.add_argument("--profile", action="store_true", help="cProfile the relay (slows it)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin relay + encoder to CPU 0 and the generator to CPU 1")
    args = ap.parse_args()
    steps = [int(x) for x in args.steps.split(",")]
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    relay_cpu, gen_cpu_id = (sorted(os.sched_getaffinity(0))[:2] if pin else (None, None))

    recordings = tempfile.mkdtemp(prefix="tongdai-bench-")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    relay = ctx.Process(target=relay_main, args=(child, not args.no_uvloop, recordings,
                                                      not args.no_record, args.profile,
                                                      relay_cpu))
    hop_parent, hop_child = ctx.Pipe()
    hop = ctx.Process(target=forward_main, args=(hop_child, relay_cpu))
    relay.start()
    hop.start()
    _pin(gen_cpu_id)
    load = os.getloadavg()
    print(f"media_bench: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; relay loop: {'asyncio' if args.no_uvloop else 'uvloop'}; "
          f"{args.seconds:g} s per run; recording {'off' if args.no_record else 'on'}; "
          + (f"relay + encoder pinned to CPU {relay_cpu}, generator to CPU {gen_cpu_id}"
             if pin else "not pinned"))
    print("PDV p99 (ms): base = phones direct, hop = through a do-nothing forwarder "
          "process, relay = through tongdai; added = relay - base")
    head = (f"{'calls':>5} {'pkt/s':>6} {'hop CPU':>7} {'relay CPU':>9} {'enc CPU':>7} "
            f"{'gen CPU':>7} "
            f"{'lost':>4} {'base':>5} {'hop':>5} {'relay':>5} {'added':>5} {'max':>5} "
            f"{'close':>6} {'waited':>6}")
    print(head)
    print("-" * len(head))
    best = 0
    try:
        for n in steps:
            run = Run(n)
            try:
                # Phones 2k (A) and 2k+1 (B) are call k's two ends.
                pairs = [(run.addrs[2 * k], run.addrs[2 * k + 1]) for k in range(n)]
                base = run.run([run.addrs[j ^ 1] for j in range(2 * n)], args.seconds)
                hop_parent.send(pairs)
                hop_legs = hop_parent.recv()
                t0 = time.monotonic()
                hop_res = run.run([addr for legs in hop_legs for addr in legs], args.seconds)
                hop_parent.send("stop")
                hop_cpu = hop_parent.recv() / (time.monotonic() - t0)
                legs = call(parent, "create", pairs)
                (relay0, enc0, wait0), t0 = call(parent, "cpu"), time.monotonic()
                gen0 = sum(os.times()[:2])
                res = run.run([addr for pair in legs for addr in pair], args.seconds)
                relay1, enc1, wait1 = call(parent, "cpu")
                elapsed = time.monotonic() - t0
                cpu, enc_cpu = (relay1 - relay0) / elapsed, (enc1 - enc0) / elapsed
                gen_cpu = (sum(os.times()[:2]) - gen0) / elapsed
                waited = (wait1 - wait0) / elapsed
                close_s, files = call(parent, "close")
            finally:
                run.close()
            added = res["p99_ms"] - base["p99_ms"]
            expected = 0 if args.no_record else n
            ok = res["lost"] == 0 and base["lost"] == 0 and added <= 5.0 and files == expected
            print(f"{n:>5} {res['sent'] / args.seconds:>6.0f} {hop_cpu * 100:>6.0f}% "
                  f"{cpu * 100:>8.0f}% "
                  f"{enc_cpu * 100:>6.0f}% {gen_cpu * 100:>6.0f}% {res['lost']:>4} "
                  f"{base['p99_ms']:>5.2f} {hop_res['p99_ms']:>5.2f} {res['p99_ms']:>5.2f} "
                  f"{added:>5.2f} {res['max_ms']:>5.1f} {close_s:>5.2f}s {waited * 100:>5.1f}%"
                  + ("" if ok else "  <- limit"), flush=True)
            if files != expected:
                print(f"      {files} recordings were written, expected {expected}")
            if not ok:
                break
            best = n
            for p in Path(recordings).glob("*/*.mp3"):
                p.unlink()
    finally:
        call(parent, "stop")
        hop_parent.send(None)
        relay.join(10)
        hop.join(10)
        shutil.rmtree(recordings, ignore_errors=True)
    print(f"highest passing: {best} concurrent recorded calls")
    sys.exit(0)


if __name__ == "__main__":
    main()
