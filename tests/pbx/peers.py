"""Bare SIP peers for in-process tests: a UDP or TCP socket that sends text and reads
parsed messages, so a test can play a carrier, a phone or an attacker byte by byte."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from tongdai.sip import digest
from tongdai.sip.message import Request, Response, make_response, serialize
from tongdai.sip.parser import StreamFramer, parse_message

Message = Request | Response
Pred = Callable[[Message], bool]


def sip_text(text: str) -> bytes:
    """A message written with ``\\n`` line ends, with Content-Length filled in."""
    head, _, body = text.partition("\n\n")
    head = head.replace("\n", "\r\n")
    raw = body.replace("\n", "\r\n").encode()
    return head.encode() + f"\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw


class UdpPeer:
    def __init__(self, server_port: int, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.server = ("127.0.0.1", server_port)
        self.inbox: list[Message] = []

    async def send(self, data: bytes | Message) -> None:
        raw = data if isinstance(data, bytes) else serialize(data)
        await asyncio.get_running_loop().sock_sendto(self.sock, raw, self.server)

    async def _read(self, wait: float) -> Message | None:
        loop = asyncio.get_running_loop()
        try:
            raw = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), wait)
        except TimeoutError:
            return None
        return parse_message(raw)

    async def recv(self, pred: Pred | None = None, wait: float = 3.0) -> Message:
        """The next message (skipping ones ``pred`` rejects); fails after ``wait``."""
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            msg = await self._read(left)
            if msg is None:
                break
            self.inbox.append(msg)
            if pred is None or pred(msg):
                return msg
        raise AssertionError(f"nothing matching arrived in {wait}s")

    async def collect(self, seconds: float) -> list[Message]:
        """Everything that arrives within ``seconds``."""
        out: list[Message] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            msg = await self._read(left)
            if msg is not None:
                out.append(msg)
        self.inbox += out
        return out

    async def final(self, wait: float = 3.0) -> Response:
        msg = await self.recv(lambda m: isinstance(m, Response) and m.status >= 200, wait)
        assert isinstance(msg, Response)
        return msg

    async def answer(self, req: Request, status: int, *, to_tag: str = "",
                     body: bytes = b"", contact: str = "") -> Response:
        resp = make_response(req, status, to_tag=to_tag or None, body=body,
                             content_type="application/sdp" if body else None)
        if contact:
            resp.headers.add("contact", contact)
        await self.send(resp)
        return resp

    def close(self) -> None:
        self.sock.close()


class TcpPeer:
    """One TCP connection to tongdai, optionally from a chosen local port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = StreamFramer()
        self.queue: list[Message] = []

    @classmethod
    async def connect(cls, server_port: int, local_port: int = 0) -> TcpPeer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_port))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server_port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @property
    def port(self) -> int:
        return int(self.writer.get_extra_info("sockname")[1])

    async def send(self, data: bytes | Message) -> None:
        self.writer.write(data if isinstance(data, bytes) else serialize(data))
        await self.writer.drain()

    async def recv(self, pred: Pred | None = None, wait: float = 3.0) -> Message:
        end = time.monotonic() + wait
        while True:
            while self.queue:
                msg = self.queue.pop(0)
                if pred is None or pred(msg):
                    return msg
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing matching arrived in {wait}s")
            try:
                data = await asyncio.wait_for(self.reader.read(65535), left)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError("tongdai closed the connection")
            self.queue += [parse_message(m) for m in self.framer.feed(data)]

    async def final(self, wait: float = 3.0) -> Response:
        msg = await self.recv(lambda m: isinstance(m, Response) and m.status >= 200, wait)
        assert isinstance(msg, Response)
        return msg

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


_REGISTER = """REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKreg{n}{user};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=r{n}
To: <sip:{user}@127.0.0.1>
Call-ID: reg-{user}-{port}
CSeq: {n} REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: 600
{auth}
"""


async def register(peer: UdpPeer, user: str, password: str) -> None:
    """Register ``user`` from ``peer`` with digest (qop=auth), as a phone does."""

    def text(n: int, auth: str) -> bytes:
        return sip_text(_REGISTER.format(
            port=peer.port, n=n, user=user, auth=f"Authorization: {auth}" if auth else "",
        ).replace("\n\n\n", "\n\n"))

    await peer.send(text(1, ""))
    chal = await peer.final()
    assert chal.status == 401, chal.status
    auth = digest.authorization(chal.headers.get("www-authenticate") or "",
                                method="REGISTER", uri="sip:127.0.0.1", username=user,
                                password=password, cnonce="c0ffee")
    assert auth is not None
    await peer.send(text(2, auth))
    ok = await peer.final()
    assert ok.status == 200, ok.status
