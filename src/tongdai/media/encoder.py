"""The recording encoder process: batches of RTP in, MP3 files out.

Recording runs in its own process (``RecorderPool`` in ``tongdai.media.recorder``
runs ``main`` here) so that decoding, mixing and MP3 encoding never hold the relay's
GIL: a relay sharing a GIL with a busy thread waits for it, which shows up as jitter
on every call. Here it only costs CPU, on another core when there is one.

The parent writes frames to our stdin and reads replies from our stdout. A frame is
a 4-byte big-endian length and a pickled tuple (both ends are tongdai; the pipe is
private to the parent):

    ("open", rid, path, start, bitrate, call_id)   a recording starts at ``start``
    ("step", rid, batch, now)             more packets; release mixed audio so far
    ("final", rid, batch, end)            last packets; publish; reply below
    ("done", rid, name)                   reply: the file name, or "" if none

The process runs at nice 19: encoding can wait, relaying cannot. Measured with
``bench/media_bench.py`` (its "waited" column, from /proc/self/schedstat), a
relay sharing a core with an encoder at normal priority spent a quarter to a third
of the time runnable but not running, which is exactly the jitter it added; at
nice 19 that fell to a few percent. When the CPU is saturated the encoder falls
behind first: the relay then holds packets back, and past a bound drops recorded
audio with a warning, never call audio. The process ignores SIGINT and SIGTERM
and exits when its stdin closes, so a shutdown signalled to the whole process
group still lets the parent finish the recordings in progress; when the parent
dies, the audio written so far stays in the partial files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

from tongdai.media.mixdown import Mixdown
from tongdai.media.mp3 import Mp3File

__all__ = ["Encoder", "frame", "main"]

log = logging.getLogger("tongdai.media.encoder")

HEADER = struct.Struct("!I")


def frame(message: tuple[Any, ...]) -> bytes:
    """One frame of the parent/encoder protocol."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class _Recording:
    __slots__ = ("call_id", "mix", "mp3")

    def __init__(self, path: Path, start: float, bitrate: int, call_id: str) -> None:
        self.call_id = call_id
        self.mix = Mixdown(start=start)
        self.mp3 = Mp3File(path=path, bitrate=bitrate)


class Encoder:
    """The encoder's state: every recording in progress, by recording id."""

    def __init__(self) -> None:
        self._recordings: dict[int, _Recording] = {}

    def handle(self, message: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Act on one message; returns the reply to send, if any."""
        match message:
            case ("open", int(rid), str(path), float(start), int(bitrate), str(call_id)):
                self._recordings[rid] = _Recording(Path(path), start, bitrate, call_id)
            case ("step", int(rid), batch, float(now)):
                rec = self._recordings.get(rid)
                if rec is not None:
                    try:
                        _feed(rec.mix, batch)
                        rec.mp3.write(rec.mix.pull(now))
                    except Exception:
                        self._fail(rid)
            case ("final", int(rid), batch, float(end)):
                return ("done", rid, self._final(rid, batch, end))
            case _:
                log.error("encoder: unknown message %r", message[:1])
        return None

    def _final(self, rid: int, batch: Any, end: float) -> str:
        rec = self._recordings.get(rid)
        if rec is None:
            return ""
        try:
            _feed(rec.mix, batch)
            pcm = rec.mix.finish(end)
            if not rec.mix.has_audio:
                rec.mp3.discard()
                return ""
            rec.mp3.write(pcm)
            rec.mp3.commit()
        except Exception:
            self._fail(rid)
            return ""
        finally:
            self._recordings.pop(rid, None)
        return rec.mp3.path.name

    def _fail(self, rid: int) -> None:
        rec = self._recordings.pop(rid, None)
        log.exception("recording of call %s failed and is dropped",
                      rec.call_id if rec else f"#{rid}")
        if rec is not None:
            try:
                rec.mp3.discard()
            except OSError:
                log.warning("could not remove the partial recording %s", rec.mp3.tmp_path)

    def abandon(self) -> None:
        """The parent went away (it died, or it had finished every recording): stop,
        leaving unfinished recordings' partial files for the next start, which
        finishes those its calls refer to and removes the rest (``pbx/recovery.py``)."""
        for rec in self._recordings.values():
            rec.mp3.abandon()
        self._recordings.clear()


def _feed(mix: Mixdown, batch: Any) -> None:
    a, a_times, b, b_times = batch
    mix.feed(0, a, a_times)
    mix.feed(1, b, b_times)


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(19)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s tongdai-encoder %(levelname)s %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    encoder = Encoder()
    while True:
        head = _read_exact(stdin, HEADER.size)
        if head is None:
            break
        body = _read_exact(stdin, HEADER.unpack(head)[0])
        if body is None:
            break
        reply = encoder.handle(pickle.loads(body))
        if reply is not None:
            stdout.write(frame(reply))
            stdout.flush()
    encoder.abandon()


if __name__ == "__main__":
    main()
