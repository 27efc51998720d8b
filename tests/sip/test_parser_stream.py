"""StreamFramer: RFC 3261 §18.3 framing of TCP streams and RFC 5626 keep-alives."""

from __future__ import annotations

import pytest
from test_parser_samples import (
    ASTERISK_OPTIONS,
    BARESIP_REGISTER,
    COMPACT_REGISTER,
    PJSIP_200,
    SIPP_INVITE,
    msg,
)

from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.message import Request
from tongdai.sip.parser import FramingError, StreamFramer, parse_message

STREAM = [BARESIP_REGISTER, SIPP_INVITE, PJSIP_200, ASTERISK_OPTIONS, COMPACT_REGISTER]
HEAD = (
    "INFO sip:bob@example.com SIP/2.0",
    "Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-s1",
    "From: <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>;tag=b1",
    "Call-ID: stream-1",
    "CSeq: 3 INFO",
)


def test_messages_in_one_chunk() -> None:
    f = StreamFramer()
    assert f.feed(b"".join(STREAM)) == STREAM
    assert f.buffered == 0


def test_byte_by_byte() -> None:
    f = StreamFramer()
    out: list[bytes] = []
    for b in b"".join(STREAM):
        out += f.feed(bytes([b]))
    assert out == STREAM


def test_a_body_with_an_empty_line_is_framed_by_content_length() -> None:
    body = b"--boundary\r\n\r\nv=0\r\n\r\n--boundary--\r\n"
    m = msg(*HEAD, body=body, length=str(len(body)))
    f = StreamFramer()
    assert f.feed(m + m[:10]) == [m]
    assert f.feed(m[10:]) == [m]
    assert parse_message(m).body == body


def test_compact_and_lf_only_content_length() -> None:
    m = msg(*HEAD, "l: 4", body=b"abcd").replace(b"\r\n", b"\n").replace(b"abcd", b"") + b"abcd"
    f = StreamFramer()
    assert f.feed(m + BARESIP_REGISTER) == [m, BARESIP_REGISTER]
    assert parse_message(m).body == b"abcd"


def test_pings_are_counted_and_not_returned() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n" + BARESIP_REGISTER + b"\r\n\r\n\r\n\r\n") == [BARESIP_REGISTER]
    assert f.take_pings() == 3
    assert f.take_pings() == 0


def test_a_ping_split_across_reads() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n") == []
    assert f.take_pings() == 0
    assert f.feed(b"\r") == []
    assert f.feed(b"\n") == []
    assert f.take_pings() == 1


def test_a_lone_crlf_pong_is_skipped() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n" + ASTERISK_OPTIONS) == [ASTERISK_OPTIONS]
    assert f.take_pings() == 0


def test_missing_content_length_closes_with_400() -> None:
    f = StreamFramer()
    bad = msg(*HEAD)
    with pytest.raises(FramingError) as info:
        f.feed(BARESIP_REGISTER + bad)
    exc = info.value
    assert exc.status == 400 and exc.messages == [BARESIP_REGISTER]
    assert isinstance(exc.request, Request) and exc.request.call_id == "stream-1"
    with pytest.raises(LocalProtocolError):
        f.feed(b"more")


def test_missing_content_length_on_a_response_is_dropped() -> None:
    resp = msg("SIP/2.0 200 OK", *HEAD[1:])
    with pytest.raises(FramingError) as info:
        StreamFramer().feed(resp)
    assert info.value.status is None and info.value.request is None


def test_garbage_stream_fails_without_an_answer() -> None:
    with pytest.raises(FramingError) as info:
        StreamFramer().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert info.value.status is None


@pytest.mark.parametrize("value", ["ten", "1, 2", "-5"])
def test_malformed_content_length(value: str) -> None:
    with pytest.raises(FramingError) as info:
        StreamFramer().feed(msg(*HEAD, length=value))
    assert info.value.status == 400


def test_conflicting_content_lengths() -> None:
    with pytest.raises(FramingError) as info:
        StreamFramer().feed(msg(*HEAD, "Content-Length: 1", length="2"))
    assert info.value.status == 400


def test_declared_length_above_the_limit_is_513() -> None:
    f = StreamFramer(max_size=1000)
    with pytest.raises(FramingError) as info:
        f.feed(msg(*HEAD, length="5000"))
    assert info.value.status == 513 and info.value.request is not None


def test_endless_header_section_is_513() -> None:
    f = StreamFramer(max_size=1000)
    head = ("\r\n".join(HEAD) + "\r\n").encode()
    assert f.feed(head) == []
    with pytest.raises(FramingError) as info:
        for _ in range(100):
            f.feed(b"X-Filler: " + b"y" * 50 + b"\r\n")
    assert info.value.status == 513 and info.value.request is not None


def test_endless_garbage_is_dropped() -> None:
    f = StreamFramer(max_size=1000)
    with pytest.raises(FramingError) as info:
        f.feed(b"z" * 1001)
    assert info.value.status is None


def test_a_message_exactly_at_the_limit_passes() -> None:
    f = StreamFramer(max_size=len(SIPP_INVITE))
    assert f.feed(SIPP_INVITE) == [SIPP_INVITE]


def test_every_split_point_of_a_message() -> None:
    # Covers a terminator straddling two reads, whatever the offset.
    m = ASTERISK_OPTIONS
    for i in range(1, len(m)):
        f = StreamFramer()
        assert f.feed(m[:i]) == []
        assert f.feed(m[i:] + m) == [m, m]


def test_a_large_header_section_in_small_reads() -> None:
    head = ("\r\n".join(HEAD) + "\r\n").encode() + b"X-Pad: " + b"p" * 60_000
    whole = head + b"\r\nContent-Length: 0\r\n\r\n"
    f = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(whole), 7):
        out += f.feed(whole[i:i + 7])
    assert out == [whole]


@pytest.mark.parametrize("line", ["CONTENT-LENGTH: 4", "content-Length :4", "L:\t4 ", "l:4"])
def test_content_length_spellings(line: str) -> None:
    m = msg(*HEAD, line, body=b"abcd")
    assert StreamFramer().feed(m + m) == [m, m]
