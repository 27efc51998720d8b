"""Benchmark: history search by phone number over many CDRs, SQLite and PostgreSQL.

    python bench/history_search_bench.py [--rows 1000000] [--backends sqlite,postgresql]
                                         [--requests 300]

One app with ``--rows`` CDRs over 365 days; half incoming (the customer is the
caller), half outgoing (the customer is the callee). Customers are 100,000 mobile
numbers written the ways carriers and CRMs write them (``0393608879``,
``+84393608879``, ``84393608879``, the retired ``01693608879``); one "hot" number takes
1% of all calls. The rows are bulk-loaded as ``api_bench`` does, with the search
columns computed by the store's own ``search_number``.

The API runs in its own process (``api_bench``'s server, uvicorn on 127.0.0.1) and
this process sends sequential signed GETs of ``histories`` with ``phone=`` over the
newest 31 days, limit 20, for random customers (sent in a random written form, old
or new), for the hot number, and with a cursor page deep into the hot number's calls;
p50 / p99 per case, with the bare-route round trip as the anchor. The goal is p99
under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_bench import (  # the sibling module, found through sys.path
    _COLUMNS,
    STORE_KEY,
    TZ,
    api_server,
    database,
    load_pg,
    load_sqlite,
    make_app,
    ms,
    proc_cpu,
    sha,
)

from tongdai.store.models import search_number

CUSTOMERS = 100_000
HOT = "0393608879"
# The 2018 renumbering, inverted for writing a few numbers the old way.
_OLD = {"039": "0169", "038": "0168", "037": "0167", "036": "0166", "035": "0165",
        "034": "0164", "033": "0163", "032": "0162"}
_PREFIXES = ("090", "091", "093", "096", "097", "098", *_OLD)


def written(n: str, rnd: random.Random) -> str:
    """``n`` (national form) as some carrier or CRM would write it."""
    k = rnd.randrange(4)
    if k == 1:
        return "+84" + n[1:]
    if k == 2:
        return "84" + n[1:]
    if k == 3 and n[:3] in _OLD:
        return _OLD[n[:3]] + n[3:]
    return n


def customers(rnd: random.Random) -> list[str]:
    return [rnd.choice(_PREFIXES) + f"{rnd.randrange(10_000_000):07d}" for _ in range(CUSTOMERS)]


def rows(app_id: str, n: int, newest: int, pool: list[str]) -> list[tuple[Any, ...]]:
    rnd = random.Random(11)
    agent = {"number": "101", "type": "user", "username": "dev0000"}
    agent_json, users = json.dumps(agent), json.dumps(["dev0000"])
    out = []
    for i in range(n):
        start = newest - rnd.randrange(365 * 86400)
        number = HOT if rnd.random() < 0.01 else rnd.choice(pool)
        party = {"number": written(number, rnd), "type": "realnumber"}
        incoming = i % 2 == 0
        caller, callee = (party, agent) if incoming else (agent, party)
        out.append((
            f"search-{i:08d}", app_id, json.dumps(caller) if incoming else agent_json,
            agent_json if incoming else json.dumps(callee), "trunking",
            "02873019555" if incoming else None, "to_ab" if incoming else "from_ab",
            "SUCCESS", 50, start, 43, "", float(start), float(start + 7), float(start + 50),
            200, "caller", users, search_number(caller), search_number(callee),
        ))
    return out


async def bench(backend: str, n_rows: int, requests: int) -> None:
    assert _COLUMNS[-2:] == ("caller_number", "callee_number")
    newest = int(time.time()) - 60
    rnd = random.Random(3)
    pool = customers(rnd)
    with tempfile.TemporaryDirectory() as tmp:
        async with database(backend, tmp) as (url, raw):
            app_id, secret = await make_app(url, 1)
            data = rows(app_id, n_rows, newest, pool)
            t0 = time.perf_counter()
            if backend == "sqlite":
                await asyncio.to_thread(load_sqlite, raw, data)
            else:
                await load_pg(raw, data)
            print(f"[{backend}] loaded {n_rows:,} CDRs in {time.perf_counter() - t0:.1f} s")
            del data
            await _store_only(backend, url, app_id, newest, requests, pool, rnd)
            async with api_server(url) as (host, pid):
                await _cases(backend, host, pid, app_id, secret, newest, requests, pool, rnd)


async def _store_only(
    backend: str, url: str, app_id: str, newest: int, requests: int, pool: list[str],
    rnd: random.Random,
) -> None:
    """The database's share: ``search_cdrs`` called in this process, no HTTP."""
    from tongdai.numbers import normalize
    from tongdai.store import CdrQuery
    from tongdai.store.sql import open_store
    store = await open_store(url, key=STORE_KEY)
    try:
        def q(n: str) -> CdrQuery:
            return CdrQuery(app_id=app_id, start_ts=newest - 31 * 86400.0,
                            end_ts=float(newest), number=normalize(n))
        for label, pick in (("random customer", lambda: rnd.choice(pool)),
                            ("hot number", lambda: HOT)):
            for _ in range(20):
                await store.search_cdrs(q(pick()), limit=20)
            lat = []
            for _ in range(requests):
                query = q(pick())
                t = time.perf_counter()
                await store.search_cdrs(query, limit=20)
                lat.append(time.perf_counter() - t)
            print(f"[{backend}] store.search_cdrs {label:22s} {ms(lat)}")
    finally:
        await store.close()


async def _cases(
    backend: str, host: str, pid: int, app_id: str, secret: str, newest: int,
    requests: int, pool: list[str], rnd: random.Random,
) -> None:
    frm = str(datetime.fromtimestamp(newest - 30 * 86400, TZ).date())
    to = str(datetime.fromtimestamp(newest, TZ).date())

    def query(phone: str, after: str | None = None) -> dict[str, str]:
        q = {"appId": app_id, "created_from": frm, "created_to": to, "limit": "20",
             "phone": phone, "hash": sha(app_id, frm, to, "20", "", phone, after or "", secret)}
        if after is not None:
            q["after"] = after
        return q

    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as c:
        for _ in range(20):
            await c.get("/bench/bare")
        bare = []
        for _ in range(requests):
            t = time.perf_counter()
            await c.get("/bench/bare")
            bare.append(time.perf_counter() - t)
        print(f"[{backend}] anchor: bare Starlette GET           {ms(bare)}")
        # The cursor of the hot number's 5th page, for a deep-cursor case.
        after: str | None = ""
        for _ in range(5):
            r = await c.get("/oapi/v1/call/histories", params=query(HOT, after or ""))
            assert r.status_code == 200, r.text
            after = r.json()["next"] or after  # stays on the last page of a small set
        cases = [
            ("random customer, any form", lambda: query(written(rnd.choice(pool), rnd))),
            ("hot number (1% of calls)", lambda: query(_OLD["039"] + HOT[3:])),
            ("hot number, cursor page 6", lambda: query(HOT, after or "")),
        ]
        for label, make in cases:
            lat, found = [], 0
            cpu0 = proc_cpu(pid)
            for _ in range(requests):
                q = make()
                t = time.perf_counter()
                r = await c.get("/oapi/v1/call/histories", params=q)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
                found += r.json()["total"]
            cpu = (proc_cpu(pid) - cpu0) / requests * 1000
            print(f"[{backend}] phone= {label:27s} {ms(lat)}  "
                  f"mean total={found / requests:,.1f}  server CPU {cpu:.2f} ms/req")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--requests", type=int, default=300)
    a = p.parse_args()
    for backend in a.backends.split(","):
        asyncio.run(bench(backend.strip(), a.rows, a.requests))


if __name__ == "__main__":
    main()
