"""Benchmark of one small write transaction through the store's group commit on SQLite
(the path of CDRs, checkpoints, the app event log and the webhook outbox), one after
another, so that each is its own transaction: its wall time and CPU time.

    python bench/commit_bench.py [--count 2000]

Cases: a one-row INSERT, and an empty transaction (BEGIN IMMEDIATE and COMMIT only).
CPU is this process's (user + system, every thread), per transaction.

The anchor, same run: the same INSERT and COMMIT with the sqlite3 module alone on a
file set up the same way (WAL, synchronous FULL), no asyncio, no thread, no SQLAlchemy:
the database's own cost, which the store's path adds to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

# A table of the benchmark's own, in the store's database file too.
CREATE = "CREATE TABLE IF NOT EXISTS bench_rows (n INTEGER PRIMARY KEY, body TEXT)"
INSERT = "INSERT INTO bench_rows (body) VALUES ('" + "x" * 200 + "')"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def anchor(count: int) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="commit-bench-")) / "anchor.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(CREATE)
    t0, c0 = time.perf_counter(), _cpu()
    for _ in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT)
        conn.execute("COMMIT")
    took, cpu = time.perf_counter() - t0, _cpu() - c0
    conn.close()
    return {"anchor_wall_ms": round(took / count * 1000, 3),
            "anchor_cpu_ms": round(cpu / count * 1000, 3)}


async def store_path(count: int) -> dict[str, float]:
    from sqlalchemy.engine import Connection
    from tests.store.support import STORE_KEY

    from tongdai.store.sql import open_store

    tmp = Path(tempfile.mkdtemp(prefix="commit-bench-"))
    store = await open_store(f"sqlite+aiosqlite:///{tmp / 'db.sqlite3'}", key=STORE_KEY)

    def insert(conn: Connection) -> None:
        conn.exec_driver_sql(INSERT)

    def empty(conn: Connection) -> None:
        return None

    out: dict[str, float] = {}
    try:
        await store._write_core(lambda conn: conn.exec_driver_sql(CREATE))
        for name, write in (("insert", insert), ("empty", empty)):
            t0, c0 = time.perf_counter(), _cpu()
            for _ in range(count):
                await store._write_core(write)
            took, cpu = time.perf_counter() - t0, _cpu() - c0
            out[f"{name}_wall_ms"] = round(took / count * 1000, 3)
            out[f"{name}_cpu_ms"] = round(cpu / count * 1000, 3)
    finally:
        await store.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000)
    args = p.parse_args()
    result = {"transactions": args.count, **anchor(args.count),
              **asyncio.run(store_path(args.count))}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
