"""Benchmark of webhooks: deliveries per second to a local receiver, and the time
from an event's publication to its arrival there.

    python bench/webhook_bench.py [--events 20000] [--rate 1000] [--calls 0]
                                  [--db sqlite|postgresql://...]

tongdai's side runs in this process as it runs in the server: the real outbox
(written as each event is published, on a real database: SQLite in a temporary data
dir by default) and the real sender (webhooks/client.py: h11, signed requests, at most
TONGDAI_WEBHOOK_CONCURRENCY in flight). The receiver runs in its own process: an
asyncio HTTP/1.1 server with keep-alive (tests/webhooks/receiver.py) that verifies
every signature, as a real receiver must.

Events are published at ``--rate`` per second (0: all at once) as call events,
``--calls`` calls (each event one call when 0, so nothing waits on call order; else
the events cycle through that many calls, each call's events strictly in order).
Latency = arrival at the receiver minus the event's ``ts`` (stamped at publication).
Throughput = deliveries / (last arrival - first publication). CPU is reported per
1,000 deliveries for this process (tongdai's side) and for the receiver: on a shared
machine, CPU per delivery moves far less than the wall-clock rate.

The anchors, measured first in the same run: ``--anchor`` signed POSTs of the same
kind of body sent straight from one ``httpx.AsyncClient`` (keep-alive, the sender's
concurrency) to a fresh receiver, with no outbox and no database: what the HTTP
client alone costs and reaches on this machine right now; then the same POSTs from a
plain HTTP/1.1 client (``h11`` over asyncio streams, one keep-alive connection per
worker, no pool, no timeouts): the floor the sender's own client can approach.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

SECRET = "whsec_bench-secret"


async def receiver_main(expected: int) -> None:
    """The receiver process: prints its port, then one JSON line once ``expected``
    distinct deliveries arrived."""
    from tests.webhooks.receiver import Receiver

    rx = Receiver(secrets=[SECRET])
    await rx.start()
    print(rx.port, flush=True)
    cpu0 = _cpu()
    await rx.wait_for(expected, within=600)
    cpu = _cpu() - cpu0
    unique = rx.unique()
    lat = sorted(r.at - float(r.body["created_at"]) for r in unique.values())
    print(json.dumps({
        "received": len(rx.got), "unique": len(unique),
        "bad_signatures": sum(1 for r in rx.got if not r.signature_ok),
        "first": min(r.at for r in unique.values()), "last": max(r.at for r in unique.values()),
        "cpu": cpu, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99) - 1], "max": lat[-1],
    }), flush=True)
    await rx.stop()


async def _receiver(expected: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(expected)],  # noqa: ASYNC220
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(await asyncio.to_thread(proc.stdout.readline))


async def anchor(count: int, concurrency: int) -> dict[str, object]:
    """Bare httpx: ``count`` signed POSTs, ``concurrency`` at a time, one client."""
    import httpx

    from tongdai.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

    proc, port = await _receiver(count)
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}/hook"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0, cpu0 = time.time(), _cpu()
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                body = json.dumps({"id": f"evt_{n}", "type": "call.ended", "app_id": "bench",
                                   "created_at": time.time(), "devices": ["alice"],
                                   "data": {"call_id": f"anchor-{n}", "n": n}}).encode()
                now = int(time.time())
                r = await client.post(url, content=body, headers={
                    "Content-Type": "application/json", EVENT_HEADER: "call.ended",
                    DELIVERY_HEADER: f"whd_anchor{n}",
                    SIGNATURE_HEADER: f"t={now},v1={sign(SECRET, now, body)}"})
                await r.aread()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    took, cpu = time.time() - t0, _cpu() - cpu0
    line = await asyncio.to_thread(proc.stdout.readline)
    proc.kill()
    r = json.loads(line)
    return {"anchor_posts": count, "anchor_per_s": round(r["unique"] / took),
            "anchor_client_cpu_s_per_1000": round(cpu / r["unique"] * 1000, 3),
            "anchor_receiver_cpu_s_per_1000": round(r["cpu"] / r["unique"] * 1000, 3)}


async def anchor_h11(count: int, concurrency: int) -> dict[str, object]:
    """The same POSTs from h11 over asyncio streams, one keep-alive connection each."""
    import h11

    from tongdai.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

    proc, port = await _receiver(count)
    assert proc.stdout is not None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    t0, cpu0 = time.time(), _cpu()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h11.Connection(h11.CLIENT)
        while not queue.empty():
            n = queue.get_nowait()
            body = json.dumps({"id": f"evt_{n}", "type": "call.ended", "app_id": "bench",
                               "created_at": time.time(), "devices": ["alice"],
                               "data": {"call_id": f"anchor-{n}", "n": n}}).encode()
            now = int(time.time())
            head = h11.Request(method="POST", target="/hook", headers=[
                ("Host", f"127.0.0.1:{port}"), ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))), (EVENT_HEADER, "call.ended"),
                (DELIVERY_HEADER, f"whd_anchor{n}"),
                (SIGNATURE_HEADER, f"t={now},v1={sign(SECRET, now, body)}")])
            writer.write(conn.send(head) + conn.send(h11.Data(data=body))
                         + conn.send(h11.EndOfMessage()))
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(ev, h11.EndOfMessage):
                    break
            conn.start_next_cycle()
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took, cpu = time.time() - t0, _cpu() - cpu0
    line = await asyncio.to_thread(proc.stdout.readline)
    proc.kill()
    r = json.loads(line)
    return {"anchor_h11_per_s": round(r["unique"] / took),
            "anchor_h11_client_cpu_s_per_1000": round(cpu / r["unique"] * 1000, 3)}


async def bench(args: argparse.Namespace) -> dict[str, object]:
    from tests.store.support import STORE_KEY

    from tongdai.bus import Event, InProcessBus
    from tongdai.server import _tune_gc
    from tongdai.settings import Settings
    from tongdai.store.sql import open_store
    from tongdai.webhooks.service import WebhookService

    tmp = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    url = args.db if args.db != "sqlite" else f"sqlite+aiosqlite:///{tmp / 'db.sqlite3'}"
    settings = Settings(data_dir=tmp, webhook_allow_private=True)
    anchored: dict[str, object] = {}
    if args.anchor:
        anchored.update(await anchor(args.anchor, settings.webhook_concurrency))
        anchored.update(await anchor_h11(args.anchor, settings.webhook_concurrency))
    store = await open_store(url, key=STORE_KEY)
    proc, port = await _receiver(args.events)
    assert proc.stdout is not None
    try:
        app = await store.create_app("bench")
        await store.add_webhook(app.app_id, f"http://127.0.0.1:{port}/hook", ("call.*",),
                                secret=SECRET, now=time.time())
        svc = WebhookService(store=store, bus=InProcessBus(), settings=settings,
                             node="bench", wall_clock=time.time)
        await svc.start()
        _tune_gc()  # as ``tongdai serve`` does once started
        kinds = ("call.ringing", "call.answered", "call.ended")
        t0, cpu0 = time.time(), _cpu()
        # Publications in flight only: the server keeps no finished task either.
        pubs: set[asyncio.Task[None]] = set()
        for n in range(args.events):
            if args.rate:
                delay = t0 + n / args.rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            call = n % args.calls if args.calls else n
            kind = kinds[(n // args.calls) % 3] if args.calls else "call.ended"
            ev = Event(type=kind, app_id=app.app_id, sip_users=("alice",), ts=time.time(),
                       data={"call_id": f"bench-{call}", "n": n})
            # As the PBX does: each publication its own task.
            task = asyncio.create_task(svc.bus.publish(ev))
            pubs.add(task)
            task.add_done_callback(pubs.discard)
        while pubs:
            await asyncio.gather(*pubs)
        published = time.time()
        line = await asyncio.to_thread(proc.stdout.readline)
        cpu = _cpu() - cpu0
        await svc.stop()
    finally:
        proc.kill()
        await store.close()
    r = json.loads(line)
    took = r["last"] - t0
    return {
        "database": "sqlite" if args.db == "sqlite" else "postgresql",
        "events": args.events, "rate": args.rate or "burst", "calls": args.calls or "one each",
        "publish_seconds": round(published - t0, 2),
        "deliveries_per_s": round(r["unique"] / took),
        "p50_ms": round(r["p50"] * 1000, 1), "p99_ms": round(r["p99"] * 1000, 1),
        "max_ms": round(r["max"] * 1000, 1),
        # CPU (user + system) per 1,000 deliveries: contention-proof, unlike rates.
        "tongdai_cpu_s_per_1000": round(cpu / r["unique"] * 1000, 3),
        "receiver_cpu_s_per_1000": round(r["cpu"] / r["unique"] * 1000, 3),
        "duplicates": r["received"] - r["unique"], "bad_signatures": r["bad_signatures"],
        **anchored,
        "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
    }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--rate", type=float, default=1000.0, help="events/s; 0: all at once")
    p.add_argument("--calls", type=int, default=0)
    p.add_argument("--db", default="sqlite")
    p.add_argument("--anchor", type=int, default=5000,
                   help="bare httpx POSTs measured first (0: no anchor)")
    p.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run  # type: ignore[assignment]
    if args.receiver is not None:
        run(receiver_main(args.receiver))
        return
    print(json.dumps(run(bench(args)), indent=1))


if __name__ == "__main__":
    main()
