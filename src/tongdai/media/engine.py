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

from typing import TYPE_CHECKING, Literal, Protocol

from tongdai.clock import Clock

if TYPE_CHECKING:
    from tongdai.media.prompts import Prompt

__all__ = ["Leg", "LegMedia", "MediaEngine", "MediaSession", "MediaUnavailable"]

Leg = Literal["a", "b"]


class MediaUnavailable(Exception):
    """No media resources are left (the RTP port range is used up): answer 503."""


class LegMedia(Protocol):
    """tongdai's own voice and ears on one leg of a call.

    Digits come from RFC 4733 telephone-events on the leg's RTP and from SIP INFO
    (passed to ``dtmf``). A digit pressed during an interruptible ``play`` ends it and
    is its result; every other digit waits in a queue until ``collect`` takes it, or
    until an interruptible ``play`` begins, which it then ends at once (type-ahead).
    """

    def set_dtmf_pt(self, pt: int | None) -> None:
        """The RFC 4733 telephone-event payload type from the leg's SDP (None: none)."""

    async def play(self, prompt: Prompt, *, stop_on_dtmf: bool = True) -> str | None:
        """Play a prompt at 20 ms pacing; returns the digit that interrupted it, or None
        when it played to its end (or was stopped)."""

    async def collect(self, *, max_digits: int = 1, timeout: float,  # noqa: ASYNC109
                      terminator: str | None = None) -> str:
        """Digits pressed (RFC 4733 or dtmf() from SIP INFO) until max_digits, the
        terminator or ``timeout`` seconds of nothing; "" when none. Digits pressed
        during an interruptible play() that interrupted it are returned by play(), not
        here; later digits are buffered until collected. ``stop`` ends it early."""

    def start_music(self, prompt: Prompt) -> None:
        """Loop ``prompt`` until stop_music, stop or bridge; a ``play`` meanwhile
        plays over it and the music goes on after."""

    def stop_music(self) -> None: ...

    async def record(self, *, app_id: str, limit: float, silence: float = 5.0) -> str:
        """Record what the leg says (after the caller played the beep via play), until
        ``limit`` seconds, ``silence`` seconds of silence, a '#' or stop(); writes MP3 to
        the recordings store (``voicemail_<random>.mp3`` under
        ``<recordings_dir>/<app_id>/``) and returns the file name, "" if nothing was
        heard."""

    def dtmf(self, digit: str) -> None:
        """A digit that arrived by SIP INFO (parsed with tongdai.media.dtmf.parse_info)."""

    def stop(self) -> None:
        """Cancel play, record and music (a waiting collect returns what it has)."""

    def hold(self, held: bool) -> None:
        """The leg's peer is on hold (RFC 3264 §8.4: it asked us not to send): prompts
        and music run on in time but no packet is sent, until ``hold(False)``."""


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

    def pause_recording(self) -> None:
        """Keep nothing of the audio from now until ``resume_recording`` (a card number
        being read out): the recording holds silence for that time, so it still lasts
        the whole talk time. Idempotent; before ``start_recording`` it takes effect
        when recording starts."""

    def resume_recording(self) -> None:
        """Record again from now; idempotent."""

    @property
    def recording_paused(self) -> bool:
        """True between ``pause_recording`` and ``resume_recording``."""

    @property
    def recording(self) -> str:
        """The file name the recording goes to once started (``close`` returns it if
        audio arrived), or ``""`` when this call is not being recorded."""

    def leg_media(self, leg: Leg, codec: str) -> LegMedia:
        """Take ``leg`` out of the relay: its packets come to tongdai (DTMF detection,
        recording) and tongdai's own audio goes to it, encoded as ``codec``
        ("PCMU" or "PCMA", the codec tongdai negotiated with that leg; RFC 4733
        telephone-event payload type given by set_dtmf_pt). Idempotent per leg."""

    def bridge(self) -> None:
        """Stop any LegMedia (music, playback, recording) and relay a<->b again.
        A new session starts bridged, as today."""

    async def close(self) -> str:
        """Stop relaying, free the ports, finish the recording; idempotent.

        Returns the recording's file name (``call_recording_<random>.mp3`` under
        ``<recordings_dir>/<app_id>/``), or ``""`` when there is none: not recording,
        never answered, or no audio arrived.
        """


class MediaEngine(Protocol):
    clock: Clock
    """The clock of ``MediaSession.last_activity`` and ``leg_activity``: measure a
    session's silence as ``clock() - last_activity``, with no other clock."""

    async def create_session(self, *, call_id: str, app_id: str, record: bool) -> MediaSession:
        """Allocate the media of one call; raises ``MediaUnavailable`` when exhausted."""
