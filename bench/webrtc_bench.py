"""Benchmark: concurrent WebRTC legs (ICE-lite, DTLS-SRTP both ways) bridged to plain RTP
by one relay process on one core, beside plain RTP calls in the same run (the anchor).

    python bench/webrtc_bench.py [--steps 50,100,150,200] [--seconds 4]

The relay (``RelayEngine``, recording off) runs in its own process pinned to one CPU;
this process, pinned to another, is the generator. A WebRTC call is a browser-like
peer (``tests/media/webrtc_peer.py``: a STUN check with USE-CANDIDATE, a DTLS client
handshake, SRTP) on leg a and a plain RTP phone on leg b; a plain call is two plain
phones. Every stream sends 20 ms packets (160-byte payload) at 50 packets/s with its
send time in the payload; the receiver measures transit time to the kernel's arrival
stamp (SO_TIMESTAMPNS), so the generator's own scheduling does not count. Jitter is packet delay
variation (each packet's transit minus its stream's smallest), p99 over both
directions of all calls. For each N the same generator first runs N plain calls
through the relay (the anchor), then N WebRTC calls; "added" is the WebRTC p99 minus
the anchor's, each kind's quietest of ``--rounds`` alternating runs counting (the
machine is shared). "setup" is the time until every WebRTC leg's DTLS-SRTP is up;
"+µs/pkt" the relay's extra CPU per packet (decrypt or encrypt) over a plain one;
"waited" the share of time the relay was ready to run but had no CPU (the machine's
other load, /proc/self/schedstat). A
step passes with no packet lost in any round and added p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from media_bench import _HDR, FRAME, INTERVAL, PAYLOAD_TAIL, _pin, _run_delay, call

PORTS = (28000, 31999)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name


# The relay process --------------------------------------------------------------------

def relay_main(conn: Connection, cpu: int | None) -> None:
    _pin(cpu)
    import uvloop
    uvloop.install()
    asyncio.run(_relay(conn))


async def _relay(conn: Connection) -> None:
    import tempfile

    from tongdai.media import RelayEngine, RelaySession
    from tongdai.media.webrtc.params import IceDtls

    engine = RelayEngine("127.0.0.1", PORTS, Path(tempfile.mkdtemp(prefix="wrtc-bench-")))
    await engine.start()
    engine.identity  # made once, before the clock runs  # noqa: B018
    loop = asyncio.get_running_loop()
    sessions: list[RelaySession] = []
    done = asyncio.Event()

    async def handle(cmd: str, arg: Any) -> Any:
        if cmd == "create":  # [(webrtc, a_addr, b_addr)] -> [(a_local, b_local, params)]
            out = []
            for i, (webrtc, a_addr, b_addr) in enumerate(arg):
                s = await engine.create_session(call_id=f"bench-{i}", app_id="bench",
                                                record=False)
                params = None
                if webrtc:
                    local = s.webrtc_local("a", "passive")
                    params = (local.ufrag, local.pwd, local.fingerprint)
                s.set_remote("a", *a_addr)
                s.set_remote("b", *b_addr)
                sessions.append(s)
                out.append((s.local_address("a"), s.local_address("b"), params))
            return out
        if cmd == "remote":  # [(index, ufrag, pwd, fingerprint)]
            for i, ufrag, pwd, fp in arg:
                sessions[i].webrtc_remote("a", IceDtls(ufrag=ufrag, pwd=pwd, fingerprint=fp,
                                                       setup="active"))
            return None
        if cmd == "connected":
            return sum(1 for s in sessions if s.webrtc_connected("a"))
        if cmd == "cpu":
            t = os.times()
            return t.user + t.system, _run_delay()
        if cmd == "close":
            await asyncio.gather(*(s.close() for s in sessions))
            sessions.clear()
            return None
        if cmd == "stop":
            await engine.stop()
            done.set()
            return None
        raise ValueError(cmd)

    def readable() -> None:
        cmd, arg = conn.recv()

        async def run() -> None:
            conn.send(await handle(cmd, arg))

        tasks.add(loop.create_task(run()))

    tasks: set[asyncio.Task[None]] = set()
    loop.add_reader(conn.fileno(), readable)
    await done.wait()
    loop.remove_reader(conn.fileno())


# The generator ------------------------------------------------------------------------

class _Plain(asyncio.DatagramProtocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats.arrived(time.monotonic(), data)


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.waited = 0.0  # share of the time the relay was runnable but had no CPU
        self.min: dict[int, float] = {}
        self.transits: list[tuple[int, float]] = []

    def arrived(self, now: float, data: bytes) -> None:
        _, _, _, _, stream, sent_at = _HDR.unpack_from(data)
        t = now - sent_at
        self.transits.append((stream, t))
        if t < self.min.get(stream, math.inf):
            self.min[stream] = t

    def result(self) -> dict[str, float]:
        pdv = sorted(t - self.min[s] for s, t in self.transits)
        return {"sent": self.sent, "lost": self.sent - len(self.transits),
                "waited": self.waited,
                "p99_ms": (pdv[int(len(pdv) * 0.99)] if pdv else math.nan) * 1000}


async def run_calls(conn: Connection, n: int, webrtc: bool, seconds: float
                    ) -> tuple[dict[str, float], float, float, float]:
    from tests.media.webrtc_peer import WebRtcPeer

    from tongdai.media.webrtc.identity import DtlsIdentity
    from tongdai.media.webrtc.params import IceDtls

    loop = asyncio.get_running_loop()
    stats = Stats()
    identity = DtlsIdentity()
    a_side: list[Any] = []
    b_side: list[_Plain] = []
    for _ in range(n):
        if webrtc:
            _, peer = await loop.create_datagram_endpoint(
                lambda: WebRtcPeer(identity), local_addr=("127.0.0.1", 0))
            a_side.append(peer)
        else:
            _, pa = await loop.create_datagram_endpoint(lambda: _Plain(stats),
                                                        local_addr=("127.0.0.1", 0))
            a_side.append(pa)
        _, pb = await loop.create_datagram_endpoint(lambda: _Plain(stats),
                                                    local_addr=("127.0.0.1", 0))
        b_side.append(pb)
    addr = [(a.transport.get_extra_info("sockname"), b.transport.get_extra_info("sockname"))
            for a, b in zip(a_side, b_side, strict=True)]
    legs = call(conn, "create", [(webrtc, a, b) for a, b in addr])
    setup = 0.0
    if webrtc:
        call(conn, "remote", [(i, p.ufrag, p.pwd, f"sha-256 {identity.fingerprint}")
                              for i, p in enumerate(a_side)])
        t0 = time.monotonic()
        for peer, (a_local, _, (ufrag, pwd, fp)) in zip(a_side, legs, strict=True):
            peer.start(a_local, IceDtls(ufrag=ufrag, pwd=pwd, fingerprint=fp,
                                        setup="passive"))
        await asyncio.wait_for(asyncio.gather(*(p.connected for p in a_side)), 60)
        for _ in range(1000):  # the relay's side finishes with the peer's last flight
            if call(conn, "connected") == n:
                break
            await asyncio.sleep(0.01)
        setup = time.monotonic() - t0
    # The media runs on the same sockets outside asyncio: a plain epoll loop that
    # reads the kernel's arrival time of each packet (SO_TIMESTAMPNS), so the
    # generator's own scheduling delays do not count as the relay's jitter.
    socks: list[socket.socket] = []
    for side in (a_side, b_side):
        for proto in side:
            fd = proto.transport.get_extra_info("socket").fileno()
            sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_DGRAM)  # a dup
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            socks.append(sock)
            proto.transport.close()
    await asyncio.sleep(0.05)
    # Stream 2k: peer k (leg a) to leg a's port; 2k+1: phone k (leg b) to leg b's port.
    streams = []
    for k in range(n):
        a_local, b_local, _ = legs[k]
        tx = a_side[k].tx if webrtc else None
        rx = a_side[k].rx if webrtc else None
        streams.append((socks[k], a_local, tx, rx))
        streams.append((socks[n + k], b_local, None, None))
    (cpu0, wait0), t0 = call(conn, "cpu"), time.monotonic()
    gen0 = sum(os.times()[:2])
    _media(streams, seconds, stats)
    elapsed = time.monotonic() - t0
    cpu1, wait1 = call(conn, "cpu")
    cpu = (cpu1 - cpu0) / elapsed
    stats.waited = (wait1 - wait0) / elapsed
    gen_cpu = (sum(os.times()[:2]) - gen0) / elapsed
    for sock in socks:
        sock.close()
    call(conn, "close")
    return stats.result(), cpu, setup, gen_cpu


def _media(streams: list[tuple[socket.socket, Any, Any, Any]], seconds: float,
           stats: Stats) -> None:
    """Each stream sends a 20 ms packet at its offset in the period (spread, not in lock
    step), SRTP-protected when it has a ``tx``; arrivals are decrypted with ``rx``."""
    import select

    ep = select.epoll()
    by_fd = {}
    for sock, _, _, rx in streams:
        ep.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = (sock, rx)
    count = len(streams)
    offsets = [INTERVAL * i / count for i in range(count)]
    ticks = int(seconds / INTERVAL)
    wall = time.time
    start = wall() + 0.05
    tick = i = 0
    anc = socket.CMSG_SPACE(16)

    def drain(timeout: float) -> None:
        for fd, _ in ep.poll(timeout):
            sock, rx = by_fd[fd]
            while True:
                try:
                    data, cmsgs, _, _ = sock.recvmsg(2048, anc)
                except BlockingIOError:
                    break
                at = wall()
                for level, kind, value in cmsgs:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("ll", value[:16])
                        at = sec + nsec / 1e9
                if rx is not None:
                    try:
                        data = rx.unprotect(data)
                    except Exception:
                        continue
                stats.arrived(at, data)

    while tick < ticks:
        due = start + tick * INTERVAL + offsets[i]
        while due <= wall():
            sock, dest, tx, _ = streams[i]
            pkt = _HDR.pack(0x80, 0, tick & 0xFFFF, tick * FRAME, i, wall()) + PAYLOAD_TAIL
            sock.sendto(tx.protect(pkt) if tx is not None else pkt, dest)
            stats.sent += 1
            i += 1
            if i == count:
                i, tick = 0, tick + 1
                if tick >= ticks:
                    break
            due = start + tick * INTERVAL + offsets[i]
        drain(max(0.0, due - wall()))
    end = wall() + 0.5  # stragglers
    while wall() < end and len(stats.transits) < stats.sent:
        drain(0.05)
    ep.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="50,100,150,200")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each kind per step")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpu, gen_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    relay = ctx.Process(target=relay_main, args=(child, relay_cpu))
    relay.start()
    _pin(gen_cpu)
    import uvloop
    load = os.getloadavg()
    print(f"webrtc_bench: {os.cpu_count()} CPUs, load average {load[0]:.2f}; relay on CPU "
          f"{relay_cpu}, generator on CPU {gen_cpu}; {args.seconds:g} s per run; "
          "recording off")
    head = (f"{'calls':>5} {'kind':>6} {'pkt/s':>6} {'relay CPU':>9} {'gen CPU':>7} "
            f"{'lost':>5} {'p99 ms':>6} {'added':>6} {'setup':>6} {'+µs/pkt':>7} {'waited':>6}")
    print(head)
    print("-" * len(head))
    best = 0
    try:
        for n in (int(x) for x in args.steps.split(",")):
            # Plain and WebRTC runs alternate; each kind's quietest run counts (the
            # machine is shared: a burst elsewhere should not decide the comparison).
            plains, webrtcs = [], []
            for _ in range(args.rounds):
                plains.append(uvloop.run(run_calls(parent, n, False, args.seconds)))
                webrtcs.append(uvloop.run(run_calls(parent, n, True, args.seconds)))
            plain, plain_cpu, _, g0 = min(plains, key=lambda r: r[0]["p99_ms"])
            res, cpu, setup, g1 = min(webrtcs, key=lambda r: r[0]["p99_ms"])
            lost = sum(r[0]["lost"] for r in webrtcs)
            plain_lost = sum(r[0]["lost"] for r in plains)
            print(f"{n:>5} {'plain':>6} {plain['sent'] / args.seconds:>6.0f} "
                  f"{plain_cpu * 100:>8.0f}% {g0 * 100:>6.0f}% {plain_lost:>5.0f} "
                  f"{plain['p99_ms']:>6.2f} {'':>6} {'':>6} {'':>7} "
                  f"{plain['waited'] * 100:>5.1f}%", flush=True)
            added = res["p99_ms"] - plain["p99_ms"]
            ok = lost == 0 and added < 5.0
            # Relay CPU per WebRTC packet beyond a plain one (µs), over all rounds.
            extra = (sum(r[1] for r in webrtcs) - sum(r[1] for r in plains)) / args.rounds
            per_pkt = extra / (res["sent"] / args.seconds) * 1e6
            print(f"{n:>5} {'webrtc':>6} {res['sent'] / args.seconds:>6.0f} "
                  f"{cpu * 100:>8.0f}% {g1 * 100:>6.0f}% {lost:>5.0f} "
                  f"{res['p99_ms']:>6.2f} {added:>6.2f} {setup:>5.2f}s {per_pkt:>7.1f} "
                  f"{res['waited'] * 100:>5.1f}%"
                  + ("" if ok else "  <- limit"), flush=True)
            if not ok:
                break
            best = n
    finally:
        call(parent, "stop")
        relay.join(10)
    print(f"highest passing: {best} concurrent WebRTC legs bridged to RTP on one core")


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
