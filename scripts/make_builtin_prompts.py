"""Make the built-in prompts shipped in src/tongdai/media/builtin/ (raw 8 kHz μ-law).

    python scripts/make_builtin_prompts.py     # needs espeak-ng and sox

Run once by a developer when a built-in changes; the files are committed, so a fresh
install plays them with no tool installed. ``welcome``, ``invalid`` and ``goodbye``
are spoken by espeak-ng, Vietnamese then English; ``hold`` is a calm 16-second loop
of an arpeggio over slow chords, computed here.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from array import array
from pathlib import Path

from tongdai.media.mixdown import mix_pcm16
from tongdai.rtp.g711 import encode_ulaw

OUT = Path(__file__).resolve().parents[1] / "src" / "tongdai" / "media" / "builtin"
RATE = 8000
SPOKEN = {
    "welcome": ("Xin chào quý khách.", "Welcome."),
    "invalid": ("Lựa chọn không hợp lệ.", "That is not a valid choice."),
    "goodbye": ("Xin cảm ơn, tạm biệt.", "Thank you, goodbye."),
}
NOTE = RATE // 4  # eighth notes at 120 bpm
BAR = 8 * NOTE  # one chord per two-second bar


def speak(name: str, vi: str, en: str, tmp: Path) -> None:
    parts = []
    for lang, text in (("vi", vi), ("en-us", en)):
        wav = tmp / f"{name}-{lang}.wav"
        subprocess.run(["espeak-ng", "-v", lang, "-s", "150", "-w", str(wav), text],
                       check=True)
        parts.append(str(wav))
    gap = tmp / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", str(gap), "trim", "0", "0.3"],
                   check=True)
    subprocess.run(["sox", parts[0], str(gap), parts[1], "-r", str(RATE), "-c", "1",
                    "-t", "ul", str(OUT / f"{name}.ul"), "norm", "-3"], check=True)


def note(freq: float) -> bytes:
    step = 2 * math.pi * freq / RATE  # a plucked note dying away within its eighth
    return array("h", (round(0.18 * 32767 * math.exp(-4.0 * i / NOTE) * math.sin(step * i))
                       for i in range(NOTE))).tobytes()


def pad(chord: tuple[float, ...]) -> bytes:
    steps = [2 * math.pi * f / RATE for f in chord]  # held softly, rising and falling
    return array("h", (round(0.05 * 32767 / 3 * math.sin(math.pi * t / BAR) * sum(
        math.sin(s * t) for s in steps)) for t in range(BAR))).tobytes()


def hold_music() -> bytes:
    chords = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63),
              (174.61, 220.00, 261.63), (196.00, 246.94, 293.66))  # I-vi-IV-V in C
    bars = []
    for chord in chords:
        line = (chord[0] * 2, chord[1] * 2, chord[2] * 2, chord[1] * 2) * 2
        bars.append(mix_pcm16(b"".join(note(f) for f in line), pad(chord)))
    pcm = array("h")
    pcm.frombytes(b"".join(bars) * 2)
    return encode_ulaw(pcm)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, (vi, en) in SPOKEN.items():
            speak(name, vi, en, Path(tmp))
    (OUT / "hold.ul").write_bytes(hold_music())
    for f in sorted(OUT.glob("*.ul")):
        print(f"{f.name}: {f.stat().st_size / RATE:.1f} s")


if __name__ == "__main__":
    main()
