"""The SDP tongdai shows rtpengine for one leg, and what it reads back. Pure.

tongdai hands rtpengine only a leg's RTP address (the call layer keeps the codecs),
so the SDP offers every payload type a leg may send; rtpengine forwards RTP as it
comes and does not transcode.
"""

from __future__ import annotations

import re

from tongdai.media.rtpengine.bencode import Value

__all__ = ["NG_FLAGS", "PLACEHOLDER", "leg_sdp", "media_address"]

# With every offer and answer: keep rtpengine's ports when a leg's address changes
# (``port latching``), no ICE, and rtpengine's own origin and connection lines.
NG_FLAGS: dict[str, Value] = {
    "flags": ["port latching"], "ICE": "remove", "replace": ["origin", "session-connection"]}

# Where a leg is before its SDP is known: TEST-NET-1 (RFC 5737), routed nowhere, and
# port 9 (discard). Not 0.0.0.0, which rtpengine would mirror as hold in its answer.
PLACEHOLDER = ("192.0.2.1", 9)

_PAYLOADS = "0 8 9 18 13 101"
_RTPMAPS = ("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
            "a=rtpmap:18 G729/8000\r\na=rtpmap:13 CN/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
_CONNECTION = re.compile(r"^c=IN IP[46] (\S+)", re.MULTILINE)
_AUDIO = re.compile(r"^m=audio (\d+) ", re.MULTILINE)


def leg_sdp(host: str, port: int) -> str:
    """An audio offer/answer from ``host``:``port`` (``PLACEHOLDER``: not known yet)."""
    family = "IP6" if ":" in host else "IP4"
    return (f"v=0\r\no=- 1 1 IN {family} {host}\r\ns=tongdai\r\nc=IN {family} {host}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP {_PAYLOADS}\r\n{_RTPMAPS}a=sendrecv\r\n")


def media_address(sdp: str) -> tuple[str, int]:
    """(address, port) of the first audio stream in rtpengine's SDP."""
    conn, audio = _CONNECTION.search(sdp), _AUDIO.search(sdp)
    if conn is None or audio is None:
        raise ValueError("rtpengine's SDP has no audio address")
    return conn.group(1), int(audio.group(1))
