"""Both directions of a call on one timeline, mixed to mono 8 kHz PCM. Pure.

``Mixdown`` takes the raw RTP datagrams each leg sent, with their arrival times, and
hands back 16-bit PCM in order, a chunk at a time, so a whole call never sits in
memory. Time comes in as arguments (``time.monotonic()`` values); nothing here reads
a clock or touches a file.

Placement. Within one SSRC, a G.711 packet's position is its RTP timestamp (RFC 3550
§5.1: one tick per sample at 8 kHz), extended past the 32-bit wrap, relative to the
segment's anchor; loss and silence suppression leave gaps that stay silent, and
reordered or duplicated packets land where they belong. A new SSRC (a re-INVITE, a
transfer, a device restarting its stream) starts a new segment anchored by arrival
time: the packet's audio is taken to end when it arrived. Since audio cannot arrive
before it was spoken, a packet that would land after its own arrival time moves the
anchor earlier (the first packet was delayed, or the sender jumped ahead); one that
lands more than ``max_skew`` before it restarts the segment there (the sender jumped
back, or its clock runs slow). So both directions stay in step with the wall clock
within network jitter. Sequence numbers are not needed: G.711 timestamps already
say where every sample goes.

Output. Samples are released ``holdback`` seconds behind the newest arrival, so
packets up to that late still land in place; later ones are dropped. ``finish(end)``
releases everything up to ``end``, padding with silence, so the result lasts exactly
from ``start`` to ``end``: the talk time. The mix is the sample-wise sum of both
parties, clipped to 16 bits (no halving, so each voice keeps its level).
PCMU (PT 0) and PCMA (PT 8) are decoded; other payload types (RFC 4733 telephone
events, comfort noise, other codecs) are skipped.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

from tongdai.rtp.g711 import decode_alaw, decode_ulaw
from tongdai.rtp.packet import PT_PCMA, PT_PCMU, rtp_fields

__all__ = ["RATE", "Mixdown", "mix_pcm16"]

RATE = 8000
_MAX_SEGMENTS = 4
_MAX_AHEAD = 60 * RATE  # samples; bounds memory against a bogus arrival time
_FIXED = struct.Struct("!BBHII")  # RFC 3550 §5.1 fixed header
_BLOCK = RATE // 10  # pull() releases whole 100 ms blocks


class _Segment:
    __slots__ = ("base_ext", "base_pos", "last_ext", "last_ts")

    def __init__(self, ts: int, pos: int) -> None:
        self.base_ext = ts
        self.base_pos = pos
        self.last_ts = ts
        self.last_ext = ts


class _Track:
    __slots__ = ("pcm", "segments")

    def __init__(self) -> None:
        self.pcm = bytearray()  # 16-bit samples from the mixdown's ``emitted`` onwards
        self.segments: dict[int, _Segment] = {}


class Mixdown:
    """Places two directions of G.711 RTP on one timeline and mixes them to mono."""

    def __init__(self, *, start: float, holdback: float = 0.5, max_skew: float = 1.0) -> None:
        self.start = start
        self.emitted = 0  # samples released so far
        self.placed = 0  # G.711 packets placed so far
        self._holdback = round(holdback * RATE)
        self._max_skew = round(max_skew * RATE)
        self._tracks = (_Track(), _Track())

    @property
    def has_audio(self) -> bool:
        return self.placed > 0

    def feed(self, direction: int, packets: Sequence[bytes], arrivals: Sequence[float]) -> None:
        """Add one direction's datagrams (0 or 1), each with its arrival time."""
        track = self._tracks[direction]
        segments = track.segments
        start = self.start
        skew = self._max_skew
        run: list[bytes] = []
        run_pos = run_end = run_pt = -1
        unpack = _FIXED.unpack_from
        for data, arrival in zip(packets, arrivals, strict=True):
            hi = len(data)
            if hi <= 12:
                continue
            b0, b1, _seq, ts, ssrc = unpack(data)
            if b0 == 0x80:  # version 2 without padding, extension or CSRCs: the norm
                lo, pt = 12, b1 & 0x7F
            else:
                fields = rtp_fields(data)
                if fields is None:
                    continue
                pt, _seq, ts, ssrc, lo, hi = fields
            n = hi - lo
            # RTCP (RFC 5761) reads as PT 72-76 here, telephone-event is dynamic: skipped.
            if n <= 0 or (pt != PT_PCMU and pt != PT_PCMA):
                continue
            apos = round((arrival - start) * RATE) - n
            seg = segments.get(ssrc)
            if seg is None:
                if len(segments) >= _MAX_SEGMENTS:
                    del segments[next(iter(segments))]
                seg = segments[ssrc] = _Segment(ts, apos)
                pos = apos
            else:
                # RFC 3550 §5.1: timestamps wrap at 2**32; a step of more than half
                # the space backwards is a late (reordered) packet, not a wrap.
                d = (ts - seg.last_ts) & 0xFFFFFFFF
                if d >= 0x80000000:
                    d -= 0x100000000
                ext = seg.last_ext + d
                if d > 0:
                    seg.last_ts, seg.last_ext = ts, ext
                pos = seg.base_pos + ext - seg.base_ext
                if pos > apos:
                    # Audio cannot arrive before it was spoken: the anchor was set by
                    # a delayed packet (or the sender jumped ahead). Move it earlier.
                    seg.base_pos -= pos - apos
                    pos = apos
                elif apos - pos > skew:
                    # Far behind its arrival time: a sender that jumped back or whose
                    # clock runs slow. Start over from this packet.
                    seg.base_ext, seg.base_pos, seg.last_ts, seg.last_ext = ext, apos, ts, ext
                    pos = apos
            self.placed += 1
            if pos == run_end and pt == run_pt:
                run.append(data[lo:hi])
                run_end += n
                continue
            if run:
                self._write(track, run_pos, run_pt, run)
            run = [data[lo:hi]]
            run_pos, run_end, run_pt = pos, pos + n, pt
        if run:
            self._write(track, run_pos, run_pt, run)

    def _write(self, track: _Track, pos: int, pt: int, payloads: list[bytes]) -> None:
        codes = b"".join(payloads)
        pcm = decode_ulaw(codes) if pt == PT_PCMU else decode_alaw(codes)
        emitted = self.emitted
        if pos + len(codes) <= emitted or pos - emitted > _MAX_AHEAD:
            return
        if pos < emitted:
            del pcm[: 2 * (emitted - pos)]
            pos = emitted
        off = 2 * (pos - emitted)
        end = off + len(pcm)
        buf = track.pcm
        if end > len(buf):
            buf.extend(bytes(end - len(buf)))
        buf[off:end] = pcm

    def pull(self, now: float) -> bytes:
        """Mixed PCM that can no longer change: up to ``holdback`` before ``now``."""
        ready = round((now - self.start) * RATE) - self._holdback - self.emitted
        # Whole blocks only: the mixer's constants are then cached for a few sizes.
        return self._emit(self.emitted + ready - ready % _BLOCK)

    def finish(self, end: float) -> bytes:
        """The rest of the mix, up to exactly ``end`` (silence where nothing arrived)."""
        out = self._emit(round((end - self.start) * RATE))
        for track in self._tracks:
            track.pcm.clear()
        return out

    def _emit(self, upto: int) -> bytes:
        n = upto - self.emitted
        if n <= 0:
            return b""
        self.emitted = upto
        a, b = (_take(t.pcm, n) for t in self._tracks)
        if a is None or b is None:
            return a or b or bytes(2 * n)
        return mix_pcm16(a, b)


def _take(buf: bytearray, n: int) -> bytes | None:
    """The first ``n`` samples of ``buf`` (removed), zero-padded; None if all silent."""
    if not buf:
        return None
    size = 2 * n
    chunk = bytes(buf[:size])
    del buf[:size]
    if len(chunk) < size:
        chunk += bytes(size - len(chunk))
    return chunk


_FLIP = bytes(i ^ 0x80 for i in range(256))


def _lanes(pcm: bytes, n: int) -> int:
    # Each sample, offset to unsigned (s + 32768), in its own 24-bit lane of one big
    # integer, so that one big-integer addition adds all samples at once in C.
    lanes = bytearray(3 * n)
    lanes[0::3] = pcm[0::2]
    lanes[1::3] = pcm[1::2].translate(_FLIP)
    return int.from_bytes(lanes, "little")


@functools.lru_cache(maxsize=8)
def _constants(n: int) -> tuple[int, int, int]:
    one = int.from_bytes(b"\x01\x00\x00" * n, "little")  # 1 in every lane
    return one, one * 98304, one * 32768


def mix_pcm16(a: bytes, b: bytes) -> bytes:
    """Sample-wise ``a + b`` clipped to [-32768, 32767]; 16-bit little-endian PCM.

    SIMD within a register on Python integers: no per-sample Python code runs.
    After the addition every 24-bit lane holds ``L = a + b + 65536`` in [0, 131070];
    bit 17 of ``L + k`` (k <= 98304, so below 2**18) tests ``L >= 2**17 - k`` for all
    lanes at once, which gives the lanes to clip low and high without any carry
    crossing into the next lane.
    """
    if len(a) != len(b) or len(a) % 2:
        raise ValueError("mix_pcm16 needs two PCM buffers of the same whole length")
    n = len(a) // 2
    if n == 0:
        return b""
    one, k1, k2 = _constants(n)
    s = _lanes(a, n) + _lanes(b, n)
    ge = ((s + k1) >> 17) & one  # L >= 32768, i.e. a + b >= -32768
    gt = ((s + k2) >> 17) & one  # L >= 98304, i.e. a + b > 32767
    if ge != one or gt:  # some lane clips (rare in speech): saturate those lanes
        s = (s & ((ge ^ gt) * 0x1FFFF)) | ((one ^ ge) << 15) | (gt * 98303)
    r = s - k2
    rb = r.to_bytes(3 * n, "little")
    out = bytearray(2 * n)
    out[0::2] = rb[0::3]
    out[1::2] = rb[1::3].translate(_FLIP)
    return bytes(out)
