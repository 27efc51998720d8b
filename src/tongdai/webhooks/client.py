"""The HTTP/1.1 client of webhook deliveries: POST only, on h11 over asyncio streams.

A delivery needs little of HTTP: one POST, its status code, keep-alive. A general
client (httpx) spent about 17 times the CPU of this one per request, which capped the
sender near 60 deliveries/s on one core. What it does:

- Keep-alive connections pooled per (scheme, address, port, TLS name), at most
  ``max_per_origin`` each; a connection is used again only when h11 says both sides
  are DONE (no ``Connection: close``, the answer read to its end).
- TLS with SNI and certificate and host name verification (the context given, by
  default ``ssl.create_default_context()``).
- A connect timeout and a total timeout (pool wait, connect, request and answer).
- At most ``max_answer`` bytes of an answer are read; past that the connection is
  closed, the status still counts. Redirects are not followed: a 3xx is its status.

The URL's host is the address connected to as given (the webhook guard puts the
checked address there); the name goes in ``Host`` and in TLS as ``server_name``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11

MAX_ANSWER = 64 * 1024
# An idle connection older than this is closed rather than used: servers drop idle
# keep-alive connections after a few seconds (uvicorn: 5 s, nginx: 75 s).
IDLE_EXPIRY = 4.0
READ_SIZE = 65536

Header = tuple[str, str]


class HttpError(Exception):
    """A request that got no answer to count; the message says why in a sentence."""


class ConnectError(HttpError):
    """No connection (refused, unreachable, TLS handshake or certificate failed)."""


class Timeout(HttpError):
    """No complete answer within the total timeout."""


class ProtocolError(HttpError):
    """The peer broke HTTP/1.1 or closed the connection before its answer."""


@dataclass(frozen=True, slots=True)
class _Where:
    tls: bool
    address: str
    port: int
    path: str
    authorization: str | None  # from user:password@ in the URL


@functools.lru_cache(maxsize=1024)
def _where(url: str) -> _Where:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return _Where(tls=tls, address=parts.hostname, port=parts.port or (443 if tls else 80),
                  path=path, authorization=auth)


class _Stale(Exception):
    """A reused connection failed before any byte of an answer: the peer had closed it
    while it was idle. The request is sent again on a new connection."""


class _Connection:
    __slots__ = ("http", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def usable(self, oldest: float) -> bool:
        return (self.idle_since >= oldest and not self.reader.at_eof()
                and not self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: h11.Request, body: bytes, *, reused: bool,
                       max_answer: int) -> tuple[int, bool]:
        """Send one request, read its answer: (status, whether to keep the connection)."""
        http = self.http
        answered = False
        try:
            self.writer.write(http.send(request) + http.send(h11.Data(data=body))
                              + http.send(h11.EndOfMessage()))
            await self.writer.drain()
            status, seen = 0, 0
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    chunk = await self.reader.read(READ_SIZE)
                    answered = answered or bool(chunk)
                    http.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    seen += len(event.data)
                    if seen > max_answer:
                        return status, False  # the rest is not read
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("the connection closed")
                # h11.InformationalResponse (1xx): the final answer follows.
        except (h11.RemoteProtocolError, OSError) as exc:
            if reused and not answered:
                raise _Stale from exc
            if isinstance(exc, OSError):
                raise ProtocolError(f"the connection failed ({_reason(exc)})") from None
            raise ProtocolError(f"the server broke HTTP/1.1 ({exc})") from None
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            return status, True
        return status, False  # Connection: close, or an answer delimited by the close


class _Pool:
    __slots__ = ("idle", "slots", "users")

    def __init__(self, cap: int) -> None:
        self.slots = asyncio.Semaphore(cap)
        self.idle: deque[_Connection] = deque()
        self.users = 0  # requests in flight or waiting for a slot

    def take(self, oldest: float) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()  # the most recently used: the likeliest alive
            if conn.usable(oldest):
                return conn
            conn.close()
        return None

    def expire(self, oldest: float) -> None:
        while self.idle and self.idle[0].idle_since < oldest:
            self.idle.popleft().close()


class Client:
    """POSTs with keep-alive; see the module docstring for what it does and does not."""

    def __init__(self, *, user_agent: str, tls: ssl.SSLContext | None = None,
                 max_per_origin: int = 8, max_answer: int = MAX_ANSWER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._user_agent = user_agent
        self._tls = tls if tls is not None else ssl.create_default_context()
        self._cap = max_per_origin
        self._max_answer = max_answer
        self._clock = clock
        self._pools: dict[tuple[bool, str, int, str], _Pool] = {}
        self._next_sweep = 0.0

    async def post(self, url: str, body: bytes, *, host: str, server_name: str,
                   headers: Sequence[Header] = (), within: float,
                   connect_within: float) -> int:
        """POST ``body`` to ``url`` (its host: the address to connect to) and return
        the answer's status code. ``host`` is sent as Host, ``server_name`` is the TLS
        name (SNI, and the name the certificate must carry). The whole request takes at
        most ``within`` seconds, its connection ``connect_within``. Raises ``HttpError``."""
        where = _where(url)
        request = self._request(where, host, body, headers)
        key = (where.tls, where.address, where.port, server_name if where.tls else "")
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self._cap)
        pool.users += 1
        try:
            async with asyncio.timeout(within), pool.slots:
                return await self._send(pool, where, server_name, request, body,
                                        connect_within)
        except TimeoutError:
            raise Timeout(f"no answer within {within:g} s") from None
        finally:
            pool.users -= 1
            self._sweep()

    async def aclose(self) -> None:
        """Close the idle connections (requests in flight close theirs when done)."""
        for pool in self._pools.values():
            pool.expire(float("inf"))
        self._pools.clear()

    def _request(self, where: _Where, host: str, body: bytes,
                 headers: Sequence[Header]) -> h11.Request:
        head = [("Host", host), ("User-Agent", self._user_agent),
                ("Content-Length", str(len(body)))]
        if where.authorization is not None:
            head.append(("Authorization", where.authorization))
        head.extend(headers)
        return h11.Request(method="POST", target=where.path, headers=head)

    async def _send(self, pool: _Pool, where: _Where, server_name: str,
                    request: h11.Request, body: bytes, connect_timeout: float) -> int:
        conn = pool.take(self._clock() - IDLE_EXPIRY)
        while True:
            reused = conn is not None
            if conn is None:
                conn = await self._connect(where, server_name, connect_timeout)
            try:
                status, keep = await conn.exchange(request, body, reused=reused,
                                                   max_answer=self._max_answer)
            except _Stale:
                conn.close()
                conn = None  # once more, on a new connection
                continue
            except BaseException:
                conn.close()  # a cancellation too: the exchange is cut in the middle
                raise
            if keep:
                conn.idle_since = self._clock()
                pool.idle.append(conn)
            else:
                conn.close()
            return status

    async def _connect(self, where: _Where, server_name: str, within: float) -> _Connection:
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(
                    where.address, where.port, ssl=self._tls if where.tls else None,
                    server_hostname=server_name if where.tls else None)
        except TimeoutError:
            raise ConnectError(f"no connection to {where.address} port {where.port} "
                               f"within {within:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(f"the TLS certificate of {server_name} was refused "
                               f"({exc.verify_message})") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"no connection to {where.address} port {where.port} "
                               f"({_reason(exc)})") from None
        return _Connection(reader, writer)

    def _sweep(self) -> None:
        """Now and then, close idle connections past their time in every pool and drop
        the empty pools (of webhooks since removed or moved)."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + IDLE_EXPIRY
        for key, pool in tuple(self._pools.items()):
            pool.expire(now - IDLE_EXPIRY)
            if not pool.idle and not pool.users:
                del self._pools[key]


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
