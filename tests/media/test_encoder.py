"""The encoder's message handling, in-process (the process itself is tested via the relay)."""

from __future__ import annotations

import pickle
from array import array
from pathlib import Path

from tests.media._rtp import decode_mp3, frames, mp3_seconds, tone_codes, tone_level

from tongdai.media.encoder import HEADER, Encoder, frame

T0 = 50.0


def test_frame_is_length_prefixed_pickle() -> None:
    data = frame(("done", 7, "x.mp3"))
    (n,) = HEADER.unpack_from(data)
    assert n == len(data) - HEADER.size
    assert pickle.loads(data[HEADER.size:]) == ("done", 7, "x.mp3")


def test_open_steps_final(tmp_path: Path) -> None:
    packets = frames(tone_codes(440, 2.0), ssrc=1)
    times = array("d", (T0 + 0.02 * (i + 1) for i in range(len(packets))))
    path = tmp_path / "app" / "call_recording_abc.mp3"
    enc = Encoder()
    assert enc.handle(("open", 1, str(path), T0, 32, "c1")) is None
    assert enc.handle(("step", 1, (packets[:50], times[:50], [], array("d")), T0 + 1.0)) is None
    assert path.with_name(".call_recording_abc.mp3.part").exists()
    assert not path.exists()
    reply = enc.handle(("final", 1, (packets[50:], times[50:], [], array("d")), T0 + 2.0))
    assert reply == ("done", 1, "call_recording_abc.mp3")
    assert abs(mp3_seconds(path) - 2.0) < 0.3
    assert tone_level(decode_mp3(path)[2000:-2000], 440) > 5000
    assert sorted(p.name for p in path.parent.iterdir()) == ["call_recording_abc.mp3"]


def test_unknown_or_silent_recordings_publish_nothing(tmp_path: Path) -> None:
    enc = Encoder()
    empty = ([], array("d"), [], array("d"))
    assert enc.handle(("final", 9, empty, T0)) == ("done", 9, "")
    path = tmp_path / "call_recording_x.mp3"
    enc.handle(("open", 2, str(path), T0, 32, "c2"))
    enc.handle(("step", 2, empty, T0 + 1.0))
    assert enc.handle(("final", 2, empty, T0 + 2.0)) == ("done", 2, "")
    assert list(tmp_path.iterdir()) == []
    assert enc.handle(("bogus",)) is None
