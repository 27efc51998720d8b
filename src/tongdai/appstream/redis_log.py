"""The app event log in Redis Streams, shared by every tongdai on the same Redis.

One Lua script numbers and stores an event atomically: ``INCR`` the app's counter,
``XADD`` the event to the app's stream under the id ``0-<seq>`` (so a replay is an
``XRANGE``), and ``XADD`` it to one stream of all apps, which every process reads
(``XREAD BLOCK``) to hear the events of the others. Redis runs scripts one at a time,
so the all-apps stream holds each app's events in number order.

Both streams are capped (``MAXLEN ~``): an app's to ``retain`` events, the shared one
to what processes could plausibly lag behind. A batch that a broken connection cut
short is sent again, so an event may, rarely, be numbered twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tongdai import logs
from tongdai.appstream.log import Listener
from tongdai.appstream.pending import BATCH, Pending
from tongdai.appstream.record import AppRecord, from_payload, payload
from tongdai.background import stop_task
from tongdai.bus.events import Event

log = logging.getLogger("tongdai.appstream")

SHARED_RETAIN = 100_000
_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '0-' .. seq, 'p', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'a', ARGV[4], 's', seq, 'p', ARGV[1])
return seq
"""


class RedisAppLog:
    def __init__(self, client: Redis, *, prefix: str, retain: int,
                 block_ms: int = 1000) -> None:
        self._client = client
        self.prefix = prefix
        self.retain = retain
        self.block_ms = block_ms
        self.shared = f"{prefix}:app-events"
        self._script = client.register_script(_APPEND)
        self._pending = Pending()
        self._listeners: list[Listener] = []
        self._writer_task: asyncio.Task[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._last_id = "$"

    @property
    def dropped(self) -> int:
        return self._pending.dropped

    @classmethod
    def from_url(cls, url: str, *, retain: int) -> RedisAppLog:
        """The ``TONGDAI_BUS_URL`` (``redis://...[?prefix=name]``) of the bus."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        client = Redis.from_url(urlunsplit(parts._replace(query=rest)),
                                retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0,
                                socket_keepalive=True)
        return cls(client, prefix=prefixes[-1] if prefixes else "tongdai", retain=retain)

    def _seq_key(self, app_id: str) -> str:
        return f"{self.prefix}:app:{app_id}:seq"

    def _stream_key(self, app_id: str) -> str:
        return f"{self.prefix}:app:{app_id}:events"

    async def start(self) -> None:
        if self._reader_task is not None:
            return
        # Read from the newest entry now, so nothing appended after start is missed.
        try:
            newest: Any = await self._client.xrevrange(self.shared, count=1)
            self._last_id = _text(newest[0][0]) if newest else "0-0"
        except (RedisError, OSError) as exc:
            logs.event(log, "app_events.redis_unreachable", level=logging.WARNING,
                       error=type(exc).__name__)
        self._reader_task = asyncio.create_task(self._reader(), name="app-event-reader")
        self._writer_task = asyncio.create_task(
            self._pending.write_all(self._write, lambda _: None), name="app-event-writer")

    async def stop(self) -> None:
        self._pending.stop()
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer_task), 5)
            except TimeoutError:
                await stop_task(self._writer_task)
        await stop_task(self._reader_task)
        self._writer_task = self._reader_task = None
        await self._client.aclose()

    def append(self, event: Event) -> None:
        self._pending.append(event)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def flushed(self) -> None:
        await self._pending.flushed()

    async def read(self, app_id: str, after: int, limit: int) -> Sequence[AppRecord]:
        entries: Any = await self._client.xrange(self._stream_key(app_id), min=f"0-{after + 1}",
                                            max="+", count=limit)
        return [from_payload(app_id, _number(eid), fields[b"p"])
                for eid, fields in entries]

    async def bounds(self, app_id: str) -> tuple[int, int]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._seq_key(app_id))
            pipe.xrange(self._stream_key(app_id), count=1)
            results: Any = await pipe.execute()
        last_raw, oldest = results
        last = int(last_raw or 0)
        first = _number(oldest[0][0]) if oldest else last + 1
        return first, last

    async def _write(self, batch: list[Event]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for e in batch:
                await self._script(
                    keys=[self._seq_key(e.app_id), self._stream_key(e.app_id), self.shared],
                    args=[payload(e), self.retain, SHARED_RETAIN, e.app_id],
                    client=pipe)
            await pipe.execute()

    async def _reader(self) -> None:
        failures = 0
        while True:
            try:
                got: Any = await self._client.xread({self.shared: self._last_id},
                                               count=BATCH, block=self.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    logs.event(log, "app_events.read_failed", level=logging.WARNING,
                               error=type(exc).__name__)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** failures))
                continue
            failures = 0
            for _stream, entries in got or ():
                records: list[AppRecord] = []
                for eid, fields in entries:
                    self._last_id = _text(eid)
                    try:
                        records.append(_record(fields))
                    except (ValueError, KeyError) as exc:
                        log.warning("ignored a malformed app event %s: %s", self._last_id, exc)
                for listener in self._listeners:
                    try:
                        listener(records)
                    except Exception:
                        log.exception("app event listener failed")


def _text(entry_id: Any) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _number(entry_id: Any) -> int:
    """The seq of an app stream entry, whose id is ``0-<seq>``."""
    return int(_text(entry_id).partition("-")[2])


def _record(fields: dict[Any, Any]) -> AppRecord:
    return from_payload(fields[b"a"].decode(), int(fields[b"s"]), fields[b"p"])
