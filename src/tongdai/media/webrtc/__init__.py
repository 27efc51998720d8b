"""WebRTC media legs: ICE-lite, DTLS-SRTP and rtcp-mux in front of a relay port.

``WebRtcSession`` is what the call layer needs of a media session to give a leg to a
browser; ``RelaySession`` implements it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tongdai.media.engine import Leg
from tongdai.media.webrtc.identity import DtlsIdentity
from tongdai.media.webrtc.leg import WebRtcLeg
from tongdai.media.webrtc.params import IceDtls, Setup

__all__ = ["DtlsIdentity", "IceDtls", "Setup", "WebRtcLeg", "WebRtcSession"]


@runtime_checkable
class WebRtcSession(Protocol):
    def webrtc_local(self, leg: Leg, setup: Setup) -> IceDtls: ...
    def webrtc_remote(self, leg: Leg, remote: IceDtls) -> None: ...
