"""Call recording: buffered RTP in, an MP3 file out, all the work off the event loop.

The relay only appends each datagram and its arrival time to a list (the recording
is the one consumer that needs to parse packets, so it parses them later, in bulk).
About once a second the session hands those lists to ``submit``, which runs one step
on the recorder's executor: place and mix (``Mixdown``), encode and append to the
temporary file (``Mp3File``). Steps of one call run one after another; memory per
call stays at a few seconds of audio whatever the call's length.

``finish`` runs the last step and publishes the file atomically, returning its name,
or ``""`` when no G.711 audio arrived at all. A failure (disk full, say) costs the
recording, logged once, never the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

from tongdai.media.mixdown import Mixdown
from tongdai.media.mp3 import Mp3File

__all__ = ["CallRecorder", "new_recording_name"]

log = logging.getLogger("tongdai.media")

_ALPHABET = string.ascii_lowercase + string.digits


def new_recording_name() -> str:
    """``call_recording_<20 random lowercase letters and digits>.mp3`` (103 bits)."""
    return "call_recording_" + "".join(secrets.choice(_ALPHABET) for _ in range(20)) + ".mp3"


Batch = tuple[Sequence[bytes], Sequence[float], Sequence[bytes], Sequence[float]]


class CallRecorder:
    """Records one call from ``start`` (monotonic seconds) into ``directory``."""

    def __init__(self, *, directory: Path, start: float, executor: Executor,
                 bitrate: int = 32, call_id: str = "") -> None:
        self.name = new_recording_name()
        self.call_id = call_id
        self._mix = Mixdown(start=start)
        self._mp3 = Mp3File(path=directory / self.name, bitrate=bitrate)
        self._executor = executor
        self._job: asyncio.Future[None] | None = None
        self._failed = False

    @property
    def busy(self) -> bool:
        """A step is still running; keep buffering and try again later."""
        return self._job is not None and not self._job.done()

    def submit(self, batch: Batch, now: float) -> None:
        """Run one step on ``batch`` (leg a's packets and arrivals, then leg b's)."""
        if self.busy:
            raise RuntimeError("a recording step is already running for this call")
        loop = asyncio.get_running_loop()
        self._job = loop.run_in_executor(self._executor, self._step, batch, now)

    async def finish(self, batch: Batch, end: float) -> str:
        """The last step: returns the published file name, or "" when none."""
        if self._job is not None:
            await self._job
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._final, batch, end)

    # In the executor ---------------------------------------------------------

    def _feed(self, batch: Batch) -> None:
        a, a_times, b, b_times = batch
        self._mix.feed(0, a, a_times)
        self._mix.feed(1, b, b_times)

    def _step(self, batch: Batch, now: float) -> None:
        if self._failed:
            return
        try:
            self._feed(batch)
            self._mp3.write(self._mix.pull(now))
        except Exception:
            self._fail()

    def _final(self, batch: Batch, end: float) -> str:
        if self._failed:
            return ""
        try:
            self._feed(batch)
            pcm = self._mix.finish(end)
            if not self._mix.has_audio:
                self._mp3.discard()
                return ""
            self._mp3.write(pcm)
            self._mp3.commit()
        except Exception:
            self._fail()
            return ""
        return self.name

    def _fail(self) -> None:
        self._failed = True
        log.exception("recording of call %s failed and is dropped", self.call_id)
        try:
            self._mp3.discard()
        except OSError:
            log.warning("could not remove the partial recording %s", self._mp3.tmp_path)
