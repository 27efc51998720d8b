"""The seam between the call layer and whatever moves the media.

The B2BUA anchors each call's media in a ``MediaSession``: it puts
``local_address(leg)`` into the SDP it sends to that leg, feeds the address from the
SDP it receives from that leg to ``set_remote``, calls ``start_recording`` when the
call is answered, polls ``last_activity`` for the media timeout and ``close``\\ s the
session when the call ends, storing the returned name in the CDR.

Leg ``"a"`` is the caller side, leg ``"b"`` the callee side. ``RelayEngine``
(``tongdai.media.relay``) is the built-in implementation; an rtpengine (ng protocol)
backend can replace it without the call layer noticing.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["Leg", "MediaEngine", "MediaSession", "MediaUnavailable"]

Leg = Literal["a", "b"]


class MediaUnavailable(Exception):
    """No media resources are left (the RTP port range is used up): answer 503."""


class MediaSession(Protocol):
    """The media of one call: two legs, relayed to each other, maybe recorded."""

    @property
    def call_id(self) -> str: ...

    @property
    def last_activity(self) -> float:
        """``time.monotonic()`` of the last RTP packet from either leg (or of creation)."""

    def leg_activity(self, leg: Leg) -> float:
        """``time.monotonic()`` of the last RTP packet from ``leg`` (or of creation):
        a leg that fell silent while the other still talks has vanished."""

    def local_address(self, leg: Leg) -> tuple[str, int]:
        """Our RTP address for ``leg`` (put it in that leg's SDP); RTCP is port + 1."""

    def set_remote(self, leg: Leg, host: str, port: int) -> None:
        """The RTP address from ``leg``'s SDP (``c=``/``m=``); port 0 means none.

        It is only a fallback: once packets arrive from the leg they are answered where
        they come from (symmetric RTP), which is what makes devices behind NAT work.
        """

    def start_recording(self) -> None:
        """Start recording (call it on answer); idempotent; no-op when not recording."""

    async def close(self) -> str:
        """Stop relaying, free the ports, finish the recording; idempotent.

        Returns the recording's file name (``call_recording_<random>.mp3`` under
        ``<recordings_dir>/<app_id>/``), or ``""`` when there is none: not recording,
        never answered, or no audio arrived.
        """


class MediaEngine(Protocol):
    async def create_session(self, *, call_id: str, app_id: str, record: bool) -> MediaSession:
        """Allocate the media of one call; raises ``MediaUnavailable`` when exhausted."""
