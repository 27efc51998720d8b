"""SDP for calls tongdai answers itself (flows): the answer to the caller, and the
offer to the agents it then rings.

The caller's offer decides the codec: the first of PCMU/PCMA it lists, and its
RFC 4733 telephone-event payload type when it offers one. Agents are offered that
codec alone (with telephone-event), so once one answers the relay can pass packets
between the two legs untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.pbx.anchor import audio_sdp
from tongdai.sip.sdp import SdpError, SessionDescription

G711 = {"PCMU/8000": ("PCMU", 0), "PCMA/8000": ("PCMA", 8)}
DEFAULT_DTMF_PT = 101


@dataclass(frozen=True, slots=True)
class Media:
    codec: str  # "PCMU" or "PCMA"
    pt: int  # its payload type (0 or 8)
    dtmf_pt: int | None  # the caller's telephone-event payload type, if offered


# A late offer's caller, until its ACK brings the answer (``flow_call.on_ack``).
LATE = Media("PCMU", 0, DEFAULT_DTMF_PT)


def choose(offer: bytes) -> Media | None:
    """What tongdai speaks with the sender of ``offer``; None when it offers no G.711
    audio (or no audio at all)."""
    try:
        sdp = SessionDescription.parse(offer)
    except SdpError:
        return None
    for m in sdp.media:
        if m.kind != "audio" or not m.port:
            continue
        maps = m.rtpmap()
        dtmf = next((pt for pt, enc in maps.items()
                     if enc.lower().startswith("telephone-event/8000")), None)
        for pt, enc in maps.items():
            if enc.upper() in G711:
                codec, static = G711[enc.upper()]
                if pt == static:
                    return Media(codec, pt, dtmf)
    return None


def describe(host: str, port: int, media: Media) -> bytes:
    """Our SDP (answer to the caller, or offer to an agent): ``media``'s codec and
    telephone-event, sendrecv, 20 ms packets."""
    dtmf = media.dtmf_pt if media.dtmf_pt is not None else DEFAULT_DTMF_PT
    return audio_sdp(host, port, [(str(media.pt), f"{media.codec}/8000")], str(dtmf))


def offer(host: str, port: int) -> bytes:
    """Our offer to a caller who sent none (a late offer, RFC 3261 §13.2.1): PCMU and
    PCMA, telephone-event."""
    return audio_sdp(host, port, [("0", "PCMU/8000"), ("8", "PCMA/8000")],
                     str(DEFAULT_DTMF_PT))
