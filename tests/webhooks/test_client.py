"""The webhook HTTP client against a real HTTP/1.1 server on loopback, plain and TLS
(with a certificate from a throwaway CA): keep-alive, Connection: close, timeouts,
long answers, stale connections, pool cap, certificate and name checks, SNI."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tongdai.webhooks.client import Client, ConnectError, ProtocolError, Timeout

from .tls import Authority, authority

UA = "tongdai-webhooks/test"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Answers by path: /ok, /close (Connection: close), /slow (never), /big (1 MiB),
    /flaky (hangs up on the second request of a connection), /hangup, /hold (waits
    for ``release``)."""

    tls: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    closed: int = 0
    seen: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    held: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in tuple(self._writers):
            w.close()
        await self._server.wait_closed()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def until(self, check: str, value: int) -> None:
        while getattr(self, check) < value:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            for n in range(1, 1000):
                if not await self._answer(n, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self.closed += 1
            self.changed.set()

    async def _answer(self, n: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = head[0].split(" ")[1]
        self.seen.append(Seen(path=path, headers=headers, body=body))
        match path:
            case "/close":
                writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                return False
            case "/slow":
                await reader.read()  # until the client gives up
                return False
            case "/big":
                writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n" % (1 << 20))
                writer.write(b"x" * (1 << 20))
            case "/flaky" if n == 2:
                return False
            case "/hangup":
                return False
            case "/hold":
                self.held += 1
                self.changed.set()
                await self.release.wait()
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            case _:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return authority(tmp_path, ["hooks.example.com", "127.0.0.1"])


@pytest.fixture
async def tls_server(ca: Authority) -> AsyncIterator[Server]:
    s = Server(tls=ca.server_context())
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def _post(client: Client, url: str, body: bytes = b"{}", *, host: str = "hooks.test",
                server_name: str = "hooks.test", within: float = 5.0) -> int:
    return await client.post(url, body, host=host, server_name=server_name,
                             headers=[("Content-Type", "application/json")],
                             within=within, connect_within=within)


async def test_keep_alive_reuses_one_connection_and_sends_the_headers(server: Server) -> None:
    client = Client(user_agent=UA)
    try:
        for n in range(3):
            assert await _post(client, server.url(f"/ok?n={n}"), b'{"n": %d}' % n) == 200
    finally:
        await client.aclose()
    assert server.connections == 1
    assert [s.path for s in server.seen] == ["/ok?n=0", "/ok?n=1", "/ok?n=2"]
    first = server.seen[0]
    assert first.body == b'{"n": 0}'
    assert first.headers["host"] == "hooks.test"  # the name, not the address connected to
    assert first.headers["user-agent"] == UA
    assert first.headers["content-length"] == "8"
    assert first.headers["content-type"] == "application/json"
    assert "authorization" not in first.headers


async def test_connection_close_is_honoured(server: Server) -> None:
    client = Client(user_agent=UA)
    try:
        assert await _post(client, server.url("/close")) == 200
        assert await _post(client, server.url("/close")) == 200
    finally:
        await client.aclose()
    assert server.connections == 2


async def test_the_total_timeout_ends_the_request_and_its_connection(server: Server) -> None:
    client = Client(user_agent=UA)
    started = time.monotonic()
    with pytest.raises(Timeout, match=r"no answer within 0\.2 s"):
        await _post(client, server.url("/slow"), within=0.2)
    assert time.monotonic() - started < 2
    await server.until("closed", 1)  # the client closed it: the server saw the end
    await client.aclose()


async def test_a_long_answer_is_cut_off_with_its_connection(server: Server) -> None:
    client = Client(user_agent=UA, max_answer=64 * 1024)
    try:
        assert await _post(client, server.url("/big")) == 201
        assert await _post(client, server.url("/ok")) == 200
    finally:
        await client.aclose()
    assert server.connections == 2  # the first was not kept: its answer was not read


async def test_a_keep_alive_connection_the_server_dropped_is_replaced(server: Server) -> None:
    client = Client(user_agent=UA)
    try:
        assert await _post(client, server.url("/flaky")) == 200
        # The server hangs up on the second request of that connection, unanswered:
        # the request goes again on a new connection, not reported as a failure.
        assert await _post(client, server.url("/flaky")) == 200
    finally:
        await client.aclose()
    assert server.connections == 2
    assert len(server.seen) == 3


async def test_a_new_connection_closed_without_answer_is_an_error(server: Server) -> None:
    client = Client(user_agent=UA)
    with pytest.raises(ProtocolError):
        await _post(client, server.url("/hangup"))
    assert server.connections == 1  # not retried: the connection was new
    await client.aclose()


async def test_a_refused_connection_is_a_connect_error(server: Server) -> None:
    port = server.port
    await server.stop()
    client = Client(user_agent=UA)
    with pytest.raises(ConnectError, match=f"127.0.0.1 port {port}"):
        await _post(client, f"http://127.0.0.1:{port}/ok")
    await client.aclose()
    await server.start()  # for the fixture's stop


async def test_connections_per_origin_are_capped(server: Server) -> None:
    client = Client(user_agent=UA, max_per_origin=2)
    try:
        posts = [asyncio.create_task(_post(client, server.url("/hold"))) for _ in range(5)]
        await server.until("held", 2)
        server.release.set()
        assert await asyncio.gather(*posts) == [204] * 5
    finally:
        await client.aclose()
    assert server.connections == 2


async def test_user_and_password_in_the_url_become_basic_auth(server: Server) -> None:
    client = Client(user_agent=UA)
    try:
        url = f"http://hook%40user:p%3Ass@127.0.0.1:{server.port}/ok"
        assert await _post(client, url) == 200
    finally:
        await client.aclose()
    # base64("hook@user:p:ss")
    assert server.seen[0].headers["authorization"] == "Basic aG9va0B1c2VyOnA6c3M="


async def test_tls_sends_the_name_as_sni_and_verifies_it(ca: Authority, tls_server: Server
                                                          ) -> None:
    client = Client(user_agent=UA, tls=ca.client_context())
    try:
        for _ in range(2):
            status = await _post(client, tls_server.url("/ok", "https"),
                                 host="hooks.example.com", server_name="hooks.example.com")
            assert status == 200
    finally:
        await client.aclose()
    assert tls_server.sni == ["hooks.example.com"]  # one handshake: kept alive
    assert tls_server.seen[0].headers["host"] == "hooks.example.com"


async def test_tls_refuses_a_certificate_for_another_name(ca: Authority, tls_server: Server
                                                          ) -> None:
    client = Client(user_agent=UA, tls=ca.client_context())
    with pytest.raises(ConnectError, match=r"certificate of other\.example\.com was refused"):
        await _post(client, tls_server.url("/ok", "https"), host="other.example.com",
                    server_name="other.example.com")
    await client.aclose()
    assert tls_server.seen == []


async def test_tls_refuses_a_certificate_from_an_unknown_authority(tls_server: Server) -> None:
    client = Client(user_agent=UA)  # the system's CAs: the test CA is not among them
    with pytest.raises(ConnectError, match=r"certificate of hooks\.example\.com was refused"):
        await _post(client, tls_server.url("/ok", "https"), host="hooks.example.com",
                    server_name="hooks.example.com")
    await client.aclose()
    assert tls_server.seen == []


async def test_connections_are_pooled_per_tls_name(ca: Authority, tls_server: Server) -> None:
    # Same address and port, another name: a connection verified for one name is not
    # used for the other.
    client = Client(user_agent=UA, tls=ca.client_context())
    try:
        for name in ("hooks.example.com", "127.0.0.1", "hooks.example.com"):
            status = await _post(client, tls_server.url("/ok", "https"), host=name,
                                 server_name=name)
            assert status == 200
    finally:
        await client.aclose()
    assert tls_server.connections == 2
    with contextlib.suppress(ValueError):  # an IP address is not sent as SNI (RFC 6066 §3)
        tls_server.sni.remove(None)
    assert tls_server.sni == ["hooks.example.com"]
