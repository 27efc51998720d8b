"""A streaming MP3 file, published atomically. Blocking: run it off the event loop.

PCM goes through LAME (``lameenc``, which releases the GIL while it encodes) into a
hidden temporary file next to the final one; ``commit`` flushes the encoder, fsyncs
and renames it into place (``os.replace`` is atomic within one directory), then
fsyncs the directory so the name survives a crash. A reader therefore sees either
no file or the whole file, never a half-written one.

Through a crash: every write reaches the OS at once, and the writing process holds
an exclusive ``flock`` on the temporary file, which the kernel releases when that
process ends, however it ends. ``finish_partial`` turns a temporary file nobody
holds any more into a playable MP3 of the audio written so far.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import BinaryIO, Literal

import lameenc

__all__ = [
    "PART_SUFFIX", "Mp3File", "discard_partial", "final_name", "finish_partial", "whole_frames",
]

PART_SUFFIX = ".part"

# Layer III bit rates (kbit/s) by bit-rate index, and sample rates by index, per MPEG
# version: ISO/IEC 11172-3 §2.4.2.3 (MPEG-1), 13818-3 (MPEG-2) and MPEG-2.5 (LAME's
# extension below 16 kHz; what 8 kHz calls are encoded as). Version bits: 3 = MPEG-1,
# 2 = MPEG-2, 0 = MPEG-2.5.
_KBPS = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def whole_frames(data: bytes) -> int:
    """The length of the longest prefix of ``data`` made of whole Layer III frames."""
    pos = 0
    while pos + 4 <= len(data):
        h = int.from_bytes(data[pos:pos + 4], "big")
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        index, rate_index, padding = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
        if h >> 21 != 0x7FF or version == 1 or layer != 1 or index in (0, 15) \
                or rate_index == 3:
            break  # no frame header here (free-format frames are not ours either)
        kbps = _KBPS[3 if version == 3 else 2][index]
        # 1152 samples per MPEG-1 frame, 576 for MPEG-2/2.5: bytes = samples/8 x rate.
        size = (144 if version == 3 else 72) * kbps * 1000 // _RATES[version][rate_index]
        size += padding
        if pos + size > len(data):
            break
        pos += size
    return pos


def final_name(part: Path) -> Path:
    """``.NAME.part`` -> ``NAME``, in the same directory."""
    return part.with_name(part.name[1:-len(PART_SUFFIX)])


def finish_partial(part: Path) -> Literal["finished", "removed", "busy"]:
    """Publish an orphaned partial recording ``part`` under its final name.

    "busy": a live process is still writing it (it holds the lock); left alone.
    "removed": not one whole frame in it; deleted. "finished": cut to whole frames
    (the last may have been cut short), fsynced and renamed into place.
    """
    with open(part, "r+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "busy"
        size = whole_frames(f.read())
        if size == 0:
            part.unlink()
            return "removed"
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
        os.replace(part, final_name(part))  # still locked: nobody else renames it
    _fsync_dir(part.parent)
    return "finished"


def discard_partial(part: Path) -> bool:
    """Delete a partial recording unless a live process still writes it."""
    with open(part, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        part.unlink()
    return True


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Mp3File:
    """MPEG-2.5 layer III, mono, constant bit rate, from 16-bit PCM at 8 kHz."""

    def __init__(self, *, path: Path, bitrate: int = 32, sample_rate: int = 8000) -> None:
        self.path = path
        self.tmp_path = path.with_name(f".{path.name}{PART_SUFFIX}")
        self._encoder = lameenc.Encoder()
        self._encoder.set_in_sample_rate(sample_rate)
        self._encoder.set_out_sample_rate(sample_rate)
        self._encoder.set_channels(1)
        self._encoder.set_bit_rate(bitrate)
        # Quality 7 ("fast"): for 8 kHz speech it sounds the same as 2 and encodes
        # about three times faster, which is what lets one core record 300 calls.
        self._encoder.set_quality(7)
        self._encoder.silence()
        self._file: BinaryIO | None = None

    def write(self, pcm: bytes) -> None:
        """Encode 16-bit little-endian mono samples and append the MP3 frames."""
        if not pcm:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.tmp_path.open("wb")
            # Tells a later start that this file is being written (module docstring).
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(self._encoder.encode(pcm))
        # To the OS now (about once a second per call), not when the buffer fills:
        # if this process dies, the audio so far is in the file.
        self._file.flush()

    def commit(self) -> None:
        """Finish the file and make it appear under its final name."""
        if self._file is None:
            raise RuntimeError("nothing was written to this MP3 file")
        f, self._file = self._file, None
        with f:
            f.write(self._encoder.flush())
            f.flush()
            os.fsync(f.fileno())
            os.replace(self.tmp_path, self.path)  # renamed while still locked
        _fsync_dir(self.path.parent)

    def abandon(self) -> None:
        """Stop writing and keep the partial file for ``finish_partial`` (the next
        start decides whether a call still refers to it)."""
        if self._file is not None:
            f, self._file = self._file, None
            with contextlib.suppress(OSError):
                f.close()

    def discard(self) -> None:
        """Drop whatever was written; no file remains."""
        self.tmp_path.unlink(missing_ok=True)  # while still locked, then release
        if self._file is not None:
            self._file.close()
            self._file = None
