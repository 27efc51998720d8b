from __future__ import annotations

import ast
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import tongdai.rtp
from tongdai.rtp import packet
from tongdai.rtp.packet import (
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
    rtp_fields,
)


def header(*, p: int = 0, x: int = 0, cc: int = 0, m: int = 0, pt: int = 0, seq: int = 1,
           ts: int = 2, ssrc: int = 3) -> bytes:
    return struct.pack("!BBHII", 0x80 | p << 5 | x << 4 | cc, m << 7 | pt, seq, ts, ssrc)


def test_fixed_header_fields() -> None:
    data = header(m=1, pt=8, seq=65535, ts=0xFFFFFFFF, ssrc=0xDEADBEEF) + b"\xd5" * 160
    h = parse_rtp(data)
    assert h is not None
    assert (h.version, h.padding, h.extension, h.csrc_count) == (2, False, False, 0)
    assert (h.marker, h.payload_type, h.sequence) == (True, 8, 65535)
    assert (h.timestamp, h.ssrc) == (0xFFFFFFFF, 0xDEADBEEF)
    assert (h.payload_offset, h.payload_end) == (12, 172)
    assert h.payload(data) == b"\xd5" * 160
    assert rtp_fields(data) == (8, 65535, 0xFFFFFFFF, 0xDEADBEEF, 12, 172)


def test_empty_payload_is_valid() -> None:
    h = parse_rtp(header())
    assert h is not None and h.payload(header()) == b""


def test_csrcs_are_skipped() -> None:
    data = header(cc=2) + struct.pack("!II", 7, 9) + b"abc"
    h = parse_rtp(data)
    assert h is not None
    assert h.csrcs == (7, 9)
    assert h.payload(data) == b"abc"


def test_header_extension_is_skipped() -> None:
    # RFC 8285 one-byte header extension: profile 0xBEDE, length 1 word.
    data = header(x=1) + struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00" + b"pay"
    h = parse_rtp(data)
    assert h is not None and h.extension
    assert h.payload(data) == b"pay"


def test_padding_is_stripped() -> None:
    data = header(p=1) + b"voice" + b"\x00\x00\x00\x04"
    h = parse_rtp(data)
    assert h is not None and h.padding
    assert h.payload(data) == b"voice"


def test_csrc_extension_and_padding_together() -> None:
    data = (header(p=1, x=1, cc=1) + struct.pack("!I", 5) + struct.pack("!HH", 0x1000, 0)
            + b"xy" + b"\x02")
    h = parse_rtp(data)
    assert h is not None
    assert h.payload(data) == b"x"


def test_malformed_packets_are_none() -> None:
    bad = [
        b"",
        header()[:11],  # shorter than the fixed header
        b"\x40" + header()[1:],  # version 1
        b"\x00" + header()[1:],  # version 0 (e.g. STUN)
        header(cc=3) + b"\x00" * 8,  # CSRC list runs past the end
        header(x=1) + b"\xbe\xde",  # extension header cut short
        header(x=1) + struct.pack("!HH", 0xBEDE, 5) + b"\x00" * 4,  # extension too long
        header(p=1) + b"ab\x00",  # padding count zero
        header(p=1) + b"ab\x09",  # more padding than payload
    ]
    for data in bad:
        assert parse_rtp(data) is None, data
        assert rtp_fields(data) is None, data


def sr(ssrc: int = 0x11223344) -> bytes:
    # Sender report without report blocks: header + SSRC + 20 bytes of sender info.
    return struct.pack("!BBHI", 0x80, 200, 6, ssrc) + b"\x00" * 20


def sdes(ssrc: int = 0x11223344) -> bytes:
    item = b"\x01\x03abc\x00"  # CNAME "abc", end of list, padded to a word
    body = struct.pack("!I", ssrc) + item + b"\x00" * 2
    return struct.pack("!BBH", 0x81, 202, len(body) // 4) + body


def test_rtcp_compound_packet() -> None:
    data = sr() + sdes()
    assert is_rtcp(data)
    assert parse_rtp(data) is None
    packets = parse_rtcp(data)
    assert packets is not None
    assert [(p.packet_type, p.ssrc, p.offset) for p in packets] == [
        (200, 0x11223344, 0), (202, 0x11223344, 28)]
    assert sum(p.length for p in packets) == len(data)


def test_rtcp_malformed() -> None:
    assert parse_rtcp(sr()[:-1]) is None  # length field says more than there is
    assert parse_rtcp(sr() + b"\x80") is None  # trailing junk
    assert parse_rtcp(b"\x00\xc8\x00\x00") is None  # version 0
    padded_first = bytes([0xA0]) + sr()[1:] + sdes()  # padding bit not on the last packet
    assert parse_rtcp(padded_first) is None
    assert parse_rtcp(header() + b"x" * 20) is None  # RTP is not RTCP


def test_rfc5761_demultiplexing() -> None:
    # RFC 5761 §4: second octet 192-223 is RTCP; as RTP that would be PT 64-95 with
    # the marker bit set, which a multiplexing sender must not use.
    assert is_rtcp(sr())
    assert is_rtcp(header(m=1, pt=72))
    assert not is_rtcp(header(m=1, pt=0))
    assert not is_rtcp(header(pt=101))
    assert not is_rtcp(b"\x80\xc8")


def test_telephone_event() -> None:
    # RFC 4733 §2.3: event 5, end bit, volume 10, duration 800.
    ev = parse_telephone_event(bytes([5, 0x80 | 10]) + struct.pack("!H", 800))
    assert ev is not None
    assert (ev.event, ev.end, ev.volume, ev.duration) == (5, True, 10, 800)
    ev = parse_telephone_event(bytes([11, 0x07, 0, 160]))
    assert ev is not None and (ev.event, ev.end, ev.volume) == (11, False, 7)
    assert parse_telephone_event(b"\x05\x80\x03") is None


@given(st.binary(max_size=80))
def test_parsers_never_raise(data: bytes) -> None:
    h = parse_rtp(data)
    if h is not None:
        assert 12 <= h.payload_offset <= h.payload_end <= len(data)
    parse_rtcp(data)
    is_rtcp(data)
    parse_telephone_event(data)


@given(pt=st.integers(0, 127).filter(lambda v: not 64 <= v <= 95), seq=st.integers(0, 65535),
       ts=st.integers(0, 2**32 - 1), ssrc=st.integers(0, 2**32 - 1), payload=st.binary())
def test_round_trip(pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> None:
    data = header(pt=pt, seq=seq, ts=ts, ssrc=ssrc) + payload
    assert rtp_fields(data) == (pt, seq, ts, ssrc, 12, 12 + len(payload))


def test_pure_modules_do_no_io() -> None:
    # STYLE habit 1: the packet codec and G.711 never touch sockets, threads or clocks.
    for module in (packet, tongdai.rtp.g711):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {str(node.module).split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not imported & {"asyncio", "socket", "time", "threading", "selectors"}, module
