"""Benchmark of the app-wide event stream: events per second published into one app's
stream and delivered to every one of ``--subscribers`` websocket clients.

    python bench/app_stream_bench.py [--rate 10000] [--seconds 5] [--subscribers 100]
                                     [--redis redis://127.0.0.1:6379/0]

tongdai's side runs in this process as in the server: events published through the
real ``AppLogBus`` into the real log (SQLite in a temporary data dir, or Redis Streams
with ``--redis``), fanned out by the real hub to the real websocket endpoint served by
uvicorn on loopback, on uvloop when it is installed (as ``tongdai serve`` runs;
``--loop asyncio`` for the standard loop). The subscribers run in another process (one
event loop, the ``websockets`` client); each checks the number of every event it
receives (they follow its hello's, without a hole or a repeat), and a tenth of them
decode every event as JSON (orjson's decoder when installed, else the standard one).

Latency = arrival at a subscriber minus the event's ``ts`` (stamped at publication).
Delivered/s = messages received by all subscribers / (last arrival - first publication).
CPU (user + system) of this process, tongdai's side, is reported per 1,000 events
published (each fanned out to every subscriber): on a shared machine it moves far less
than the rates. So is the subscribers' process's: both share the machine's cores. The
anchor, timed in the same run just before: encoding 100,000 such events as JSON, what
this machine's Python does in a unit of work right now.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

try:  # the subscribers' decoder: orjson's when installed (not a tongdai dependency)
    from orjson import loads as _loads
except ImportError:
    from json import loads as _loads  # type: ignore[assignment]


async def clients_main(url: str, app_id: str, hash_: str, n: int, expected: int) -> None:
    """The subscribers' process: prints "ready" once all are connected, then one JSON
    line when each has ``expected`` events (or after a quiet period).

    Every subscriber checks that the numbers of the events it receives follow its
    hello's, without a hole or a repeat (``bad`` counts the messages that do not). A
    tenth of them decode every event as JSON (and time it): decoding all 100 copies of
    each event would cost this process a core per million events a second, and measure
    the JSON decoder rather than tongdai."""
    from websockets.asyncio.client import connect

    lat: list[float] = []
    counts = [0] * n
    firsts = [0] * n  # the number each one expects first
    # '"seq":N,' for every N a subscriber may expect: each line of a message must hold
    # the next one, whatever the subscriber (filled once all are connected).
    numbers: list[str] = []
    bad = [0]
    last_at = [0.0]
    headers = {"x-auth-app-id": app_id, "x-auth-app-hash": hash_}

    async def one(i: int, ready: asyncio.Event, go: asyncio.Event) -> None:
        async with connect(url, additional_headers=headers, compression=None,
                           max_queue=None, open_timeout=30) as ws:
            nxt = firsts[i] = json.loads(await ws.recv())["seq"] + 1  # hello
            ready.set()
            await go.wait()
            decode = i % 10 == 0
            async for raw in ws:
                now = time.time()
                text = raw if isinstance(raw, str) else raw.decode()
                if text.startswith(('{"type":"ping"', '{"type": "ping"')):
                    continue
                if decode:
                    # One JSON line per event: as one array, the lines decode in one call.
                    events = _loads("[" + text.replace("\n", ",") + "]")
                    seqs = [e["seq"] for e in events]
                    lat.extend([now - e["ts"] for e in events])
                    if seqs != list(range(nxt, nxt + len(seqs))):
                        bad[0] += 1
                        continue
                    k = len(seqs)
                else:
                    lines = text.split("\n")
                    k = len(lines)
                    want = numbers[nxt:nxt + k]
                    if len(want) != k or not all(map(str.__contains__, lines, want)):
                        bad[0] += 1
                        continue
                nxt += k
                counts[i] += k
                last_at[0] = now
                if counts[i] >= expected:
                    return

    async def watchdog() -> None:
        # Ends the subscribers after a quiet period (events lost or never sent).
        seen = -1
        while seen != (seen := sum(counts)):  # noqa: ASYNC110 - a poll of progress
            await asyncio.sleep(30)
        for t in tasks:
            t.cancel()

    readies = [asyncio.Event() for _ in range(n)]
    go = asyncio.Event()
    tasks = [asyncio.create_task(one(i, readies[i], go)) for i in range(n)]
    for r in readies:
        await r.wait()
    numbers.extend(f'"seq":{s},' for s in range(max(firsts) + expected))
    cpu0 = _cpu()
    go.set()
    print("ready", flush=True)
    dog = asyncio.create_task(watchdog())
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = _cpu() - cpu0
    dog.cancel()
    lat.sort()
    print(json.dumps({
        "received": sum(counts), "min_per_subscriber": min(counts), "last": last_at[0],
        "bad": bad[0], "decoder": _loads.__module__, "cpu": cpu,
        "p50": lat[len(lat) // 2] if lat else None,
        "p99": lat[int(len(lat) * 0.99) - 1] if lat else None, "max": lat[-1] if lat else None,
    }), flush=True)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def anchor() -> float:
    """Milliseconds to JSON-encode 100,000 events like the benchmark's."""
    t = time.perf_counter()
    for n in range(100_000):
        json.dumps({"type": "call.ringing", "seq": n, "ts": 1796019799.35,
                    "devices": ["alice"], "data": {"call_id": f"c{n}"}})
    return (time.perf_counter() - t) * 1000


async def main(args: argparse.Namespace) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from tongdai.api.events_ws import EVENTS_WS_PATH, app_event_routes
    from tongdai.appstream import AppLogBus, SqlAppLog
    from tongdai.appstream.redis_log import RedisAppLog
    from tongdai.appstream.service import AppStream
    from tongdai.bus import Event, InProcessBus
    from tongdai.server import _tune_gc
    from tongdai.store.sql import open_store
    from tongdai.throttle import AuthThrottle

    tmp = tempfile.mkdtemp(prefix="tongdai-appstream-bench-")
    store = await open_store(f"sqlite+aiosqlite:///{tmp}/tongdai.sqlite3", key=b"k" * 32)
    app = await store.create_app("bench")
    secret = app.app_secret.reveal()
    log = (RedisAppLog.from_url(f"{args.redis}?prefix=bench{int(time.time())}", retain=10_000)
           if args.redis else SqlAppLog(store=store, retain=10_000))
    stream = AppStream(log=log, queue_limit=100_000)
    await log.start()
    bus = AppLogBus(InProcessBus(), log)
    routes = app_event_routes(
        config=store, hub=stream.hub, clock=time.time, ping_interval=60.0,
        throttle=AuthThrottle(scope="http", address_limit=1000, window=60, block=1))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=0,
                                           log_level="warning", ws_max_queue=1024))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    total = args.rate * args.seconds
    clients = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, __file__, "--clients",
         f"ws://127.0.0.1:{port}{EVENTS_WS_PATH}?batch={args.batch}",
         app.app_id, hashlib.sha256((app.app_id + secret).encode()).hexdigest(),
         str(args.subscribers), str(total), args.loop],
        stdout=subprocess.PIPE, text=True)
    assert clients.stdout is not None
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, clients.stdout.readline)
    assert line.strip() == "ready", line

    anchor_ms = anchor()
    _tune_gc()  # as ``tongdai serve`` does once started
    tick = 0.01
    per_tick = max(1, round(args.rate * tick))
    cpu0 = _cpu()
    started = time.time()
    sent = 0
    while sent < total:
        due = started + (sent // per_tick) * tick
        if (wait := due - time.time()) > 0:
            await asyncio.sleep(wait)
        for _ in range(min(per_tick, total - sent)):
            await bus.publish(Event(type="call.ringing", app_id=app.app_id,
                                    sip_users=("alice",), ts=time.time(),
                                    data={"call_id": f"c{sent}"}))
            sent += 1
    published = time.time() - started
    result = json.loads(await loop.run_in_executor(None, clients.stdout.readline))
    cpu = _cpu() - cpu0
    clients.wait(60)
    server.should_exit = True
    await serving
    await stream.stop()
    await store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    span = result["last"] - started
    print(json.dumps({
        "log": "redis" if args.redis else "sqlite", "batch": args.batch,
        "loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],
        "subscribers": args.subscribers,
        "events": total, "publish_rate": round(total / published),
        "delivered": result["received"], "expected": total * args.subscribers,
        "out_of_order_messages": result["bad"], "subscribers_decoder": result["decoder"],
        "events_per_s_to_all": round(result["min_per_subscriber"] / span) if span > 0 else None,
        "messages_per_s": round(result["received"] / span) if span > 0 else None,
        "p50_ms": result["p50"] and round(result["p50"] * 1000, 1),
        "p99_ms": result["p99"] and round(result["p99"] * 1000, 1),
        "max_ms": result["max"] and round(result["max"] * 1000, 1),
        "tongdai_cpu_s_per_1000_events": round(cpu / total * 1000, 3),
        "subscribers_cpu_s_per_1000_events": round(result["cpu"] / total * 1000, 3),
        "anchor_json_100k_ms": round(anchor_ms),
        "load_1min": round(os.getloadavg()[0], 2),
    }, indent=1))


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's when installed (``auto``), as ``tongdai serve`` uses it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run if loop == "auto" else asyncio.run


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--clients":
        url, app_id, hash_, n, expected, loop = sys.argv[2:8]
        _runner(loop)(clients_main(url, app_id, hash_, int(n), int(expected)))
        sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--redis", default="")
    p.add_argument("--batch", type=int, choices=(0, 1), default=1,
                   help="batch=1: several events per websocket message (default)")
    p.add_argument("--loop", choices=("auto", "asyncio"), default="auto",
                   help="auto: uvloop if installed, in both processes")
    args = p.parse_args()
    _runner(args.loop)(main(args))
