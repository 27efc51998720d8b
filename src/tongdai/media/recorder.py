"""Call recording, from the relay's side: hand batches of RTP to encoder processes.

The relay only appends each datagram and its arrival time to a list (recording is
the one consumer that needs to parse packets, and it parses them later, in bulk).
About once a second the session hands those lists to ``CallRecorder.submit``, which
writes them down a pipe to an encoder process (``tongdai.media.encoder``); that
process places, mixes and encodes them into the call's MP3 as it goes, so memory
per call stays at a few seconds of audio whatever the call's length, and none of
that work competes with the relay for the GIL.

``finish`` sends the last batch and waits for the encoder to publish the file
atomically; it returns the file name, or ``""`` when no G.711 audio arrived at all.
A failure (disk full, the encoder process dying) costs the recording, logged, never
the call. With several encoder processes a call sticks to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import secrets
import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tongdai.media.encoder import HEADER, frame

__all__ = ["Batch", "CallRecorder", "RecorderPool", "new_recording_name"]

log = logging.getLogger("tongdai.media")

_ALPHABET = string.ascii_lowercase + string.digits
# Unsent bytes to one encoder beyond which sessions hold their packets back.
_BACKLOG = 8 << 20
# A stuck disk must not keep a call (and its CDR) from ending.
_FINISH_TIMEOUT = 120
# Seconds an encoder process has to finish its files once told to stop, then it is killed.
_STOP_TIMEOUT = 10.0

Batch = tuple[Sequence[bytes], Sequence[float], Sequence[bytes], Sequence[float]]


def new_recording_name(prefix: str = "call_recording_") -> str:
    """``call_recording_<20 random lowercase letters and digits>.mp3`` (103 bits), or
    with another ``prefix`` (``voicemail_``)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(20)) + ".mp3"


class _Worker:
    """One encoder process and the pipe to it."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.generation = 0  # bumps when a new process replaces a dead one
        self.pending: dict[int, asyncio.Future[str]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and \
            self._reader is not None and not self._reader.done()

    async def ensure(self) -> None:
        if self.alive:
            return
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from tongdai.media.encoder import main; main()",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self.generation += 1
        self._reader = asyncio.get_running_loop().create_task(self._read(self.proc))

    def send(self, message: tuple[Any, ...]) -> bool:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            return False
        self.proc.stdin.write(frame(message))
        return True

    @property
    def backlog(self) -> int:
        if self.proc is None or self.proc.stdin is None:
            return 0
        return self.proc.stdin.transport.get_write_buffer_size()

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                head = await proc.stdout.readexactly(HEADER.size)
                body = await proc.stdout.readexactly(HEADER.unpack(head)[0])
                _, rid, name = _loads(body)
                fut = self.pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result(name)
        except asyncio.IncompleteReadError:
            pass
        except Exception:
            log.exception("the recording encoder (pid %s) misbehaved; stopping it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self.pending:
            log.error("the recording encoder (pid %s) exited; %d recordings are lost",
                      proc.pid, len(self.pending))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result("")
        self.pending.clear()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader


def _loads(body: bytes) -> tuple[Any, ...]:
    message = pickle.loads(body)  # only ever our own child's replies
    if not (isinstance(message, tuple) and len(message) == 3 and message[0] == "done"):
        raise ValueError(f"unexpected reply from the recording encoder: {message!r:.80}")
    return message


class RecorderPool:
    """Encoder processes for all calls' recordings (started on first use)."""

    def __init__(self, *, processes: int = 1, bitrate: int = 32) -> None:
        self.bitrate = bitrate
        self._workers = [_Worker() for _ in range(processes)]
        self._ids = itertools.count(1)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None and w.alive]

    async def ready(self) -> None:
        """Start (or restart) the encoder processes; call before ``open``."""
        for w in self._workers:
            await w.ensure()

    def open(self, *, directory: Path, start: float, call_id: str = "",
             name: str | None = None) -> CallRecorder:
        """A new recording of one call, from ``start`` (monotonic seconds), to the file
        ``name`` in ``directory`` (default: a new ``call_recording_...`` name)."""
        rid = next(self._ids)
        worker = self._workers[rid % len(self._workers)]
        rec = CallRecorder(rid=rid, worker=worker, name=name or new_recording_name(),
                           call_id=call_id)
        message = ("open", rid, str(directory / rec.name), start, self.bitrate, call_id)
        if not worker.send(message):
            rec.broken = True
        return rec

    async def stop(self) -> None:
        for w in self._workers:
            await w.stop()


class CallRecorder:
    """One call's recording, as seen from the relay."""

    def __init__(self, *, rid: int, worker: _Worker, name: str, call_id: str) -> None:
        self.rid = rid
        self.name = name
        self.call_id = call_id
        self.broken = False
        self._worker = worker
        self._generation = worker.generation

    @property
    def _usable(self) -> bool:
        return not self.broken and self._worker.generation == self._generation and \
            self._worker.alive

    @property
    def busy(self) -> bool:
        """The encoder lags behind: keep buffering and try again later."""
        return self._worker.backlog > _BACKLOG

    def submit(self, batch: Batch, now: float) -> None:
        """More packets: leg a's datagrams and arrival times, then leg b's."""
        if self._usable:
            self._worker.send(("step", self.rid, batch, now))

    async def finish(self, batch: Batch, end: float) -> str:
        """The last packets; returns the published file name, or "" when none."""
        if not self._usable:
            log.error("recording of call %s is lost: its encoder process went away",
                      self.call_id)
            return ""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._worker.pending[self.rid] = fut
        self._worker.send(("final", self.rid, batch, end))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), _FINISH_TIMEOUT)
        except TimeoutError:
            log.error("recording of call %s took over %d s to finish; leaving it out of "
                      "the CDR", self.call_id, _FINISH_TIMEOUT)
            return ""
