"""Media anchoring in SDP: every offer and answer of every leg passes through here.

The B2BUA reads where a leg wants media (``remote_of``) and rewrites what it sends
so that media flows through the relay (``rewrite``). Click-to-call builds its own
offers (``offer``), since tongdai is the one calling both sides.
"""

from __future__ import annotations

import functools
import itertools

from tongdai.sip.sdp import SdpError, SessionDescription

_session_ids = itertools.count(1)

# One SDP body is read several times on its way through a call (where the sender
# receives audio, the codec it chose, whether it holds): those answers are kept for
# the bodies seen last instead of parsing each body again. ``rewrite`` builds a new
# body, so it parses its own copy.
_READ_MEMORY = 256

CODECS = {"0": "PCMU/8000", "8": "PCMA/8000"}
DTMF_PT = "101"


@functools.lru_cache(maxsize=_READ_MEMORY)
def remote_of(body: bytes) -> tuple[str, int] | None:
    """The address and port where the sender of ``body`` receives audio."""
    if not body:
        return None
    try:
        sdp = SessionDescription.parse(body)
    except SdpError:
        return None
    for m in sdp.media:
        if m.kind == "audio" and m.port:
            host = sdp.media_address(m)
            if host:
                return host, m.port
    return None


def rewrite(body: bytes, host: str, port: int) -> bytes:
    """``body`` with its audio pointed at ``host:port`` (RTCP at port+1)."""
    try:
        sdp = SessionDescription.parse(body)
    except SdpError:
        return body
    sdp.set_connection(host)
    for m in sdp.media:
        if m.kind == "audio" and m.port:
            m.port = port
            m.set_rtcp(port + 1)
        elif m.port:
            # Media we do not relay is refused (RFC 3264 §6: port 0).
            m.port = 0
    return sdp.serialize()


@functools.lru_cache(maxsize=_READ_MEMORY)
def on_hold(body: bytes) -> bool:
    """Whether an offer puts the call on hold (sendonly/inactive, or c=0.0.0.0)."""
    try:
        return SessionDescription.parse(body).on_hold
    except SdpError:
        return False


@functools.lru_cache(maxsize=_READ_MEMORY)
def chosen_codec(answer: bytes) -> str | None:
    """The first audio payload type of an answer that tongdai can record."""
    try:
        sdp = SessionDescription.parse(answer)
    except SdpError:
        return None
    for m in sdp.media:
        if m.kind == "audio" and m.port:
            for fmt in m.formats:
                if fmt in CODECS:
                    return fmt
    return None


def offer(host: str, port: int, codecs: tuple[str, ...] = ("0", "8")) -> bytes:
    """A fresh audio offer from tongdai: G.711 and RFC 4733 telephone-event."""
    return audio_sdp(host, port, [(pt, CODECS[pt]) for pt in codecs], DTMF_PT)


def audio_sdp(host: str, port: int, rtpmaps: list[tuple[str, str]], dtmf_pt: str) -> bytes:
    """tongdai's own SDP: one sendrecv audio stream at ``host``:``port`` with the
    ``(payload type, encoding)`` pairs given, then RFC 4733 telephone-event on
    ``dtmf_pt``, 20 ms packets."""
    sid = next(_session_ids)
    ip = "IP6" if ":" in host else "IP4"
    fmts = " ".join((*(pt for pt, _ in rtpmaps), dtmf_pt))
    lines = [
        "v=0",
        f"o=tongdai {sid} 1 IN {ip} {host}",
        "s=tongdai",
        f"c=IN {ip} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {fmts}",
        *(f"a=rtpmap:{pt} {enc}" for pt, enc in rtpmaps),
        f"a=rtpmap:{dtmf_pt} telephone-event/8000",
        f"a=fmtp:{dtmf_pt} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
