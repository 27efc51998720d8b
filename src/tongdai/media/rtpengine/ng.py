"""The ng control protocol of rtpengine, over UDP.

A request is one datagram ``<cookie> <bencoded dictionary>``; the reply carries the
same cookie. UDP may lose either, so an unanswered request is sent again, with the
same cookie (rtpengine answers a repeated cookie from its cache instead of acting
twice), until ``attempts`` have each waited ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import secrets

from tongdai.media.rtpengine.bencode import BencodeError, Value, decode, encode

__all__ = ["NgClient", "NgError", "pack", "unpack"]

Message = dict[str, Value]


class NgError(Exception):
    """rtpengine refused a command, answered nonsense, or did not answer."""


def pack(cookie: str, message: Message) -> bytes:
    return cookie.encode("ascii") + b" " + encode(message)


def unpack(data: bytes) -> tuple[str, Message]:
    """(cookie, dictionary) of one datagram; ``BencodeError`` if it is not one."""
    cookie, sep, body = data.partition(b" ")
    if not sep or not cookie:
        raise BencodeError("no cookie")
    message = decode(body)
    if not isinstance(message, dict):
        raise BencodeError("the body is not a dictionary")
    return cookie.decode("ascii", "replace"), message


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[Message]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            cookie, message = unpack(data)
        except BencodeError:
            return  # not an answer to anything of ours
        fut = self.waiting.get(cookie)
        if fut is not None and not fut.done():
            fut.set_result(message)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nobody listens there yet; the retries find out.
        pass


class NgClient:
    """Sends ng commands to one rtpengine and returns its answers."""

    def __init__(self, host: str, port: int, *, timeout: float = 0.5,
                 attempts: int = 4) -> None:
        self.host, self.port = host, port
        self.timeout, self.attempts = timeout, attempts
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _Protocol()

    async def start(self) -> None:
        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self._protocol, remote_addr=(self.host, self.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def command(self, name: str, **args: Value) -> Message:
        """Send ``name`` with ``args`` (``call_id`` is sent as ``call-id`` and so on);
        the reply, or ``NgError`` when rtpengine says ``error`` or never answers."""
        if self._transport is None:
            raise NgError("the rtpengine client is not started")
        message: Message = {"command": name}
        message.update({key.replace("_", "-"): value for key, value in args.items()})
        cookie = secrets.token_hex(8)
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._protocol.waiting[cookie] = fut
        datagram = pack(cookie, message)
        try:
            for _ in range(self.attempts):
                self._transport.sendto(datagram)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(fut), self.timeout)
                    break
                except TimeoutError:
                    continue
            else:
                raise NgError(f"rtpengine at {self.host}:{self.port} did not answer "
                              f"{name!r} within {self.timeout * self.attempts:g} s")
        finally:
            self._protocol.waiting.pop(cookie, None)
            fut.cancel()
        if reply.get("result") == "error":
            raise NgError(f"rtpengine refused {name!r}: {reply.get('error-reason', '?')!s}")
        return reply
