"""Test helpers: RTP "phones" on real loopback sockets, tones, and audio measurements."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import struct
import subprocess
import time
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import cast

from tongdai.rtp.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw

FRAME = 160  # samples per 20 ms packet at 8 kHz


def tone(hz: float, samples: int, amplitude: int = 8000) -> list[int]:
    return [round(amplitude * math.sin(2 * math.pi * hz * i / 8000)) for i in range(samples)]


def tone_codes(hz: float, seconds: float, *, alaw: bool = False) -> bytes:
    """G.711 codes of a pure tone (μ-law unless ``alaw``)."""
    pcm = tone(hz, int(seconds * 8000))
    return encode_alaw(pcm) if alaw else encode_ulaw(pcm)


def rtp(*, seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 0,
        marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def frames(codes: bytes, *, ssrc: int, seq0: int = 1000, ts0: int = 5000,
           pt: int = 0) -> list[bytes]:
    """``codes`` cut into 20 ms RTP packets with consecutive seq and timestamps."""
    return [rtp(seq=seq0 + i, ts=ts0 + i * FRAME, ssrc=ssrc, pt=pt,
                payload=codes[i * FRAME:(i + 1) * FRAME])
            for i in range(len(codes) // FRAME)]


def rtcp_rr(ssrc: int) -> bytes:
    """An empty RTCP receiver report (RFC 3550 §6.4.2)."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


class Phone(asyncio.DatagramProtocol):
    """A UDP endpoint on 127.0.0.1 that keeps what it receives (with arrival times)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int], float]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr, time.monotonic()))
        self.event.set()

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dest)

    async def wait_for(self, count: int, within: float = 2.0) -> None:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.event.clear()
                await self.event.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def stream(self, packets: Sequence[bytes], dest: tuple[str, int],
                     interval: float = 0.02, *, lose: Iterable[int] = (),
                     delay: Iterable[int] = ()) -> None:
        """Send packet ``i`` at ``i * interval`` on a steady clock, as a phone would.

        The network's doing is simulated on top: packets in ``lose`` are never sent,
        those in ``delay`` leave just after the next packet (so they arrive reordered).
        """
        lost = set(lose)
        late = set(delay)
        schedule = sorted(
            ((i + 1.05) * interval if i in late else i * interval, i)
            for i in range(len(packets)) if i not in lost)
        start = time.monotonic()
        for at, i in schedule:
            wait = start + at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.send(packets[i], dest)


async def open_phone(port: int = 0) -> Phone:
    loop = asyncio.get_running_loop()
    _, phone = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", port))
    return phone


def free_range(size: int) -> tuple[int, int]:
    """A range of ``size`` UDP ports on 127.0.0.1 free right now, starting even.

    Taken below Linux's ephemeral range (32768+), so that sockets bound to port 0
    elsewhere cannot land in it between this check and the test's own binds.
    """
    bases = list(range(28000, 32768 - size, 64))
    first = random.randrange(len(bases))
    for base in bases[first:] + bases[:first]:
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base, base + size - 1
    raise RuntimeError("no free UDP port range")


def payload_pcm(packets: Iterable[bytes]) -> array[int]:
    """The decoded audio of G.711 RTP packets, in order of arrival."""
    out = array("h")
    for p in packets:
        pt = p[1] & 0x7F
        pcm = decode_ulaw(p[12:]) if pt == 0 else decode_alaw(p[12:])
        out.frombytes(bytes(pcm))
    return out


def decode_mp3(path: Path) -> array[int]:
    raw = subprocess.run(
        ["sox", str(path), "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1",
         "-"], capture_output=True, check=True).stdout
    out = array("h")
    out.frombytes(raw[: len(raw) // 2 * 2])
    return out


def mp3_seconds(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, check=True,
                                text=True).stdout)


def tone_level(samples: Sequence[int], hz: float, rate: int = 8000) -> float:
    """Amplitude of the ``hz`` component (Goertzel), in sample units."""
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(samples)
