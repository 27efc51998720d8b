"""Prompts: the audio tongdai plays to callers, as 8 kHz 16-bit mono linear PCM.

An app's prompts are converted once, at upload, from WAV, MP3, OGG or FLAC (decoded
and resampled by miniaudio, a kept library) and stored as 8 kHz 16-bit mono WAV
files under ``<DATA_DIR>/prompts/<app_id>/<name>.wav``; playing one is then only
reading it. ``add_text`` synthesizes one with espeak-ng when it is installed.

Built-in prompts work with no upload: shipped in the package as raw 8 kHz μ-law
(``builtin/*.ul``, made by ``scripts/make_builtin_prompts.py``: ``welcome``,
``invalid`` and ``goodbye`` spoken by espeak-ng, Vietnamese then English, and the
``hold`` music, a 16-second loop), and tones generated here (``beep``, ``ringback``,
``busy``). An app's own prompt of the same name takes their place for that app.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from array import array
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tongdai.rtp.g711 import decode_ulaw

__all__ = [
    "BUILTIN",
    "MAX_SECONDS",
    "MAX_SOURCE_BYTES",
    "RATE",
    "NoPrompt",
    "Prompt",
    "PromptError",
    "PromptLibrary",
    "builtin_prompt",
    "decode_audio",
]

RATE = 8000
MAX_SOURCE_BYTES = 20 << 20  # an uploaded file; a 10-minute MP3 at 256 kbit/s fits
MAX_SECONDS = 600  # of audio in one prompt (9.6 MB as stored)
MAX_TEXT = 2000  # characters to synthesize
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LANG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")
_BUILTIN_DIR = Path(__file__).with_name("builtin")
_SHIPPED = ("welcome", "invalid", "goodbye", "hold")  # builtin/<name>.ul
_TONES = ("beep", "ringback", "busy")
BUILTIN: tuple[str, ...] = _SHIPPED + _TONES


class PromptError(Exception):
    """A prompt cannot be added or used; the message says why in one sentence."""


class NoPrompt(PromptError):
    """The app has no prompt of that name."""


@dataclass(frozen=True)
class Prompt:
    """Decoded audio: 8 kHz 16-bit signed little-endian mono linear PCM samples."""

    name: str
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * RATE)


def decode_audio(data: bytes) -> bytes:
    """WAV, MP3, OGG Vorbis or FLAC bytes -> 8 kHz 16-bit mono PCM (miniaudio)."""
    import miniaudio  # only when converting: it loads a native library

    try:
        sound = miniaudio.decode(data, output_format=miniaudio.SampleFormat.SIGNED16,
                                 nchannels=1, sample_rate=RATE)
    except miniaudio.MiniaudioError:
        raise PromptError("the file is not audio tongdai can read: give a WAV, MP3, OGG "
                          "or FLAC file") from None
    samples: array[int] = sound.samples
    if len(samples) == 0:
        raise PromptError("the file holds no audio")
    if len(samples) > MAX_SECONDS * RATE:
        raise PromptError(f"the audio is longer than {MAX_SECONDS} seconds; cut it shorter")
    return samples.tobytes()


def _read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, 2, 1):
            raise PromptError(f"{path} is not 8 kHz 16-bit mono")
        return w.readframes(w.getnframes())


def _write_wav(path: Path, pcm: bytes) -> None:
    """Write atomically: a reader (a call playing it) sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# Generated tones ----------------------------------------------------------------


def _tone(freqs: tuple[float, ...], seconds: float, level: float) -> array[int]:
    n = round(seconds * RATE)
    steps = [2 * math.pi * f / RATE for f in freqs]
    amp = level * 32767 / len(freqs)
    return array("h", (round(amp * sum(math.sin(s * i) for s in steps)) for i in range(n)))


def _cadence(freq: float, on: float, off: float, repeats: int) -> bytes:
    # Vietnamese (and ITU-T E.180) call-progress tones are 425 Hz with these cadences.
    burst = _tone((freq,), on, 0.25).tobytes() + bytes(2 * round(off * RATE))
    return burst * repeats


@cache
def _generated(name: str) -> bytes:
    match name:
        case "beep":
            return _tone((1000.0,), 0.4, 0.4).tobytes()
        case "ringback":
            return _cadence(425.0, 1.0, 4.0, 1)
        case "busy":
            return _cadence(425.0, 0.5, 0.5, 4)
    raise NoPrompt(f"there is no built-in prompt {name!r}")


@cache
def builtin_prompt(name: str) -> Prompt:
    """A built-in prompt by name (``BUILTIN``); raises ``NoPrompt`` for others."""
    if name in _SHIPPED:
        codes = (_BUILTIN_DIR / f"{name}.ul").read_bytes()
        return Prompt(name, bytes(decode_ulaw(codes)))
    return Prompt(name, _generated(name))


# The library -----------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise PromptError(f"prompt name {name!r} must be 1-40 lowercase letters, digits, "
                          "'_' or '-', starting with a letter or digit")
    return name


def _check_app(app_id: str) -> str:
    if not _APP_ID.fullmatch(app_id):
        raise PromptError(f"app id {app_id!r} must be letters, digits, '_' or '-'")
    return app_id


class PromptLibrary:
    """Every app's prompts under ``directory`` (``<DATA_DIR>/prompts``), and the built-ins.

    ``get`` is cheap after the first call for a prompt (one ``stat``, to see a prompt
    replaced by another process, such as the CLI, while the server runs).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[tuple[str, str], tuple[int, Prompt]] = {}

    def path(self, app_id: str, name: str) -> Path:
        return self.directory / _check_app(app_id) / f"{check_name(name)}.wav"

    def get(self, app_id: str, name: str) -> Prompt | None:
        """The app's own prompt ``name``, else the built-in one, else ``None``."""
        try:
            path = self.path(app_id, name)
        except PromptError:
            return None
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            self._cache.pop((app_id, name), None)
            return builtin_prompt(name) if name in BUILTIN else None
        cached = self._cache.get((app_id, name))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            prompt = Prompt(name, _read_wav(path))
        except (OSError, EOFError, wave.Error, PromptError):
            return builtin_prompt(name) if name in BUILTIN else None
        self._cache[(app_id, name)] = (mtime, prompt)
        return prompt

    def own(self, app_id: str) -> list[str]:
        """The names of the app's uploaded prompts."""
        folder = self.directory / _check_app(app_id)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.wav") if _NAME.fullmatch(p.stem))

    def names(self, app_id: str) -> list[str]:
        """Every prompt the app can play: the built-ins and its own."""
        return sorted(set(BUILTIN) | set(self.own(app_id)))

    def add(self, app_id: str, name: str, source: Path) -> Prompt:
        """Convert ``source`` (WAV/MP3/OGG/FLAC) and keep it as the app's ``name``."""
        path = self.path(app_id, name)
        try:
            size = source.stat().st_size
            if size > MAX_SOURCE_BYTES:
                raise PromptError(f"{source} is larger than {MAX_SOURCE_BYTES >> 20} MB")
            data = source.read_bytes()
        except OSError as exc:
            raise PromptError(f"cannot read {source}: {exc.strerror or exc}") from None
        prompt = Prompt(name, decode_audio(data))
        _write_wav(path, prompt.pcm)
        return prompt

    def add_text(self, app_id: str, name: str, text: str, lang: str) -> Prompt:
        """Synthesize ``text`` in language ``lang`` (e.g. ``vi``) with espeak-ng."""
        path = self.path(app_id, name)
        if not text.strip():
            raise PromptError("the text to speak is empty")
        if len(text) > MAX_TEXT:
            raise PromptError(f"the text is longer than {MAX_TEXT} characters")
        if not _LANG.fullmatch(lang):
            raise PromptError(f"language {lang!r} is not a language code such as vi or en-us")
        prompt = Prompt(name, decode_audio(synthesize(text, lang)))
        _write_wav(path, prompt.pcm)
        return prompt

    def remove(self, app_id: str, name: str) -> None:
        """Delete the app's own prompt ``name`` (a built-in of that name comes back)."""
        path = self.path(app_id, name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NoPrompt(f"app {app_id} has no prompt {name!r} of its own "
                           "(see tongdai prompt list)") from None
        self._cache.pop((app_id, name), None)


def synthesize(text: str, lang: str) -> bytes:
    """WAV bytes of ``text`` spoken by espeak-ng in voice ``lang``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PromptError("espeak-ng is not installed (apt install espeak-ng); install it "
                          "or upload a recording instead")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        try:
            run = subprocess.run([exe, "-v", lang, "-w", str(out), "--stdin"],
                                 input=text.encode(), capture_output=True, timeout=60,
                                 check=False)
        except subprocess.TimeoutExpired:
            raise PromptError("espeak-ng took too long to speak the text") from None
        err = run.stderr.decode(errors="replace").strip()
        if run.returncode != 0 or not out.is_file() or "voice" in err.lower():
            raise PromptError(f"espeak-ng cannot speak language {lang!r}"
                              + (f": {err.splitlines()[0]}" if err else ""))
        return out.read_bytes()
