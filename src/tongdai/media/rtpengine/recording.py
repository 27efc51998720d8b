"""rtpengine's pcap of a call, turned into tongdai's MP3 of it.

rtpengine writes what it receives on the call's ports to
``<recording-dir>/pcaps/<call-id>-<random>.pcap`` and, once the call is deleted,
``<recording-dir>/metadata/rtpengine-meta-<call-id>-<random>.txt`` (first line: the
pcap's path). tongdai reads the pcap from the same directory (``spool``: the same
machine, or a shared file system), leaves out what arrived while recording was
paused, and hands the rest to the built-in relay's encoder processes, so the MP3 is
mixed, named and published exactly as the relay's are. Then both files are removed.
"""

from __future__ import annotations

import asyncio
import glob
import logging
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

from tongdai.media.recorder import RecorderPool
from tongdai.media.rtpengine.pcap import PcapError, Received, read_pcap

__all__ = ["PcapConverter", "Take"]

log = logging.getLogger("tongdai.media")

# Packets per batch handed to the encoder: about 2.5 s of both directions.
_CHUNK = 250


@dataclass(frozen=True, slots=True, kw_only=True)
class Take:
    """One recorded call: where its audio arrived and what of it to keep."""

    call_id: str
    directory: Path
    name: str
    ports: tuple[int, int]  # rtpengine's ports of legs a and b
    start: float  # wall clock, like the pcap's arrival times
    end: float
    paused: tuple[tuple[float, float], ...]  # (from, until) intervals left silent


class PcapConverter:
    def __init__(self, *, spool: Path, recorders: RecorderPool) -> None:
        self.spool = spool
        self.recorders = recorders

    async def convert(self, take: Take) -> str:
        """The MP3's file name, or "" when no audio was recorded (logged)."""
        try:
            data = await asyncio.to_thread(self._take_pcap, take.call_id)
            received = read_pcap(data) if data is not None else {}
        except (OSError, PcapError) as exc:
            log.error("recording of call %s is lost: cannot read rtpengine's pcap in "
                      "%s: %s", take.call_id, self.spool, exc)
            return ""
        if data is None:
            log.error("recording of call %s is lost: rtpengine wrote no pcap for it in "
                      "%s (is TONGDAI_RTPENGINE_RECORDING_DIR rtpengine's "
                      "--recording-dir?)", take.call_id, self.spool)
            return ""
        a, b = (_kept(received.get(port), take) for port in take.ports)
        await self.recorders.ready()
        recorder = self.recorders.open(directory=take.directory, start=take.start,
                                       call_id=take.call_id, name=take.name)
        for at in range(0, max(len(a.packets), len(b.packets)), _CHUNK):
            upto = min(_last(a, at), _last(b, at))
            recorder.submit((a.packets[at:at + _CHUNK], a.arrivals[at:at + _CHUNK],
                             b.packets[at:at + _CHUNK], b.arrivals[at:at + _CHUNK]), upto)
        return await recorder.finish(([], [], [], []), take.end)

    def _take_pcap(self, call_id: str) -> bytes | None:
        """The call's pcap, read and then removed with its metadata (None: none)."""
        pattern = f"rtpengine-meta-{glob.escape(call_id)}-*.txt"
        for meta in sorted((self.spool / "metadata").glob(pattern)):
            first = meta.read_text(errors="replace").partition("\n")[0].strip()
            # The path is rtpengine's; the file is where tongdai sees the spool.
            pcap = self.spool / "pcaps" / Path(first).name
            data = pcap.read_bytes()
            pcap.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return data
        return None


def _kept(got: Received | None, take: Take) -> Received:
    """What arrived between start and end, outside the paused intervals."""
    if got is None:
        return Received()
    keep = Received()
    times = got.arrivals
    edges = [(take.start, take.end)]
    for since, until in take.paused:
        edges = [piece for lo, hi in edges
                 for piece in ((lo, min(hi, since)), (max(lo, until), hi)) if piece[0] < piece[1]]
    for lo, hi in edges:
        i, j = bisect_left(times, lo), bisect_right(times, hi)
        keep.packets.extend(got.packets[i:j])
        keep.arrivals.extend(times[i:j])
    return keep


def _last(got: Received, at: int) -> float:
    """The arrival time of the last packet in the batch from ``at`` (inf: none)."""
    if at >= len(got.arrivals):
        return float("inf")
    return got.arrivals[min(at + _CHUNK, len(got.arrivals)) - 1]
