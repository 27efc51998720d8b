"""tongdai.rtp: RTP/RTCP packet recognition and G.711, pure (no I/O, no clock)."""

from tongdai.rtp.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from tongdai.rtp.packet import (
    RtcpHeader,
    RtpHeader,
    TelephoneEvent,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
    rtp_fields,
)

__all__ = [
    "RtcpHeader",
    "RtpHeader",
    "TelephoneEvent",
    "decode_alaw",
    "decode_ulaw",
    "encode_alaw",
    "encode_ulaw",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp",
    "parse_telephone_event",
    "rtp_fields",
]
