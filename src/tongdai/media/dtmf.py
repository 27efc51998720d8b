"""DTMF digits as they reach tongdai: RFC 4733 telephone-events and SIP INFO bodies. Pure.

``parse_info`` reads the two INFO bodies phones send (``application/dtmf-relay``,
the Cisco/SIPfoundry form ``Signal=5\\r\\nDuration=160``, and ``application/dtmf``,
just the digit). ``EventDetector`` turns a stream of RFC 4733 packets into digits,
one per event however many packets carry it. Neither reads a clock or a socket.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DIGITS", "EventDetector", "parse_info"]

# RFC 4733 §3.2: events 0-9 are the digits, 10 is '*', 11 is '#', 12-15 are A-D.
DIGITS = "0123456789*#ABCD"
_MAX_BODY = 256
# Events remembered for de-duplication: more than enough for reordered packets.
_REMEMBERED = 16


def _digit(value: str, *, numbered: bool = False) -> str | None:
    value = value.strip().upper()
    if len(value) == 1 and value in DIGITS:
        return value
    # Some phones put the RFC 4733 event number in Signal= (10 for '*', 11 for '#').
    if numbered and value.isdigit() and len(value) == 2 and int(value) < len(DIGITS):
        return DIGITS[int(value)]
    return None


def parse_info(content_type: str, body: bytes) -> str | None:
    """The digit (0-9, *, #, A-D) a SIP INFO carries, or ``None`` for anything else.

    ``application/dtmf-relay``: lines ``Signal=5`` and ``Duration=160`` (any order, any
    line ending, spaces around ``=``); ``application/dtmf``: the digit alone.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if len(body) > _MAX_BODY:
        return None
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if media == "application/dtmf":
        return _digit(text)
    if media != "application/dtmf-relay":
        return None
    signal: str | None = None
    for line in text.replace("\r", "\n").split("\n"):
        key, sep, value = line.partition("=")
        if not sep:
            if line.strip():
                return None
            continue
        if key.strip().lower() == "signal":
            if signal is not None:
                return None  # two signals in one INFO: not a well-formed body
            signal = value
    return None if signal is None else _digit(signal, numbered=True)


class EventDetector:
    """Digits from RFC 4733 telephone-event payloads, each event reported once.

    An event is named by its RTP timestamp (RFC 4733 §2.5.1.2: every packet of one
    event carries the timestamp of its start), within the sender's SSRC. The first
    packet seen of an event reports its digit, so a press is heard at once and the
    retransmitted end packets (§2.5.1.4: the final packet is sent three times) or a
    lost start change nothing.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=_REMEMBERED)

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        """One telephone-event payload; returns the digit if it starts a new event."""
        if len(payload) < 4:
            return None
        event = payload[0]
        if event >= len(DIGITS):
            return None  # not a DTMF digit (e.g. a fax tone, RFC 4734)
        key = (ssrc, timestamp)
        if key in self._seen:
            return None
        self._seen.append(key)
        return DIGITS[event]
