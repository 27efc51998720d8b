"""A bus shared by several tongdai processes, over Redis pub/sub.

Every bus keeps one subscriber connection on the channel ``<prefix>:events`` and fans
what arrives out to its local subscriptions. Events published here travel to Redis
and come back through that same connection, so local and remote subscribers see
every event in the order Redis relayed it.

A publish never waits on Redis: the event is queued and one writer task sends the
queue in order, pipelined, so one publisher's events keep their order. While Redis
is unreachable the writer keeps retrying; an event still unsent ``publish_retry``
seconds after it was published is dropped, logged and counted in ``dropped``. A
batch cut short by a broken connection is sent again, so a rare duplicate is
possible (the Open API hub already drops repeated call events).

Delivery is at most once, as with Redis pub/sub itself: what is published while a
process's subscriber connection is down never reaches that process. The reader
notices a dead connection (an error, or no answer to a PING within
``ping_interval``) and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import secrets
from collections import deque
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tongdai.background import stop_task
from tongdai.bus.events import Event
from tongdai.bus.memory import Subscription

log = logging.getLogger("tongdai.bus.redis")

_BATCH = 256  # events per pipelined round trip
_BACKOFF_FIRST = 0.1
_BACKOFF_CAP = 2.0
_NETWORK_ERRORS = (RedisError, OSError)


class _Stale(Exception):
    """The subscriber connection stopped answering."""


def encode_event(event: Event, *, origin: str = "", seq: int = 0) -> bytes:
    """The JSON message for ``event``; ``origin`` and ``seq`` name its publisher."""
    return json.dumps(
        {
            "type": event.type, "app_id": event.app_id, "sip_users": list(event.sip_users),
            "ts": event.ts, "data": event.data, "origin": origin, "seq": seq,
        },
        separators=(",", ":"), ensure_ascii=False, default=str,
    ).encode()


def decode_event(raw: bytes | str) -> tuple[Event, str, int]:
    """Parse a message from the channel into (event, origin, seq); ValueError if malformed.

    ``origin`` and ``seq`` are optional so that other tools may publish events too.
    """
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    kind, app_id, users = obj.get("type"), obj.get("app_id"), obj.get("sip_users")
    ts, data = obj.get("ts"), obj.get("data", {})
    origin, seq = obj.get("origin", ""), obj.get("seq", 0)
    if not isinstance(kind, str) or not isinstance(app_id, str):
        raise ValueError("type and app_id must be strings")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ValueError("sip_users must be a list of strings")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ValueError("ts must be a number")
    if not isinstance(data, dict):
        raise ValueError("data must be an object")
    if not isinstance(origin, str) or isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError("origin must be a string and seq an integer")
    event = Event(type=kind, app_id=app_id, sip_users=tuple(users), ts=float(ts), data=data)
    return event, origin, seq


def _backoff(failures: int) -> float:
    # Jittered, so that many processes do not reconnect to a restarted Redis in step.
    return min(_BACKOFF_CAP, _BACKOFF_FIRST * 2.0 ** min(failures - 1, 8)) * random.uniform(0.5, 1)


class RedisSubscription(Subscription):
    """A subscription that skips this bus's own events published before it existed."""

    def __init__(self, bus: RedisBus, since: int) -> None:
        super().__init__(bus._subs.discard)
        self._origin = bus.origin
        # This bus's events numbered up to ``since`` were published before we existed.
        self._since = since

    def _deliver(self, event: Event, origin: str, seq: int) -> None:
        if origin == self._origin and seq <= self._since:
            return
        self._put(event)


class RedisBus:
    """Publishes to the subscribers of every process on the same Redis channel.

    ``await start()`` before publishing; ``await close()`` sends what is still queued
    (for at most ``publish_retry`` seconds) and disconnects.
    """

    def __init__(
        self, url: str, *, prefix: str = "tongdai", publish_retry: float = 2.0,
        max_pending: int = 100_000, ping_interval: float = 5.0, connect_timeout: float = 2.0,
    ) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError("The bus channel prefix must be non-empty and contain no spaces.")
        self.channel = f"{prefix}:events"
        self.client_name = f"tongdai-bus:{prefix}"
        self.origin = secrets.token_hex(8)
        self.publish_retry = publish_retry
        self.max_pending = max_pending
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout
        self.dropped = 0
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 6379}"  # never the password
        # redis-py's own retries would hide outages from us: we retry, with backoff.
        self._client: Redis = Redis.from_url(
            url, client_name=self.client_name, retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout,
            socket_keepalive=True,
        )
        self._subs: set[RedisSubscription] = set()
        self._seq = 0
        self._outbox: deque[tuple[float, bytes]] = deque()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._subscribed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._overflowing = False

    # Lifecycle -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the subscriber connection is up and subscribed."""
        return self._subscribed.is_set()

    @property
    def pending(self) -> int:
        """Events published here and not yet sent to Redis."""
        return len(self._outbox)

    async def start(self) -> None:
        """Connect and subscribe; returns once subscribed, or after ``2 * connect_timeout``.

        An unreachable Redis is logged, not raised: the bus keeps reconnecting in the
        background and the PBX runs on meanwhile.
        """
        if self._reader is not None or self._closing:
            return
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop(), name=f"bus-reader:{self.channel}")
        self._writer = loop.create_task(self._write_loop(), name=f"bus-writer:{self.channel}")
        try:
            await asyncio.wait_for(self._subscribed.wait(), self.connect_timeout * 2)
        except TimeoutError:
            log.warning("event bus: Redis at %s is not answering yet; events flow once it is",
                        self._where)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), self.publish_retry)
        await stop_task(self._writer)
        await stop_task(self._reader)
        if self._outbox:
            self._drop(len(self._outbox), "the bus closed before Redis took them")
        await self._client.aclose()

    async def __aenter__(self) -> RedisBus:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Publishing ------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Queue ``event`` for Redis and return at once; never raises on an outage."""
        if self._closing:
            # Late events of a shutting-down PBX (unregistrations, hangups): not news.
            self.dropped += 1
            log.debug("event bus: dropped %s published after close", event.type)
            return
        if self._writer is None:
            raise RuntimeError("RedisBus.publish() was called before start(); await start() first.")
        if len(self._outbox) >= self.max_pending:
            if not self._overflowing:
                self._overflowing = True
                log.warning("event bus: %d events wait for Redis at %s; dropping new ones",
                            len(self._outbox), self._where)
            self.dropped += 1
            return
        self._overflowing = False
        self._seq += 1
        payload = encode_event(event, origin=self.origin, seq=self._seq)
        self._outbox.append((asyncio.get_running_loop().time(), payload))
        self._empty.clear()
        self._wake.set()

    def subscribe(self) -> RedisSubscription:
        sub = RedisSubscription(self, since=self._seq)
        self._subs.add(sub)
        return sub

    def stream(self) -> RedisSubscription:
        return self.subscribe()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        log.warning("event bus: dropped %d event(s): %s", count, why)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            if not self._outbox:
                self._empty.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [payload for _, payload in itertools.islice(self._outbox, _BATCH)]
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for payload in batch:
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("event bus: cannot publish to Redis at %s (%s: %s); retrying",
                                self._where, type(exc).__name__, exc,
                                exc_info=not isinstance(exc, _NETWORK_ERRORS))
                self._drop_stale(loop.time())
                await asyncio.sleep(_backoff(failures))
                continue
            # Only this task removes from the left, so these are the events just sent.
            for _ in batch:
                self._outbox.popleft()
            if failures:
                log.warning("event bus: publishing to Redis at %s again", self._where)
                failures = 0

    def _drop_stale(self, now: float) -> None:
        count = 0
        while self._outbox and now - self._outbox[0][0] >= self.publish_retry:
            self._outbox.popleft()
            count += 1
        if count:
            self._drop(count, f"Redis at {self._where} unreachable for {self.publish_retry}s")

    # Receiving -------------------------------------------------------------

    async def _read_loop(self) -> None:
        failures = 0  # attempts since the subscription was last up
        while True:
            pubsub = self._client.pubsub()
            try:
                problem = await self._listen_until_lost(pubsub)
            finally:
                was_up = self._subscribed.is_set()
                self._subscribed.clear()
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
            failures = 1 if was_up else failures + 1
            if failures == 1:
                # Events published meanwhile are lost to this process: say so once per outage.
                log.warning("event bus: no subscription on Redis at %s (%s); reconnecting",
                            self._where, problem)
            await asyncio.sleep(_backoff(failures))

    async def _listen_until_lost(self, pubsub: PubSub) -> str:
        try:
            await self._listen(pubsub)
        except (*_NETWORK_ERRORS, _Stale) as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            log.exception("event bus: subscriber failed")
            return f"{type(exc).__name__}: {exc}"

    async def _listen(self, pubsub: PubSub) -> NoReturn:
        await pubsub.subscribe(self.channel)
        while True:
            msg = await pubsub.get_message(timeout=self.connect_timeout)
            if msg is None:
                raise _Stale("no answer to SUBSCRIBE")
            if msg["type"] == "subscribe":
                break
        self._subscribed.set()
        log.info("event bus: subscribed to %s on Redis at %s", self.channel, self._where)
        pinged = False
        while True:
            msg = await pubsub.get_message(timeout=self.ping_interval)
            if msg is None:
                # A quiet channel and a silently dead peer look alike until we ask.
                if pinged:
                    raise _Stale("no answer to PING")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if msg["type"] == "message":
                self._dispatch(msg["data"])

    def _dispatch(self, raw: Any) -> None:
        try:
            event, origin, seq = decode_event(raw)
        except ValueError as exc:
            log.warning("event bus: ignored a malformed message on %s: %s", self.channel, exc)
            return
        for sub in tuple(self._subs):
            sub._deliver(event, origin, seq)
