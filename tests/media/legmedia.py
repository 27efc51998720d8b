"""Test support: a ``LegMedia`` on a real relay, facing a plain UDP "phone" on loopback.

    async with leg_media_peer(tmp_path) as peer:
        await peer.media.play(prompt)          # peer.phone.received holds the RTP
        peer.press("5")                        # RFC 4733, as a phone sends it
        assert await peer.media.collect(timeout=1) == "5"
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.media._rtp import Phone, free_range, open_phone, rtp

from tongdai.media.dtmf import DIGITS
from tongdai.media.endpoint import RelayLegMedia
from tongdai.media.relay import RelayEngine, RelaySession

DTMF_PT = 101


@dataclass
class Peer:
    engine: RelayEngine
    session: RelaySession
    media: RelayLegMedia
    phone: Phone
    ssrc: int = 0x5EED
    seq: int = 100
    ts: int = 80000

    @property
    def address(self) -> tuple[str, int]:
        """Where the phone sends: the leg's RTP port."""
        return self.session.local_address("a")

    def send(self, packet: bytes) -> None:
        self.phone.send(packet, self.address)

    def event_packets(self, digit: str, *, duration: int = 800) -> list[bytes]:
        """One key press as RFC 4733 §2.5 packets: the start (marker), updates every
        20 ms, then the end packet three times, all with the event's timestamp."""
        event = DIGITS.index(digit)
        self.ts += 2000
        out = []
        for i, d in enumerate(range(160, duration + 1, 160)):
            end = d == duration
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, d)
            copies = 3 if end else 1
            for _ in range(copies):
                out.append(rtp(seq=self.seq, ts=self.ts, ssrc=self.ssrc, pt=DTMF_PT,
                               marker=i == 0, payload=payload))
                self.seq += 1
        return out

    def press(self, digit: str) -> None:
        """Send a whole key press at once (loopback keeps the order)."""
        for p in self.event_packets(digit):
            self.send(p)


@contextlib.asynccontextmanager
async def leg_media_peer(tmp_path: Path, codec: str = "PCMU") -> AsyncIterator[Peer]:
    """A started relay, one session, its leg "a" facing a UDP phone, taken out of the
    relay as a ``LegMedia`` with telephone-event PT 101."""
    engine = RelayEngine("127.0.0.1", free_range(16), tmp_path / "recordings")
    await engine.start()
    phone = await open_phone()
    try:
        session = await engine.create_session(call_id="lm-test", app_id="app1", record=False)
        session.set_remote("a", *phone.address)
        media = session.leg_media("a", codec)
        media.set_dtmf_pt(DTMF_PT)
        yield Peer(engine=engine, session=session, media=media, phone=phone)
    finally:
        phone.close()
        await engine.stop()
