"""rtpengine's ng protocol: the bencode codec, the datagram framing, and the client's
retransmission, against a stand-in rtpengine on a real loopback socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest

from tongdai.media.rtpengine.bencode import BencodeError, Value, decode, encode
from tongdai.media.rtpengine.ng import Message, NgClient, NgError, pack, unpack


@pytest.mark.parametrize(("value", "wire"), [
    (0, b"i0e"),
    (-42, b"i-42e"),
    (True, b"i1e"),
    ("", b"0:"),
    ("spam", b"4:spam"),
    ("gọi", b"5:g\xe1\xbb\x8di"),
    (b"\x00\xff", b"2:\x00\xff"),
    ([1, "a", []], b"li1e1:alee"),
    ({"sdp": "v=0", "call-id": "x", "flags": ["port latching"]},
     b"d7:call-id1:x5:flagsl13:port latchinge3:sdp3:v=0e"),
])
def test_encodes_as_the_spec_says(value: Value, wire: bytes) -> None:
    assert encode(value) == wire


def test_round_trip() -> None:
    message: Value = {"command": "offer", "n": -7, "list": [{"a": ["b", 3]}, "", 0],
                      "text": "Tổng đài", "raw": "\udcff"}
    assert decode(encode(message)) == message


@pytest.mark.parametrize("wire", [
    b"", b"i12", b"i-0e", b"i012e", b"iabe", b"5:abc", b"l", b"d1:ae", b"di1ei2ee",
    b"x", b"i1ei2e", b"l" * 40 + b"e" * 40,
])
def test_refuses_what_is_not_one_value(wire: bytes) -> None:
    with pytest.raises(BencodeError):
        decode(wire)


def test_cannot_encode_other_types() -> None:
    with pytest.raises(TypeError, match="float"):
        encode(cast(Value, 1.5))


def test_framing() -> None:
    datagram = pack("5b6e1f", {"command": "ping"})
    assert datagram == b"5b6e1f d7:command4:pinge"
    assert unpack(datagram) == ("5b6e1f", {"command": "ping"})
    for junk in (b"nocookie", b" d1:ai1ee", b"c1 li1ee"):
        with pytest.raises(BencodeError):
            unpack(junk)


class FakeRtpengine(asyncio.DatagramProtocol):
    """Answers ng commands; ``drop`` datagrams are ignored first (lost on the way)."""

    def __init__(self, drop: int = 0) -> None:
        self.drop = drop
        self.cookies: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        cookie, message = unpack(data)
        self.cookies.append(cookie)
        if self.drop:
            self.drop -= 1
            return
        reply: Message = {"result": "pong"} if message["command"] == "ping" else \
            {"result": "error", "error-reason": "Unknown call-id"}
        assert self.transport is not None
        self.transport.sendto(b"someone-else " + encode({"result": "ok"}), addr)
        self.transport.sendto(pack(cookie, reply), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def fake(drop: int = 0) -> FakeRtpengine:
    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: FakeRtpengine(drop), local_addr=("127.0.0.1", 0))
    return proto


@pytest.fixture
async def server() -> AsyncIterator[FakeRtpengine]:
    proto = await fake(drop=2)
    yield proto
    assert proto.transport is not None
    proto.transport.close()


async def test_a_lost_request_is_sent_again_with_its_cookie(server: FakeRtpengine) -> None:
    client = NgClient("127.0.0.1", server.port, timeout=0.05, attempts=4)
    await client.start()
    assert await client.command("ping") == {"result": "pong"}
    assert len(server.cookies) == 3 and len(set(server.cookies)) == 1
    # rtpengine's error is an NgError that says what rtpengine said
    with pytest.raises(NgError, match=r"'delete'.*Unknown call-id"):
        await client.command("delete", call_id="nope", delete_delay=0)
    client.close()


async def test_no_answer_is_an_error_after_every_attempt() -> None:
    silent = await fake(drop=10)
    client = NgClient("127.0.0.1", silent.port, timeout=0.05, attempts=3)
    await client.start()
    started = time.monotonic()
    with pytest.raises(NgError, match=r"did not answer 'ping' within 0.15 s"):
        await client.command("ping")
    assert time.monotonic() - started >= 0.15
    assert len(silent.cookies) == 3
    client.close()
    assert silent.transport is not None
    silent.transport.close()


async def test_a_client_not_started_says_so() -> None:
    with pytest.raises(NgError, match="not started"):
        await NgClient("127.0.0.1", 9).command("ping")


def test_public_surface() -> None:
    import tongdai.media.rtpengine as package

    assert sorted(package.__all__) == ["MediaFeatureUnavailable", "NgClient", "NgError",
                                       "RtpengineEngine", "RtpengineSession"]
    for name in package.__all__:
        assert getattr(package, name) is not None
