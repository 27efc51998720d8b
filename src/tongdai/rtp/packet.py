"""RTP and RTCP packet recognition (RFC 3550, RFC 5761, RFC 4733), pure.

Nothing here does I/O or reads a clock. Every parser takes the datagram bytes as they
came off the socket and answers ``None`` for anything malformed: a relay must survive
whatever a peer (or an attacker) sends, so there is no exception path to forget.

The relay itself never parses: it forwards bytes untouched. Parsing happens only for
recording (``rtp_fields``, off the event loop) and in tests and tools.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "PT_PCMA",
    "PT_PCMU",
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "RtcpHeader",
    "RtpHeader",
    "TelephoneEvent",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp",
    "parse_telephone_event",
    "rtp_fields",
]

# RFC 3551 §6 static payload types.
PT_PCMU = 0
PT_PCMA = 8

# RFC 3550 §12.1 RTCP packet types.
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

_FIXED = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_RTCP = struct.Struct("!BBH")  # V/P/count, packet type, length in 32-bit words - 1
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpHeader:
    """The RFC 3550 §5.1 fixed header, plus where the payload lies in the datagram."""

    version: int
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload_offset: int
    payload_end: int

    def payload(self, data: bytes) -> bytes:
        """The payload of ``data`` (the datagram this header was parsed from)."""
        return data[self.payload_offset : self.payload_end]


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpHeader:
    """One RTCP packet of a compound datagram (RFC 3550 §6.4-6.7)."""

    packet_type: int
    count: int
    ssrc: int
    offset: int
    length: int  # bytes, header included


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 named telephone event (a DTMF digit is event 0-15)."""

    event: int
    end: bool
    volume: int
    duration: int


def rtp_fields(data: bytes) -> tuple[int, int, int, int, int, int] | None:
    """``(payload_type, sequence, timestamp, ssrc, payload_offset, payload_end)``.

    The allocation-light form of ``parse_rtp`` for loops over many packets; ``None``
    when ``data`` is not a well-formed RTP packet or is RTCP (RFC 5761 §4).
    """
    n = len(data)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != 2 or 192 <= b1 <= 223:
        return None
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        # RFC 3550 §5.3.1: 16-bit profile id, 16-bit length in 32-bit words.
        if start + 4 > n:
            return None
        start += 4 + 4 * _U16.unpack_from(data, start + 2)[0]
    end = n
    if b0 & 0x20:
        # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
        pad = data[n - 1]
        if pad == 0:
            return None
        end = n - pad
    if start > end:
        return None
    return b1 & 0x7F, seq, ts, ssrc, start, end


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse an RTP packet's fixed header; ``None`` if malformed or RTCP."""
    fields = rtp_fields(data)
    if fields is None:
        return None
    pt, seq, ts, ssrc, start, end = fields
    b0, b1 = data[0], data[1]
    cc = b0 & 0x0F
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    return RtpHeader(
        version=2,
        padding=bool(b0 & 0x20),
        extension=bool(b0 & 0x10),
        csrc_count=cc,
        marker=bool(b1 & 0x80),
        payload_type=pt,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        payload_offset=start,
        payload_end=end,
    )


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: version 2 and a second octet in 192-223.

    Those octets are RTCP packet types; as RTP they would be payload types 64-95
    with the marker bit set, which RFC 5761 forbids for multiplexed sessions.
    """
    return len(data) >= 4 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


def parse_rtcp(data: bytes) -> list[RtcpHeader] | None:
    """Walk a compound RTCP datagram (RFC 3550 §6.1); ``None`` if malformed.

    Checks what RFC 3550 Appendix A.2 asks of a receiver: version 2 throughout, the
    lengths add up exactly to the datagram, and only the last packet has padding.
    """
    n = len(data)
    if n < 4:
        return None
    packets: list[RtcpHeader] = []
    off = 0
    while off < n:
        if off + 4 > n:
            return None
        b0, pt, words = _RTCP.unpack_from(data, off)
        size = 4 * (words + 1)
        if b0 >> 6 != 2 or not 192 <= pt <= 223 or off + size > n:
            return None
        if b0 & 0x20 and off + size != n:
            return None
        ssrc = _U32.unpack_from(data, off + 4)[0] if size >= 8 else 0
        packets.append(RtcpHeader(packet_type=pt, count=b0 & 0x1F, ssrc=ssrc, offset=off,
                                  length=size))
        off += size
    return packets


def parse_telephone_event(payload: bytes) -> TelephoneEvent | None:
    """Decode an RFC 4733 §2.3 event payload (the PT comes from the SDP's rtpmap).

    Several events may be stacked in one payload (§2.5.1.3, redundancy); only the
    first is decoded, which is the one a relay or recorder would care about.
    """
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F,
                          duration=duration)
