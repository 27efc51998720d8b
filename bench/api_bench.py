"""Benchmark of the Open API: histories latency over many CDRs, websocket fan-out.

    python bench/api_bench.py histories [--rows 1000000] [--backends sqlite,postgresql]
    python bench/api_bench.py fanout [--clients 1000] [--devices 100] [--rate 100] [--seconds 10]

The API runs in its own process (``create_api`` under uvicorn on 127.0.0.1, port 0,
uvloop when installed), so its CPU (user + system, from /proc) is measured alone; this
process is the client. In the same run, on the same server, a bare Starlette route
(``GET /bench/bare``, plain text) gives the anchor: what one HTTP round trip costs
before any tongdai code runs.

histories: one app with ``--rows`` CDRs spread over 365 days (integer-second start
times, so ties exist), bulk-loaded (SQLite: executemany in one transaction;
PostgreSQL: COPY, then VACUUM ANALYZE as autovacuum would; the per-app daily counts
the store keeps filled by one INSERT ... SELECT ... GROUP BY), then sequential signed
GETs for: a 31-day window page 1 and page 500 (limit 20, offset 9,980) and a 1-day
window page 1. p50/p99 per case.

fanout: ``--devices`` devices, ``--clients`` websockets spread evenly over them
(each device's token from ``auth_token``). A driver publishes ``--rate`` events/s,
each to one device in turn, through a bench-only route that publishes on the
server's bus. Delivery latency is a client's arrival time minus the event's ``ts``
(stamped when the server publishes it); also shown counting from when the driver
sent the publish request. Delivered = events x clients per device. Also the bare route's
latency while the fan-out runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PG_ADMIN = os.environ.get("TONGDAI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REALM = "bench.tongdai"
# Seals app secrets in the bench databases (a server would keep it in its data dir).
STORE_KEY = b"tongdai-bench-store-key-32-bytes"


def sha(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50) * 1000:7.2f} ms  p99 {pct(xs, 99) * 1000:7.2f} ms  (n={len(xs)})"


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# The server process -----------------------------------------------------------------

def serve_main(db_url: str, ping: float) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(db_url, ping))


async def _serve(db_url: str, ping: float) -> None:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from tongdai.api import create_api
    from tongdai.bus import Event, InProcessBus
    from tongdai.media.urls import RecordingSigner
    from tongdai.settings import Settings
    from tongdai.store.sql import open_store

    class NoPbx:
        def is_registered(self, sip_user: str) -> bool:
            return False

        async def click_to_call(self, *, app_id: str, sip_user: str, number: str) -> str:
            raise NotImplementedError

    store = await open_store(db_url, key=STORE_KEY)
    bus = InProcessBus()

    async def bare(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def publish(request: Request) -> Response:
        body = await request.json()
        await bus.publish(Event(type="device.registered", app_id=body["app_id"],
                                sip_users=(body["sip_user"],), ts=time.time(),
                                data={"sent": body["sent"], "n": body["n"]}))
        return PlainTextResponse("ok")

    # api_app_rate=0: the benchmarks measure latency, not the per-app request limit.
    settings = Settings(ws_ping_interval=ping, ws_queue_limit=1000, ws_retain_events=1000,
                        api_app_rate=0)
    app = create_api(
        settings=settings, store=store, bus=bus, calls=NoPbx(),
        recordings=RecordingSigner(b"b" * 32, "http://127.0.0.1", 900),
        extra_routes=[Route("/bench/bare", bare),
                      Route("/bench/publish", publish, methods=["POST"])],
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", backlog=4096, ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    print(server.servers[0].sockets[0].getsockname()[1], flush=True)
    await task
    await store.close()


@asynccontextmanager
async def api_server(db_url: str, ping: float = 60.0) -> AsyncIterator[tuple[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "_serve", db_url, str(ping), stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line.strip():
            raise SystemExit("the API server did not start")
        yield f"127.0.0.1:{int(line)}", proc.pid
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


# Data ------------------------------------------------------------------------------

async def make_app(db_url: str, devices: int) -> tuple[str, str]:
    from tongdai.pbx.credentials import digest_keys
    from tongdai.store.sql import open_store
    store = await open_store(db_url, key=STORE_KEY)
    try:
        app = await store.create_app("bench")
        for i in range(devices):
            await store.add_device(app.app_id, f"dev{i:04d}",
                                   digest_keys(f"dev{i:04d}", REALM, f"pw{i:04d}"))
        return app.app_id, app.app_secret.reveal()
    finally:
        await store.close()


_COLUMNS = ("call_id", "app_id", "caller", "callee", "klass", "did_number", "direction",
            "status_detail", "duration_seconds", "unix_timestamp", "billing_seconds",
            "recording", "started_at", "answered_at", "ended_at", "sip_code", "hangup_by",
            "sip_users", "caller_number", "callee_number")


def cdr_rows(app_id: str, n: int, newest: int) -> list[tuple[Any, ...]]:
    rnd = random.Random(7)
    caller = json.dumps({"number": "101", "type": "user", "username": "dev0000"})
    callee = json.dumps({"number": "0912345678", "type": "realnumber"})
    users = json.dumps(["dev0000"])
    rows = []
    for i in range(n):
        start = newest - rnd.randrange(365 * 86400)
        rec = f"call_recording_b{i:019d}.mp3" if i % 3 == 0 else ""
        rows.append((f"bench-{i:08d}", app_id, caller, callee, "trunking", None, "from_ab",
                     "SUCCESS", 50, start, 43, rec, float(start), float(start + 7),
                     float(start + 50), 200, "caller", users, "101", "0912345678"))
    return rows


# The store keeps per-app daily counts (cdr_daily) as it adds CDRs; a bulk load that
# bypasses it fills them the way the 0003 migration backfills them.
_DAY = "CAST(started_at / 86400 AS BIGINT)"
_DAY = f"{_DAY} - CASE WHEN {_DAY} * 86400 > started_at THEN 1 ELSE 0 END"
FILL_DAILY = (f"INSERT INTO cdr_daily (app_id, day, count) "
              f"SELECT app_id, {_DAY}, COUNT(*) FROM cdrs GROUP BY app_id, {_DAY}")


def load_sqlite(path: str, rows: list[tuple[Any, ...]]) -> None:
    con = sqlite3.connect(path)
    try:
        marks = ",".join("?" * len(_COLUMNS))
        with con:
            con.executemany(f"INSERT INTO cdrs ({','.join(_COLUMNS)}) VALUES ({marks})", rows)
            con.execute(FILL_DAILY)
        con.execute("ANALYZE")
    finally:
        con.close()


async def load_pg(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    import asyncpg
    con = await asyncpg.connect(dsn)
    try:
        await con.copy_records_to_table("cdrs", records=rows, columns=list(_COLUMNS))
        await con.execute(FILL_DAILY)
        # What autovacuum does soon after a bulk load; without it the visibility map is
        # empty and COUNT(*) cannot use an index-only scan (10x slower).
        await con.execute("VACUUM ANALYZE cdrs")
        await con.execute("VACUUM ANALYZE cdr_daily")
    finally:
        await con.close()


@asynccontextmanager
async def database(backend: str, tmp: str) -> AsyncIterator[tuple[str, str]]:
    """(SQLAlchemy URL, driver DSN or file path) of a new, migrated database."""
    from tongdai.store.sql import open_store
    if backend == "sqlite":
        path = os.path.join(tmp, "bench.sqlite3")
        url = f"sqlite+aiosqlite:///{path}"
        await (await open_store(url, key=STORE_KEY)).close()
        yield url, path
        return
    import asyncpg
    from sqlalchemy.engine import make_url
    name = f"tongdai_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
    dsn = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        await (await open_store(url.render_as_string(hide_password=False), key=STORE_KEY)).close()
        yield url.render_as_string(hide_password=False), dsn
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# (a) histories ---------------------------------------------------------------------

async def bench_histories(backend: str, n_rows: int, requests: int) -> None:
    newest = int(time.time()) - 60
    with tempfile.TemporaryDirectory() as tmp:
        async with database(backend, tmp) as (url, raw):
            app_id, secret = await make_app(url, 1)
            rows = cdr_rows(app_id, n_rows, newest)
            t0 = time.perf_counter()
            if backend == "sqlite":
                await asyncio.to_thread(load_sqlite, raw, rows)
            else:
                await load_pg(raw, rows)
            print(f"[{backend}] loaded {n_rows:,} CDRs in {time.perf_counter() - t0:.1f} s")
            del rows
            async with api_server(url) as (host, pid):
                await _histories_cases(backend, host, pid, app_id, secret, newest, requests)


async def _histories_cases(
    backend: str, host: str, pid: int, app_id: str, secret: str, newest: int, requests: int,
) -> None:
    to_day = datetime.fromtimestamp(newest, TZ).date()
    d31 = datetime.fromtimestamp(newest - 30 * 86400, TZ).date()
    cases = [
        ("31-day window, page 1", str(d31), str(to_day), "20", "1"),
        ("31-day window, page 500", str(d31), str(to_day), "20", "500"),
        ("1-day window, page 1", str(to_day), str(to_day), "20", "1"),
    ]
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as c:
        for _ in range(20):  # warm up connections, caches and the query planner
            await c.get("/bench/bare")
        bare = []
        for _ in range(requests):
            t = time.perf_counter()
            r = await c.get("/bench/bare")
            bare.append(time.perf_counter() - t)
            assert r.status_code == 200
        print(f"[{backend}] anchor: bare Starlette GET         {ms(bare)}")
        for label, frm, to, limit, page in cases:
            q = {"appId": app_id, "created_from": frm, "created_to": to, "limit": limit,
                 "page": page, "hash": sha(app_id, frm, to, limit, page, secret)}
            r = await c.get("/oapi/v1/call/histories", params=q)
            assert r.status_code == 200, r.text
            total = r.json()["total"]
            lat = []
            cpu0 = proc_cpu(pid)
            for _ in range(requests):
                t = time.perf_counter()
                r = await c.get("/oapi/v1/call/histories", params=q)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200
            cpu = (proc_cpu(pid) - cpu0) / requests * 1000
            print(f"[{backend}] histories {label:24s} {ms(lat)}  "
                  f"total={total:,}  server CPU {cpu:.2f} ms/req")


# (c) websocket fan-out -------------------------------------------------------------

async def bench_fanout(clients: int, devices: int, rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with database("sqlite", tmp) as (url, _):
            app_id, secret = await make_app(url, devices)
            async with (api_server(url) as (host, pid),
                        httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as c):
                await _fanout(c, host, pid, app_id, secret, clients, devices, rate, seconds)


async def _fanout(
    c: httpx.AsyncClient, host: str, pid: int, app_id: str, secret: str, clients: int,
    devices: int, rate: int, seconds: float,
) -> None:
    from websockets.asyncio.client import connect
    tokens = []
    for i in range(devices):
        r = await c.post(
            "/oapi/v1/voice/auth_token",
            headers={"x-auth-app-id": app_id, "x-auth-app-hash": sha(app_id, secret)},
            json={"sipUser": f"dev{i:04d}", "sipPassword": f"pw{i:04d}"})
        assert r.status_code == 200, r.text
        tokens.append(r.json()["value"])
    latencies: list[float] = []  # server publish -> client
    round_trip: list[float] = []  # driver's publish request sent -> client
    seqs: dict[int, list[int]] = {}
    conns = []
    t0 = time.perf_counter()
    for k in range(clients):
        ws = await connect(f"ws://{host}/oapi/v1/voice/ws?token={tokens[k % devices]}",
                           compression=None, proxy=None, open_timeout=30, ping_interval=None)
        assert json.loads(await ws.recv())["type"] == "hello"
        conns.append(ws)
    print(f"[fanout] {clients} websockets connected over {devices} devices "
          f"in {time.perf_counter() - t0:.1f} s")

    async def reader(k: int, ws: Any) -> None:
        got = seqs.setdefault(k, [])
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            if msg["type"] == "device.registered":
                latencies.append(now - msg["ts"])
                round_trip.append(now - msg["data"]["sent"])
                got.append(msg["seq"])

    readers = [asyncio.create_task(reader(k, ws)) for k, ws in enumerate(conns)]
    bare: list[float] = []
    n_events = int(rate * seconds)
    cpu0, self0 = proc_cpu(pid), self_cpu()
    start = time.perf_counter()
    for n in range(n_events):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await c.post("/bench/publish", json={
            "app_id": app_id, "sip_user": f"dev{n % devices:04d}", "sent": time.time(), "n": n})
        if n % 10 == 0:
            t = time.perf_counter()
            await c.get("/bench/bare")
            bare.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    expected = n_events * (clients // devices)
    deadline = time.perf_counter() + 10
    while len(latencies) < expected and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    server_cpu, client_cpu = proc_cpu(pid) - cpu0, self_cpu() - self0
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    ordered = all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    print(f"[fanout] {n_events} events in {elapsed:.1f} s ({n_events / elapsed:.0f}/s), "
          f"delivered {len(latencies)}/{expected}, every client saw seq 1, 2, 3, ...: {ordered}")
    print(f"[fanout] delivery latency          {ms(latencies)}")
    print(f"[fanout]   incl. the publish request  {ms(round_trip)}")
    print(f"[fanout] anchor: bare GET meanwhile {ms(bare)}")
    print(f"[fanout] server CPU {server_cpu / elapsed * 100:.0f}% of a core, "
          f"client (this process) {client_cpu / elapsed * 100:.0f}%")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve_main(sys.argv[2], float(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("histories")
    h.add_argument("--rows", type=int, default=1_000_000)
    h.add_argument("--backends", default="sqlite,postgresql")
    h.add_argument("--requests", type=int, default=300)
    f = sub.add_parser("fanout")
    f.add_argument("--clients", type=int, default=1000)
    f.add_argument("--devices", type=int, default=100)
    f.add_argument("--rate", type=int, default=100)
    f.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    if args.cmd == "histories":
        for backend in args.backends.split(","):
            asyncio.run(bench_histories(backend, args.rows, args.requests))
    else:
        asyncio.run(bench_fanout(args.clients, args.devices, args.rate, args.seconds))


if __name__ == "__main__":
    main()
