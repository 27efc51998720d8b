"""Small audio measurements for tests: loudness and the frequency of a pure tone."""

from __future__ import annotations

import math
import subprocess
import wave
from array import array
from pathlib import Path


def samples(path: Path) -> tuple[array[int], int]:
    """Mono 16-bit samples and the rate; other formats are converted with sox."""
    if path.suffix != ".wav":
        raw = subprocess.run(
            ["sox", str(path), "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1",
             "-"], capture_output=True, check=True,
        ).stdout
        out = array("h")
        out.frombytes(raw[: len(raw) // 2 * 2])
        return out, 8000
    with wave.open(str(path)) as w:
        rate, width, ch = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit audio")
    out = array("h")
    out.frombytes(data)
    if ch > 1:
        out = out[::ch]
    return out, rate


def rms(path: Path) -> float:
    """Root mean square level, full scale = 1.0 (a 0.5-volume tone is ≈ 0.35)."""
    s, _ = samples(path)
    if not s:
        return 0.0
    return math.sqrt(sum(x * x for x in s) / len(s)) / 32768.0


def dominant_hz(path: Path) -> float:
    """The frequency of a single tone, from zero crossings of the loud middle part."""
    s, rate = samples(path)
    # skip the first and last half second (call set-up, jitter buffer fill)
    s = s[rate // 2: len(s) - rate // 2] if len(s) > 2 * rate else s
    crossings = sum(1 for i in range(1, len(s)) if (s[i - 1] < 0) != (s[i] < 0))
    return crossings / 2 / (len(s) / rate) if s else 0.0


def tone_power(path: Path, hz: float) -> float:
    """Relative power at ``hz`` (Goertzel), normalised by the signal's energy."""
    s, rate = samples(path)
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    energy = 0.0
    for x in s:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
        energy += x * x
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return power / (energy * len(s)) if energy else 0.0


def duration(path: Path) -> float:
    """Length in seconds."""
    s, rate = samples(path)
    return len(s) / rate
