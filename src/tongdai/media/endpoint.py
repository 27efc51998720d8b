"""tongdai as a media endpoint on one leg of a call: it plays, listens and records.

``RelayLegMedia`` implements ``LegMedia`` (``tongdai.media.engine``) for the built-in
relay: the relay hands it the leg's RTP packets instead of forwarding them, and it
sends its own audio out of the leg's RTP port to where that leg's device listens.

Sending. Every playing leg of the engine is served by one ``Ticker``: one asyncio
timer on a fixed grid (a leg's tick ``k`` is due at ``origin + k * 0.02`` plus its
slot's offset, so lateness never accumulates into drift) sends each playing leg its
next 20 ms packet (RFC 3551 §4.5.14: PCMU/PCMA at 8 kHz, 160 samples); the legs are
spread over four 5 ms slots so that each firing sends a quarter of them. A leg's RTP timestamp
is a function of the tick (RFC 3550 §5.1: it advances with real time, also across
the pauses when nothing plays and nothing is sent); the marker bit starts each
talkspurt (RFC 3551 §4.1). A tick that comes late sends the packets it owes at once
(up to ``_CATCH_UP``) rather than losing audio. Prompts are encoded to G.711 once
per prompt and codec, and cached.

Listening. RFC 4733 telephone-events become digits (``tongdai.media.dtmf``), as do
digits from SIP INFO passed to ``dtmf``. A digit ends an interruptible ``play`` (and
is its result); others queue until ``collect`` takes them. ``record`` hands the G.711
packets to the call recorder's encoder processes, like a call recording, and
measures silence on them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import struct
import sys
import threading
import time
from array import array
from collections import OrderedDict, deque
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tongdai.media.dtmf import EventDetector
from tongdai.media.engine import LegMedia
from tongdai.media.prompts import Prompt
from tongdai.media.recorder import CallRecorder, RecorderPool, new_recording_name
from tongdai.rtp.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR, linear_to_alaw, linear_to_ulaw
from tongdai.rtp.packet import PT_PCMA, PT_PCMU, rtp_fields

__all__ = ["CODECS", "RelayLegMedia", "Ticker", "encode_prompt"]

log = logging.getLogger("tongdai.media")

FRAME = 160  # samples (and G.711 bytes) per packet
PTIME = 0.02
PHASES = 4  # slots of the 20 ms period that the legs are spread over
_SLOT = PTIME / PHASES
CODECS = {"PCMU": PT_PCMU, "PCMA": PT_PCMA}
_SILENCE = {PT_PCMU: 0xFF, PT_PCMA: 0xD5}  # G.711 codes of a zero sample
_CATCH_UP = 10  # packets a late tick may send at once (200 ms); beyond, audio is skipped
_HEADER = struct.Struct("!BBHII")
_RECORD_STEP = 0.5  # seconds between hand-overs of recorded packets to the encoder
# A packet is voice when its loudest sample passes this (about -36 dBFS): line noise
# and comfort noise stay under it, speech does not.
_VOICE = 512
_monotonic = time.monotonic
_APP_ID = re.compile(r"[A-Za-z0-9_-]+")

Addr = tuple[str, int]


# Encoding --------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _table(pt: int) -> bytes:
    """G.711 code of every 16-bit sample, indexed by the sample as unsigned.

    A G.711 quantizer gives each code one run of consecutive samples, so the table
    is built run by run, finding each run's end by bisection: a few thousand calls
    of the encoder instead of 65,536 (it is built on the event loop, on first use).
    """
    enc = linear_to_ulaw if pt == PT_PCMU else linear_to_alaw
    runs = bytearray()
    s = -32768
    while s <= 32767:
        code = enc(s)
        lo, hi = s, 32767
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if enc(mid) == code:
                lo = mid
            else:
                hi = mid - 1
        runs += bytes((code,)) * (lo - s + 1)
        s = lo + 1
    return bytes(runs[32768:] + runs[:32768])  # index 0 is sample 0, 32768 is -32768


# Prompts encoded per codec, the most recently used kept up to a total size.
_ENCODED: OrderedDict[tuple[Prompt, int], bytes] = OrderedDict()
_ENCODED_MAX = 64 << 20
_encoded_lock = threading.Lock()
# Prompts longer than this are encoded in a thread, not on the event loop.
_INLINE = 10 * 8000


def cached_codes(prompt: Prompt, pt: int) -> bytes | None:
    """The prompt's G.711 codes if they were encoded already, else None."""
    with _encoded_lock:
        codes = _ENCODED.get((prompt, pt))
        if codes is not None:
            _ENCODED.move_to_end((prompt, pt))
        return codes


def encode_prompt(prompt: Prompt, pt: int) -> bytes:
    """The prompt's audio as G.711 codes (``PT_PCMU``/``PT_PCMA``), padded to whole
    20 ms frames with silence. Cached: a prompt is encoded once per codec."""
    codes = cached_codes(prompt, pt)
    if codes is not None:
        return codes
    table = _table(pt)
    samples = array("H")
    samples.frombytes(prompt.pcm[: len(prompt.pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()  # the PCM is little-endian
    codes = bytes(map(table.__getitem__, samples))
    codes += bytes((_SILENCE[pt],)) * (-len(codes) % FRAME)
    with _encoded_lock:
        _ENCODED[(prompt, pt)] = codes
        total = sum(len(c) for c in _ENCODED.values())
        while total > _ENCODED_MAX and len(_ENCODED) > 1:
            total -= len(_ENCODED.popitem(last=False)[1])
    return codes


async def encoded(prompt: Prompt, pt: int) -> bytes:
    """``encode_prompt`` without holding up the event loop for a long prompt."""
    codes = cached_codes(prompt, pt)
    if codes is not None:
        return codes
    if len(prompt.pcm) <= 2 * _INLINE:
        return encode_prompt(prompt, pt)
    return await asyncio.to_thread(encode_prompt, prompt, pt)


def _level_table(decode: tuple[int, ...]) -> bytes:
    # Loudness of each code in units of 128, so one translate + max() rates a packet.
    return bytes(min(255, abs(v) >> 7) for v in decode)


_LEVEL = {PT_PCMU: _level_table(ULAW_TO_LINEAR), PT_PCMA: _level_table(ALAW_TO_LINEAR)}
_VOICE_LEVEL = _VOICE >> 7


# The shared 20 ms clock -----------------------------------------------------------


class _Player(Protocol):
    def on_tick(self, tick: int) -> None: ...


class Ticker:
    """One timer for every playing leg of an engine (so hundreds fit on one core).

    The 20 ms period is cut into ``PHASES`` slots and each leg keeps one slot for its
    life, so each firing sends a quarter of the legs' packets: the burst, and with it
    how late the last leg of a burst is, stays a quarter as long.
    """

    def __init__(self, *, record_lateness: bool = False) -> None:
        self._phases: tuple[set[_Player], ...] = tuple(set() for _ in range(PHASES))
        self._handle: asyncio.TimerHandle | None = None
        self._origin: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = 0  # the slot the timer is set for
        self._served = 0  # the last slot served
        self._next_phase = 0
        self.late: float = 0.0  # the largest lateness of the timer so far (seconds)
        # Every firing's lateness at its start and at its end (the last packet of the
        # burst), when asked for (benchmarks).
        self.lateness: array[float] | None = array("d") if record_lateness else None
        self.burst_lateness: array[float] | None = array("d") if record_lateness else None

    @property
    def playing(self) -> int:
        return sum(len(p) for p in self._phases)

    def assign(self) -> int:
        """A slot for a new leg (round robin)."""
        phase, self._next_phase = self._next_phase, (self._next_phase + 1) % PHASES
        return phase

    def _now_slot(self) -> int:
        loop = asyncio.get_running_loop()
        if self._origin is None or self._loop is not loop:
            self._loop, self._origin = loop, loop.time()
        return int((loop.time() - self._origin) / _SLOT)

    def _due(self, slot: int) -> float:
        assert self._origin is not None
        return self._origin + slot * _SLOT

    def add(self, player: _Player, phase: int) -> int:
        """Start serving ``player`` in slot ``phase``; returns the (20 ms) tick of its
        first packet. Its ticks are due at a fixed offset ``phase * 5 ms``."""
        now = self._now_slot()
        tick = (now - phase) // PHASES + 1
        slot = tick * PHASES + phase
        self._phases[phase].add(player)
        assert self._loop is not None
        if self._handle is None:
            self._served = now
        elif self._scheduled > slot:
            self._handle.cancel()  # set for a later slot, as this one had nobody
        else:
            return tick
        self._scheduled = slot
        self._handle = self._loop.call_at(self._due(slot), self._tick)
        return tick

    def discard(self, player: _Player) -> None:
        for players in self._phases:
            players.discard(player)

    def _tick(self) -> None:
        # An event loop may run a timer a little early (uvloop's clock counts whole
        # milliseconds): it is still the slot it was set for, never the one before.
        slot = max(self._now_slot(), self._scheduled)
        assert self._loop is not None
        due = self._due(self._scheduled)
        late = self._loop.time() - due
        self.late = max(self.late, late)
        # Each slot due since the last firing (at most one round: a leg catches up
        # its own missed ticks) is served with its latest tick.
        for j in range(max(self._served + 1, slot - PHASES + 1), slot + 1):
            tick = j // PHASES
            for player in list(self._phases[j % PHASES]):
                try:
                    player.on_tick(tick)
                except Exception:  # one leg's bug must not silence every other leg
                    log.exception("media player failed; it stops playing")
                    self.discard(player)
        self._served = slot
        if self.lateness is not None and self.burst_lateness is not None:
            self.lateness.append(late)
            self.burst_lateness.append(self._loop.time() - due)
        for j in range(slot + 1, slot + PHASES + 1):
            if self._phases[j % PHASES]:
                self._scheduled = j
                self._handle = self._loop.call_at(self._due(j), self._tick)
                return
        self._handle = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for players in self._phases:
            players.clear()


# Sources of audio -----------------------------------------------------------------


class _Source:
    __slots__ = ("codes", "done", "loop", "pos", "prompt")

    def __init__(self, prompt: Prompt, codes: bytes, *, loop: bool) -> None:
        self.prompt = prompt
        self.codes = codes
        self.pos = 0
        self.loop = loop
        self.done: asyncio.Future[str | None] | None = None

    def frame(self) -> bytes | None:
        codes, pos = self.codes, self.pos
        if pos >= len(codes):
            if not self.loop or not codes:
                return None
            pos = 0
        self.pos = pos + FRAME
        return codes[pos : pos + FRAME]


class _Recording:
    __slots__ = ("arrivals", "ended", "heard", "last_voice", "packets", "recorder", "start")

    def __init__(self, start: float) -> None:
        self.recorder: CallRecorder | None = None  # once the encoder process is up
        self.start = start
        self.packets: list[bytes] = []
        self.arrivals: array[float] = array("d")
        self.heard = False
        self.last_voice = start
        self.ended = asyncio.Event()


class Port(Protocol):
    """What ``RelayLegMedia`` needs of the relay's RTP port of its leg."""

    @property
    def dest(self) -> Addr | None: ...

    def send(self, data: bytes, dest: Addr) -> None: ...


class RelayLegMedia:
    """tongdai's own voice and ears on one leg of a relayed call (``LegMedia``)."""

    def __init__(self, *, port: Port, codec: str, ticker: Ticker, recorders: RecorderPool,
                 recordings_dir: Path, call_id: str) -> None:
        self._port = port
        self._ticker = ticker
        self._recorders = recorders
        self._recordings_dir = recordings_dir
        self.call_id = call_id
        self._pt = PT_PCMU
        self.codec = "PCMU"
        self._dtmf_pt: int | None = None
        self._events = EventDetector()
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        self._next_tick = 0
        self._phase = ticker.assign()
        self._marker = True
        self._in_ticker = False
        self._play: _Source | None = None
        self._play_interruptible = False
        self._music: _Source | None = None
        self._music_load: asyncio.Task[None] | None = None
        self._digits: deque[str] = deque(maxlen=64)
        self._digit_event = asyncio.Event()
        self._recording: _Recording | None = None
        self._stopped = 0  # bumps on stop(): wakes a waiting collect
        self._held = False  # the peer put us on hold: nothing is sent
        self.attached = True
        self.sent = 0  # RTP packets sent (tests, benchmarks)
        self.skipped = 0  # 20 ms frames skipped because the event loop was too late
        self.set_codec(codec)

    # Configuration ------------------------------------------------------------------

    def set_codec(self, codec: str) -> None:
        pt = CODECS.get(codec.upper())
        if pt is None:
            raise ValueError(f"codec {codec!r} is not PCMU or PCMA")
        if pt != self._pt:
            self._pt, self.codec = pt, codec.upper()
            for src in (self._play, self._music):
                if src is not None:
                    src.codes = encode_prompt(src.prompt, pt)

    def set_dtmf_pt(self, pt: int | None) -> None:
        self._dtmf_pt = pt if pt is not None and 96 <= pt <= 127 else None

    # Playing ------------------------------------------------------------------------

    async def play(self, prompt: Prompt, *, stop_on_dtmf: bool = True) -> str | None:
        if not self.attached:
            return None
        self._end_play(None)
        if stop_on_dtmf and self._digits:
            # Type-ahead: a key pressed before the prompt began interrupts it at once
            # (and digits keep the order they were pressed in).
            return self._digits.popleft()
        codes = await encoded(prompt, self._pt)
        if not self.attached:
            return None
        src = _Source(prompt, codes, loop=False)
        src.done = asyncio.get_running_loop().create_future()
        self._play, self._play_interruptible = src, stop_on_dtmf
        self._start_sending()
        try:
            return await asyncio.shield(src.done)
        except asyncio.CancelledError:
            if self._play is src:
                self._end_play(None)
            raise

    def start_music(self, prompt: Prompt) -> None:
        if not self.attached:
            return
        if self._music is not None and self._music.prompt == prompt:
            return
        self.stop_music()
        codes = cached_codes(prompt, self._pt)
        if codes is None and len(prompt.pcm) > 2 * _INLINE:
            # Long music is encoded in a thread; it starts once it is ready.
            self._music_load = asyncio.get_running_loop().create_task(self._load(prompt))
            return
        self._music = _Source(prompt, codes or encode_prompt(prompt, self._pt), loop=True)
        self._start_sending()

    async def _load(self, prompt: Prompt) -> None:
        codes = await encoded(prompt, self._pt)
        self._music_load = None
        if self.attached:
            self._music = _Source(prompt, codes, loop=True)
            self._start_sending()

    def stop_music(self) -> None:
        self._music = None
        if self._music_load is not None:
            self._music_load.cancel()
            self._music_load = None

    @property
    def playing(self) -> bool:
        return self._play is not None

    @property
    def music(self) -> bool:
        return self._music is not None

    def _end_play(self, digit: str | None) -> None:
        src, self._play = self._play, None
        if src is not None and src.done is not None and not src.done.done():
            src.done.set_result(digit)

    def _start_sending(self) -> None:
        if not self._in_ticker:
            self._in_ticker = True
            self._next_tick = self._ticker.add(self, self._phase)
            self._marker = True  # RFC 3551 §4.1: the first packet after a pause

    def _frame(self) -> bytes | None:
        src = self._play
        if src is not None:
            frame = src.frame()
            if frame is not None:
                if len(frame) < FRAME:  # defensive: encode_prompt pads whole frames
                    frame += bytes((_SILENCE[self._pt],)) * (FRAME - len(frame))
                return frame
            self._end_play(None)
        music = self._music
        return music.frame() if music is not None else None

    def on_tick(self, tick: int) -> None:
        """Send the packets due by ``tick`` (called by the ticker)."""
        first = self._next_tick
        if tick < first:
            return
        if tick - first >= _CATCH_UP:
            # The loop stalled: skip the audio of the lost time rather than queue it.
            for _ in range(tick - first - _CATCH_UP + 1):
                if self._frame() is None:
                    break
                self.skipped += 1
            first = tick - _CATCH_UP + 1
        dest = self._port.dest
        for t in range(first, tick + 1):
            frame = self._frame()
            if frame is None:
                self._ticker.discard(self)
                self._in_ticker = False
                self._next_tick = t
                return
            if self._held:
                self._marker = True  # the talkspurt after the hold starts anew
                continue
            ts = (self._ts0 + t * FRAME) & 0xFFFFFFFF
            b1 = self._pt | 0x80 if self._marker else self._pt
            self._marker = False
            if dest is not None:
                self._port.send(_HEADER.pack(0x80, b1, self._seq, ts, self._ssrc) + frame,
                                dest)
                self.sent += 1
            self._seq = (self._seq + 1) & 0xFFFF
        self._next_tick = tick + 1

    # Listening ----------------------------------------------------------------------

    def received(self, data: bytes, now: float) -> None:
        """One datagram from the leg (called by the relay instead of forwarding it)."""
        if len(data) < 12 or data[0] >> 6 != 2 or 192 <= data[1] <= 223:
            return  # not RTP, or RTCP multiplexed on the RTP port (RFC 5761)
        pt = data[1] & 0x7F
        if pt == self._dtmf_pt:
            fields = rtp_fields(data)
            if fields is not None:
                _, _, ts, ssrc, lo, hi = fields
                digit = self._events.feed(ssrc, ts, data[lo:hi])
                if digit is not None:
                    self._on_digit(digit)
            return
        rec = self._recording
        if rec is not None and pt in (PT_PCMU, PT_PCMA):
            rec.packets.append(data)
            rec.arrivals.append(now)
            if max(data[12:].translate(_LEVEL[pt]), default=0) > _VOICE_LEVEL:
                rec.heard = True
                rec.last_voice = now

    def dtmf(self, digit: str) -> None:
        digit = digit.upper()
        if len(digit) == 1 and digit in "0123456789*#ABCD":
            self._on_digit(digit)

    def _on_digit(self, digit: str) -> None:
        if not self.attached:
            return
        if self._play is not None and self._play_interruptible:
            self._end_play(digit)
            return
        rec = self._recording
        if rec is not None and digit == "#":
            rec.ended.set()
            return
        self._digits.append(digit)
        self._digit_event.set()

    def clear_digits(self) -> None:
        """Forget the digits pressed but not collected yet."""
        self._digits.clear()

    async def collect(self, *, max_digits: int = 1, timeout: float,  # noqa: ASYNC109
                      terminator: str | None = None) -> str:
        got = ""
        stopped = self._stopped
        loop = asyncio.get_running_loop()
        while True:
            while self._digits:
                digit = self._digits.popleft()
                if terminator is not None and digit == terminator:
                    return got
                got += digit
                if len(got) >= max_digits:
                    return got
            if not self.attached or self._stopped != stopped:
                return got
            self._digit_event.clear()
            # The timeout is between digits: it starts again after each one.
            deadline = loop.time() + timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await self._digit_event.wait()
            except TimeoutError:
                if not self._digits:
                    return got
                # A digit came in the same instant as the timeout: it counts.

    # Recording ----------------------------------------------------------------------

    async def record(self, *, app_id: str, limit: float, silence: float = 5.0) -> str:
        if not self.attached:
            return ""
        if self._recording is not None:
            raise RuntimeError("this leg is already being recorded")
        if not _APP_ID.fullmatch(app_id):
            raise ValueError(f"app_id {app_id!r} must be letters, digits, '_' or '-'")
        # Listening starts now; packets wait while the encoder process starts (the
        # first recording of a server whose apps record no calls starts it).
        start = _monotonic()
        rec = self._recording = _Recording(start)
        try:
            await self._recorders.ready()
            recorder = rec.recorder = self._recorders.open(
                directory=self._recordings_dir / app_id, start=start, call_id=self.call_id,
                name=new_recording_name("voicemail_"))
            end = await self._record_until(rec, recorder, limit, silence)
        finally:
            self._recording = None
        batch = (rec.packets, rec.arrivals, (), ())
        rec.packets, rec.arrivals = [], array("d")
        name = await recorder.finish(batch, end)
        if name and not rec.heard:
            # Only silence or noise: no message was left.
            path = self._recordings_dir / app_id / name
            path.unlink(missing_ok=True)
            return ""
        return name

    async def _record_until(self, rec: _Recording, recorder: CallRecorder, limit: float,
                            silence: float) -> float:
        """Hand packets over every half second until the end; returns the end time."""
        while True:
            now = _monotonic()
            if rec.ended.is_set() or not self.attached:
                return now
            if now - rec.start >= limit:
                return rec.start + limit
            if now - rec.last_voice >= silence:
                # Keep a little of the pause after the last word, not all of it.
                return min(now, rec.last_voice + 1.0) if rec.heard else now
            if rec.packets and not recorder.busy:
                recorder.submit((rec.packets, rec.arrivals, (), ()), now)
                rec.packets, rec.arrivals = [], array("d")
            wait = min(_RECORD_STEP, rec.start + limit - now, rec.last_voice + silence - now)
            try:
                async with asyncio.timeout(max(wait, 0.001)):
                    await rec.ended.wait()
            except TimeoutError:
                pass

    # Stopping -----------------------------------------------------------------------

    def stop(self) -> None:
        """End the prompt, the music and the recording; a waiting collect returns."""
        self._end_play(None)
        self.stop_music()
        if self._recording is not None:
            self._recording.ended.set()
        self._stopped += 1
        self._digit_event.set()

    def hold(self, held: bool) -> None:
        """On hold, prompts and music go on in time (a prompt still ends when it
        would have) but no packet leaves; off hold, sending resumes where they are."""
        self._held = held

    @property
    def held(self) -> bool:
        return self._held

    def detach(self) -> None:
        """The leg goes back to the relay (bridge) or the call ends."""
        self.stop()
        self.attached = False
        self._digits.clear()
        if self._in_ticker:
            self._ticker.discard(self)
            self._in_ticker = False

    def attach(self, codec: str) -> None:
        """Taken out of the relay again (the same SSRC and sequence go on)."""
        self.set_codec(codec)
        self.attached = True


if TYPE_CHECKING:
    def _conforms(media: RelayLegMedia) -> LegMedia:
        return media
