"""An app event's websocket message: compact JSON of its five fields, the same whether
it is built live (from the data the log just encoded) or replayed from the log."""

from __future__ import annotations

import json
import math

from tests.store.support import STORE_KEY

from tongdai.appstream import AppRecord, SqlAppLog
from tongdai.bus import Event
from tongdai.store.sql import open_store


def _expected(rec: AppRecord) -> str:
    return json.dumps({"type": rec.type, "seq": rec.seq, "ts": rec.ts,
                       "devices": list(rec.devices), "data": rec.data},
                      separators=(",", ":"), ensure_ascii=False, default=str)


def test_the_message_is_the_compact_json_of_the_event() -> None:
    records = [
        AppRecord(app_id="a", seq=7, type="call.ended", ts=1796019799.35123,
                  devices=("alice", "bé"), data={"call_id": "c1", "n": [1, 2.5, None],
                                                  "note": 'Việt\n"q"\u2028', "ok": True}),
        AppRecord(app_id="a", seq=10**14, type='od"d', ts=1e-7, devices=(), data={}),
        AppRecord(app_id="a", seq=1, type="call.ringing", ts=3, devices=("x",),
                  data={"at": math.pi}),
    ]
    for rec in records:
        assert rec.message() == _expected(rec)
        assert json.loads(rec.message())["seq"] == rec.seq


async def test_live_and_replayed_messages_are_the_same(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        log = SqlAppLog(store=store, retain=100)
        live: list[AppRecord] = []
        log.listen(live.extend)
        await log.start()
        for n, users in enumerate([("alice",), (), ("alice", "bob")]):
            log.append(Event(type="call.ringing", app_id="app1", sip_users=users,
                             ts=1796019799.25 + n, data={"n": n, "who": "Ngọc", "x": [n]}))
        await log.stop()
        replayed = await log.read("app1", 0, 10)
        assert [r.message() for r in live] == [r.message() for r in replayed]
        assert [r.message() for r in live] == [_expected(r) for r in live]
    finally:
        await store.close()
