"""After a crash: what the last run left behind becomes records before we serve again.

An answered call has a checkpoint (``store/checkpoints.py``) from its answer until its
CDR is stored. A checkpoint still there at start-up is a call that a crash cut off:
it becomes the call's CDR, answered (``SUCCESS``), lasting until the end it recorded
(the call had ended; its recording was being finished) or else until its last
refresh, hung up by ``system``. Its recording, if the partial file can be finished,
is published and kept in the CDR (``media/mp3.py``: ``finish_partial``).

Partial recordings nobody refers to are removed; a file that a live process still
writes (it holds the file's lock) is left alone, so servers sharing a data dir never
touch each other's work. Each server names its checkpoints with ``node_id``; the
checkpoints of a server that has not refreshed them for ``STALE_AFTER`` seconds (it
died and never came back) are taken over by the next server that starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tongdai import logs
from tongdai.keys import load_or_create_key
from tongdai.media.mp3 import PART_SUFFIX, discard_partial, finish_partial
from tongdai.pbx.cdr import recovered
from tongdai.settings import Settings
from tongdai.store.errors import Conflict, StoreError
from tongdai.store.protocol import CallRecords
from tongdai.store.records import CallCheckpoint, Cdr

__all__ = ["STALE_AFTER", "Recovered", "node_id", "recover"]

log = logging.getLogger("tongdai.recovery")

STALE_AFTER = 3600.0
# How long to wait for a dying process (the old recording encoder) to let go of a
# partial recording that a checkpoint refers to.
_LOCK_WAIT = 5.0
_LOCK_POLL = 0.1  # seconds between looks while waiting


@dataclass(frozen=True, slots=True)
class Recovered:
    cdrs: tuple[Cdr, ...]
    recordings: int  # partial recordings finished and kept in a CDR
    removed: int  # partial recordings no call refers to, deleted


def node_id(settings: Settings) -> str:
    """This server's name on its checkpoints: from a key made once in its data dir and
    the SIP address it serves, so neither two machines sharing a database nor two
    processes sharing a data dir ever recover each other's calls."""
    key = load_or_create_key(settings.data_dir, "node.key")
    where = f"{settings.sip_host}:{settings.sip_port}".encode()
    return hashlib.sha256(key + b"\0" + where).hexdigest()[:16]


async def recover(*, store: CallRecords, node: str, recordings_dir: Path,
                  now: float | None = None) -> Recovered:
    """Turn this node's leftover checkpoints into CDRs and clean up partial recordings."""
    now = time.time() if now is None else now
    cps = await store.list_checkpoints(node=node, stale_before=now - STALE_AFTER)
    cdrs: list[Cdr] = []
    kept = 0
    for cp in cps:
        recording = ""
        if cp.recording:
            recording = await asyncio.to_thread(_finish_recording, recordings_dir / cp.app_id,
                                                cp.recording)
            kept += bool(recording)
        cdrs.append(recovered(cp, recording))
    stored = await _store(store, cps, cdrs)
    for cdr in stored:
        logs.event(log, "call.recovered", call_id=cdr.call_id, app=cdr.app_id,
                   status=cdr.status_detail, duration=cdr.duration_seconds,
                   billing=cdr.billing_seconds, hangup_by=cdr.hangup_by,
                   recording=bool(cdr.recording))
    removed = await asyncio.to_thread(_sweep, recordings_dir)
    if cps or removed:
        logs.event(log, "calls.recovered", level=logging.WARNING, calls=len(stored),
                   recordings=kept, partials_removed=removed)
    return Recovered(cdrs=tuple(stored), recordings=kept, removed=removed)


async def _store(store: CallRecords, cps: Sequence[CallCheckpoint], cdrs: list[Cdr]) -> list[Cdr]:
    if not cdrs:
        return []
    try:
        await store.write_calls(cdrs=cdrs)
        return cdrs
    except StoreError:
        pass  # one of them already has a CDR: one by one
    stored = []
    for cp, cdr in zip(cps, cdrs, strict=True):
        try:
            await store.add_cdr(cdr)
            stored.append(cdr)
        except Conflict:
            # The CDR made it; only deleting the checkpoint did not.
            await store.delete_checkpoint(cp.call_id)
    return stored


def _finish_recording(directory: Path, name: str) -> str:
    """``name`` if the recording is (or can be made) playable, else ""."""
    final = directory / name
    part = directory / f".{name}{PART_SUFFIX}"
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        if final.exists():
            return name  # published before the crash; only the CDR was missing
        try:
            result = finish_partial(part)
        except FileNotFoundError:
            return name if final.exists() else ""  # no audio ever reached a file
        except OSError as exc:
            log.error("partial recording %s could not be finished: %s", part, exc)
            return ""
        if result == "finished":
            return name
        if result == "removed":
            return ""
        if time.monotonic() > deadline:
            log.warning("partial recording %s is still being written by another process; "
                        "its call's CDR is stored without it", part)
            return ""
        time.sleep(_LOCK_POLL)


def _sweep(recordings_dir: Path) -> int:
    """Remove partial recordings no call refers to any more (those that are not locked
    by a live writer); how many."""
    removed = 0
    for part in recordings_dir.glob(f"*/.*{PART_SUFFIX}"):
        try:
            removed += discard_partial(part)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("partial recording %s could not be removed: %s", part, exc)
    return removed
