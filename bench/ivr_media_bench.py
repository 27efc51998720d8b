"""Benchmark: tongdai as a media endpoint for a call centre, on one core.

    python bench/ivr_media_bench.py [--hold 200] [--menus 50] [--seconds 25] [--digits 1000]

The tongdai side (a ``RelayEngine`` and its ``LegMedia``, in its own single-threaded
process, so at most one core; ``--pin`` pins it to one CPU) serves ``--hold``
callers waiting with music on hold and ``--menus`` callers in menus: each menu leg
plays the built-in ``welcome`` prompt, interruptible, then collects digits, over and
over. This process is the callers: one UDP socket per leg, receiving every RTP packet
and timestamping it, and pressing ``--digits`` keys in all as RFC 4733 events (start,
updates, the end packet three times, 20 ms apart, like a phone) spread over the menu
legs. Meanwhile the tongdai side feeds the same number of digits as SIP INFO bodies
(half ``application/dtmf-relay``, half ``application/dtmf``) through ``parse_info``
and ``LegMedia.dtmf`` to the callers on hold, each of which runs ``collect``.

Figures:
- RTP lost: sequence numbers missing at the receiver (should be 0).
- pacing error: for each packet, arrival time minus the time its RTP timestamp says
  it is due, less the stream's smallest such difference (packet delay variation,
  ITU-T Y.1540); p50/p99/max over all packets (goal p99 < 5 ms). It includes this
  receiver's own delays: the anchor is this process's timer lateness on the same
  machine in the same run (how late its own epoll wakes up for the key presses it
  sends). The sender's view: how late the shared ticker fired, and how late after
  its due time the last packet of each firing left (an upper bound for every packet;
  uvloop's clock counts whole milliseconds).
- DTMF detection: digits detected in order / pressed, RFC 4733 and INFO (goal 100 %).
- CPU: the tongdai process's user + system seconds per wall second (100 % = a core),
  and the share of the time it was ready to run but another process had its CPU
  (/proc/self/schedstat): on a shared machine that, not tongdai, is most lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import select
import socket
import struct
import sys
import tempfile
import time
from array import array
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PORTS = (22000, 23999)
DTMF_PT = 101
KEYS = "0123456789*#"
_HDR = struct.Struct("!BBHII")


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _realtime() -> None:
    """SCHED_FIFO: woken at once, as on a machine of its own (needs root). Both sides
    sleep most of the time, so this takes little from other processes."""
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _run_delay() -> float:
    """Seconds this process was runnable but waiting for a CPU (schedstat field 2)."""
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


# The tongdai side --------------------------------------------------------------------

def server_main(conn: Connection, cpu: int | None, use_uvloop: bool,
                realtime: bool) -> None:
    _pin(cpu)
    if realtime:
        _realtime()
    if use_uvloop:
        import uvloop
        uvloop.install()
    asyncio.run(_server(conn))


async def _server(conn: Connection) -> None:
    from tongdai.media.dtmf import parse_info
    from tongdai.media.endpoint import RelayLegMedia, Ticker
    from tongdai.media.prompts import builtin_prompt
    from tongdai.media.relay import RelayEngine

    loop = asyncio.get_running_loop()
    hold_addrs, menu_addrs, info_digits = conn.recv()
    with tempfile.TemporaryDirectory() as tmp:
        engine = RelayEngine("127.0.0.1", PORTS, Path(tmp))
        ticker = engine.ticker = Ticker(record_lateness=True)
        await engine.start()
        music, welcome = builtin_prompt("hold"), builtin_prompt("welcome")
        legs: list[RelayLegMedia] = []
        ours: list[tuple[str, int]] = []
        for i, addr in enumerate(hold_addrs + menu_addrs):
            s = await engine.create_session(call_id=f"ivr-{i}", app_id="bench", record=False)
            s.set_remote("a", *addr)
            media = s.leg_media("a", "PCMU")
            media.set_dtmf_pt(DTMF_PT)
            legs.append(media)
            ours.append(s.local_address("a"))
        hold, menus = legs[: len(hold_addrs)], legs[len(hold_addrs):]
        conn.send(ours)
        conn.recv()  # go
        running = True
        menu_got: list[list[str]] = [[] for _ in menus]
        hold_got: list[list[str]] = [[] for _ in hold]

        async def menu(i: int, m: RelayLegMedia) -> None:
            while running:
                d = await m.play(welcome)
                if d is not None:
                    menu_got[i].append(d)
                menu_got[i].extend(await m.collect(max_digits=8, timeout=0.3))

        async def waiting(i: int, m: RelayLegMedia) -> None:
            while running:
                hold_got[i].extend(await m.collect(max_digits=8, timeout=1.0))

        async def info() -> None:
            # One INFO every 20 ms, to the callers on hold in turn.
            start = loop.time() + 0.5
            for k, digit in enumerate(info_digits):
                await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
                if k % 2:
                    ct, body = "application/dtmf", digit.encode()
                else:
                    ct = "application/dtmf-relay"
                    body = f"Signal={digit}\r\nDuration=160\r\n".encode()
                got = parse_info(ct, body)
                if got is not None:
                    hold[k % len(hold)].dtmf(got)

        for m in hold:
            m.start_music(music)
        t0, wall0, waited0 = os.times(), time.monotonic(), _run_delay()
        sent0 = sum(m.sent for m in legs)
        tasks = [loop.create_task(menu(i, m)) for i, m in enumerate(menus)]
        tasks += [loop.create_task(waiting(i, m)) for i, m in enumerate(hold)]
        informer = loop.create_task(info())
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        conn.recv()
        t1, wall1, waited1 = os.times(), time.monotonic(), _run_delay()
        late_info = not informer.done()
        await informer  # a starved loop may be behind with its INFOs: let them all go
        await asyncio.sleep(0.1)
        running = False
        for m in legs:
            m.stop()
        await asyncio.gather(*tasks)
        # Digits that arrived but were not collected yet (a starved loop is behind).
        for got, m in [*zip(menu_got, menus, strict=True), *zip(hold_got, hold, strict=True)]:
            got.extend(await m.collect(max_digits=64, timeout=0.001))
        late = list(ticker.lateness or ())
        burst = list(ticker.burst_lateness or ())
        conn.send({
            "cpu": (t1.user + t1.system - t0.user - t0.system) / (wall1 - wall0),
            "cpu_seconds": t1.user + t1.system - t0.user - t0.system,
            "sent_in_run": sum(m.sent for m in legs) - sent0,
            "waited": (waited1 - waited0) / (wall1 - wall0), "late_info": late_info,
            "tick_p99": _pct(late, 0.99), "tick_max": max(late, default=0.0),
            "burst_p99": _pct(burst, 0.99), "burst_max": max(burst, default=0.0),
            "ticks": len(late), "skipped": sum(m.skipped for m in legs),
            "sent": sum(m.sent for m in legs), "menu_got": menu_got, "hold_got": hold_got,
        })
        await engine.stop()


# The callers -----------------------------------------------------------------------

def _event_packets(digit: str, seq: int, ts: int, ssrc: int) -> list[tuple[float, bytes]]:
    """(offset in s, packet): start, 4 updates, the end three times, 20 ms apart."""
    event = KEYS.index(digit)  # RFC 4733 §3.2: 0-9, then 10 '*' and 11 '#'
    out = []
    for i in range(8):
        end = i >= 5
        duration = 160 * (min(i, 5) + 1)
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        header = _HDR.pack(0x80, (0x80 if i == 0 else 0) | DTMF_PT, (seq + i) & 0xFFFF,
                           ts & 0xFFFFFFFF, ssrc)
        out.append((0.02 * i, header + payload))
    return out


def run(args: argparse.Namespace) -> None:
    n = args.hold + args.menus
    rng = random.Random(11)
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 and args.pin else None
    _pin(cpus[1] if server_cpu is not None else None)
    info_digits = [rng.choice(KEYS) for _ in range(args.digits)]
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=server_main,
                                           args=(child, server_cpu, not args.no_uvloop,
                                                 args.realtime))
    proc.start()
    if args.realtime:
        _realtime()
    addrs = [s.getsockname() for s in socks]
    parent.send((addrs[: args.hold], addrs[args.hold:], info_digits))
    dests = parent.recv()

    # The key presses: --digits spread over the menu legs and the run's middle part.
    per_leg = -(-args.digits // max(args.menus, 1))
    span = max(args.seconds - 3.0, 1.0)
    schedule: list[tuple[float, int, bytes]] = []
    pressed: list[list[str]] = [[] for _ in range(args.menus)]
    total = 0
    for j in range(args.menus):
        seq, ts, ssrc = rng.randrange(65536), rng.randrange(1 << 32), 0x1000 + j
        for k in range(per_leg):
            if total >= args.digits:
                break
            total += 1
            digit = rng.choice(KEYS)
            pressed[j].append(digit)
            at = 1.0 + span * (k + j / args.menus) / per_leg
            for off, pkt in _event_packets(digit, seq, ts, ssrc):
                schedule.append((at + off, args.hold + j, pkt))
            seq += 8
            ts += 8000
    schedule.sort(key=lambda x: x[0])

    ep = select.epoll()
    fds = {s.fileno(): i for i, s in enumerate(socks)}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
    streams, seqs, stamps, arrivals = array("H"), array("H"), array("I"), array("d")
    lateness: list[float] = []
    mono = time.monotonic
    t0 = os.times()
    parent.send("go")
    start = mono()
    end = start + max(args.seconds, schedule[-1][0] + 0.5 if schedule else 0.0)
    nxt = 0
    while True:
        now = mono()
        if now >= end and nxt >= len(schedule):
            break
        while nxt < len(schedule) and start + schedule[nxt][0] <= now:
            due, leg, pkt = schedule[nxt]
            lateness.append(now - start - due)
            socks[leg].sendto(pkt, dests[leg])
            nxt += 1
        wake = start + schedule[nxt][0] if nxt < len(schedule) else end
        for fd, _ in ep.poll(max(0.0, min(wake, end) - mono())):
            sock, i = socks[fds[fd]], fds[fd]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                t = mono()
                _, _, seq, ts, _ = _HDR.unpack_from(data)
                streams.append(i)
                seqs.append(seq)
                stamps.append(ts)
                arrivals.append(t)
    t1 = os.times()
    parent.send("stop")
    res: dict[str, Any] = parent.recv()
    proc.join(30)
    for s in socks:
        s.close()
    report(args, res, streams, seqs, stamps, arrivals, lateness, pressed, info_digits,
           (t1.user + t1.system - t0.user - t0.system) / args.seconds)


def report(args: argparse.Namespace, res: dict[str, Any], streams: array[int],
           seqs: array[int], stamps: array[int], arrivals: array[float],
           lateness: list[float], pressed: list[list[str]], info_digits: list[str],
           gen_cpu: float) -> None:
    n = args.hold + args.menus
    by: list[list[tuple[float, int, int]]] = [[] for _ in range(n)]
    for i, seq, ts, t in zip(streams, seqs, stamps, arrivals, strict=True):
        by[i].append((t, seq, ts))
    lost = 0
    errors: list[float] = []
    for packets in by:
        if not packets:
            continue
        # Unwrap sequence numbers and timestamps (RFC 3550 §5.1) in arrival order.
        ext_seq, ext_ts = [], []
        last_s, last_t, base_s, base_t = packets[0][1], packets[0][2], 0, 0
        for _, seq, ts in packets:
            if seq < last_s and last_s - seq > 32768:
                base_s += 65536
            if ts < last_t and last_t - ts > 1 << 31:
                base_t += 1 << 32
            last_s, last_t = seq, ts
            ext_seq.append(base_s + seq)
            ext_ts.append(base_t + ts)
        lost += (max(ext_seq) - min(ext_seq) + 1) - len(set(ext_seq))
        diffs = [t - ts / 8000 for (t, _, _), ts in zip(packets, ext_ts, strict=True)]
        floor = min(diffs)
        errors.extend(d - floor for d in diffs)

    def matched(got: list[str], want: list[str]) -> int:
        return sum(1 for a, b in zip(got, want, strict=False) if a == b)

    rfc_ok = sum(matched(g, w) for g, w in zip(res["menu_got"], pressed, strict=True))
    rfc_extra = sum(max(0, len(g) - len(w)) for g, w in zip(res["menu_got"], pressed,
                                                            strict=True))
    hold = args.hold
    info_want: list[list[str]] = [[] for _ in range(hold)]
    for k, d in enumerate(info_digits):
        info_want[k % hold].append(d)
    info_ok = sum(matched(g, w) for g, w in zip(res["hold_got"], info_want, strict=True))
    pressed_total = sum(len(w) for w in pressed)
    where = "pinned to one CPU" if args.pin else "one process, one thread: at most a core"
    if args.realtime:
        where += ", SCHED_FIFO"
    print(f"legs: {hold} on hold (music) + {args.menus} in menus, {args.seconds:.0f} s; "
          f"tongdai {where}")
    print(f"RTP: {len(arrivals)} packets received, {res['sent']} sent, lost {lost}")
    print(f"pacing error (receiver): p50 {_pct(errors, 0.5) * 1e3:.2f} ms, "
          f"p99 {_pct(errors, 0.99) * 1e3:.2f} ms, max {max(errors, default=0) * 1e3:.2f} ms"
          f"   (goal p99 < 5 ms)")
    print(f"pacing error (sender): the last packet of each firing was sent p99 "
          f"{res['burst_p99'] * 1e3:.2f} ms, max {res['burst_max'] * 1e3:.2f} ms after "
          "it was due")
    print(f"anchor: this receiver's own timer lateness p99 {_pct(lateness, 0.99) * 1e3:.2f} ms,"
          f" max {max(lateness, default=0) * 1e3:.2f} ms; tongdai's 5 ms tick lateness "
          f"p99 {res['tick_p99'] * 1e3:.2f} ms, max {res['tick_max'] * 1e3:.2f} ms "
          f"({res['ticks']} ticks, {res['skipped']} frames skipped)")
    print(f"DTMF RFC 4733: {rfc_ok}/{pressed_total} detected in order "
          f"({100 * rfc_ok / max(pressed_total, 1):.1f} %), {rfc_extra} extra")
    print(f"DTMF SIP INFO: {info_ok}/{len(info_digits)} detected in order "
          f"({100 * info_ok / max(len(info_digits), 1):.1f} %)"
          + (" (the INFOs ran late: the loop was starved)" if res["late_info"] else ""))
    per_packet = res["cpu_seconds"] / max(res["sent_in_run"], 1)
    print(f"cost: {per_packet * 1e6:.1f} CPU-µs per packet sent (all the work included), so "
          f"{n} legs at 50 packets/s need {100 * per_packet * 50 * n:.0f} % of a core")
    print(f"CPU: tongdai {100 * res['cpu']:.0f} % of a core, callers {100 * gen_cpu:.0f} %; "
          f"tongdai waited for a CPU {100 * res['waited']:.0f} % of the time (other "
          f"processes'); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hold", type=int, default=200)
    p.add_argument("--menus", type=int, default=50)
    p.add_argument("--seconds", type=float, default=25.0)
    p.add_argument("--digits", type=int, default=1000)
    p.add_argument("--pin", action="store_true",
                   help="pin tongdai to the first CPU and the callers to the second "
                        "(on a busy shared machine this adds the others' load to ours)")
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--realtime", action="store_true",
                   help="run both sides SCHED_FIFO (root): pacing as on a machine of "
                        "tongdai's own, not the other processes' scheduling delays")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    run(args)


if __name__ == "__main__":
    main()
