"""The embedded app event log's tables (a ``SqlStore`` part).

Numbers come from ``app_event_seqs`` in the transaction that writes the events: on
PostgreSQL the UPDATE locks the app's row until commit, so several processes sharing
the database still number an app's events 1, 2, 3, ... in commit order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from tongdai.appstream.record import AppRecord, devices_json, to_json
from tongdai.appstream.rows import AppEventRow, AppEventSeqRow
from tongdai.bus.events import Event
from tongdai.store.engine import Database

# Old events of an app are deleted each time its numbers cross a multiple of this:
# the table stays bounded without a DELETE per write.
TRIM_EVERY = 256


_NUMBER = (
    update(AppEventSeqRow).where(AppEventSeqRow.app_id == bindparam("n_app"))
    .values(last_seq=AppEventSeqRow.last_seq + bindparam("n_count"))
    .returning(AppEventSeqRow.last_seq))
_FIRST_NUMBERS = insert(AppEventSeqRow)
_INSERT = insert(AppEventRow)
_TRIM = delete(AppEventRow).where(AppEventRow.app_id == bindparam("t_app"),
                                  AppEventRow.seq <= bindparam("t_upto"))


def _number(conn: Connection, app_id: str, n: int) -> tuple[int, int]:
    """(first, last) of the ``n`` next numbers of the app's events."""
    last = conn.scalar(_NUMBER, {"n_app": app_id, "n_count": n})
    if last is None:
        conn.execute(_FIRST_NUMBERS, {"app_id": app_id, "last_seq": n})
        last = n
    return int(last) - n + 1, int(last)


_COLUMNS = ("app_id", "seq", "type", "ts", "devices", "data")
# The INSERT as each dialect's driver takes it, positional in the order of _COLUMNS;
# None where the driver takes named parameters.
_DRIVER_INSERT: dict[tuple[str, str], str | None] = {}


def _row(rec: AppRecord, data_json: str) -> tuple[object, ...]:
    """The row of ``rec``, its values in the order of ``_COLUMNS``."""
    return rec.app_id, rec.seq, rec.type, rec.ts, devices_json(rec.devices), data_json


def _insert(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """One executemany of ``rows``, handed straight to the driver: SQLAlchemy's
    processing of each row's parameters costs more than the database's insert."""
    name = conn.dialect.name, conn.dialect.driver
    if name not in _DRIVER_INSERT:
        compiled = _INSERT.compile(dialect=conn.dialect, column_keys=list(_COLUMNS))
        positional = compiled.positiontup is not None and tuple(compiled.positiontup) == _COLUMNS
        _DRIVER_INSERT[name] = str(compiled) if positional else None
    sql = _DRIVER_INSERT[name]
    if sql is not None:
        conn.exec_driver_sql(sql, rows)
    else:
        conn.execute(_INSERT, [dict(zip(_COLUMNS, row, strict=True)) for row in rows])


class AppEventTables(Database):
    async def append_app_events(self, events: Sequence[Event], *,
                                retain: int) -> list[AppRecord]:
        """Number and write ``events`` (in order) in one transaction; keep the last
        ``retain`` of each app. Returns the records, in the given order."""
        by_app: dict[str, list[Event]] = {}
        for e in events:
            by_app.setdefault(e.app_id, []).append(e)
        position = {id(e): i for i, e in enumerate(events)}

        def write(conn: Connection) -> dict[int, AppRecord]:
            out: dict[int, AppRecord] = {}
            rows: list[tuple[object, ...]] = []
            trims: list[dict[str, object]] = []
            for app_id, evs in by_app.items():
                first, last = _number(conn, app_id, len(evs))
                for i, e in enumerate(evs):
                    # data encoded once: for its row and for the websocket message.
                    data_json = to_json(e.data)
                    rec = AppRecord(app_id=app_id, seq=first + i, type=e.type, ts=e.ts,
                                    devices=e.sip_users, data=e.data, data_json=data_json)
                    out[position[id(e)]] = rec
                    rows.append(_row(rec, data_json))
                if (first - 1) // TRIM_EVERY != last // TRIM_EVERY:
                    trims.append({"t_app": app_id, "t_upto": last - retain})
            _insert(conn, rows)
            for trim in trims:
                conn.execute(_TRIM, trim)
            return out

        out = await self._write_core(write)
        return [out[i] for i in range(len(events))]

    async def app_events_after(self, app_id: str, after: int, limit: int) -> list[AppRecord]:
        """The app's retained events numbered above ``after``, oldest first."""
        r = AppEventRow
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(r.seq, r.type, r.ts, r.devices, r.data)
                .where(r.app_id == app_id, r.seq > after).order_by(r.seq).limit(limit))
            # ``data`` is stored as ``to_json`` wrote it: the message reuses it.
            return [AppRecord(app_id=app_id, seq=int(seq), type=kind, ts=float(ts),
                              devices=tuple(json.loads(devices)), data=json.loads(data),
                              data_json=data)
                    for seq, kind, ts, devices, data in result]

    async def app_event_bounds(self, app_id: str) -> tuple[int, int]:
        """(the first retained number, the last number given) of the app; (1, 0) for
        an app without events."""
        async with self._engine.connect() as conn:
            last = await conn.scalar(select(AppEventSeqRow.last_seq)
                                     .where(AppEventSeqRow.app_id == app_id))
            first = await conn.scalar(select(func.min(AppEventRow.seq))
                                      .where(AppEventRow.app_id == app_id))
        last_i = int(last or 0)
        return (int(first) if first is not None else last_i + 1), last_i
