"""Partial recordings left by a process that died: finished into playable MP3s, or removed."""

from __future__ import annotations

from array import array
from pathlib import Path

from tests.media._rtp import decode_mp3, frames, mp3_seconds, tone_codes, tone_level

from tongdai.media.encoder import Encoder
from tongdai.media.mp3 import Mp3File, discard_partial, finish_partial, whole_frames

T0 = 50.0


def _abandoned(tmp_path: Path, seconds: float) -> Path:
    """An encoder whose parent died after ``seconds`` of a 440 Hz call: the partial file."""
    packets = frames(tone_codes(440, seconds), ssrc=1)
    times = array("d", (T0 + 0.02 * (i + 1) for i in range(len(packets))))
    path = tmp_path / "app" / "call_recording_abc.mp3"
    enc = Encoder()
    enc.handle(("open", 1, str(path), T0, 32, "c1"))
    for step in range(int(seconds)):
        batch = slice(step * 50, (step + 1) * 50)
        enc.handle(("step", 1, (packets[batch], times[batch], [], array("d")),
                    T0 + step + 1.0))
    enc.abandon()  # stdin closed: the parent is gone
    part = path.with_name(".call_recording_abc.mp3.part")
    assert part.exists() and not path.exists()
    return part


def test_an_abandoned_recording_is_finished_with_the_audio_so_far(tmp_path: Path) -> None:
    part = _abandoned(tmp_path, 4.0)
    assert finish_partial(part) == "finished"
    path = tmp_path / "app" / "call_recording_abc.mp3"
    assert not part.exists()
    # Released up to the last step minus the mixer's holdback (0.5 s), less what
    # LAME still held: about 3.4 s of the 4.
    assert 3.0 < mp3_seconds(path) < 4.0
    assert tone_level(decode_mp3(path)[1000:-1000], 440) > 5000


def test_a_frame_cut_short_is_dropped(tmp_path: Path) -> None:
    part = _abandoned(tmp_path, 3.0)
    data = part.read_bytes()
    # LAME hands out bytes, not frames: the file usually ends inside one.
    whole = whole_frames(data)
    assert whole % 288 == 0 and 0 <= len(data) - whole < 288  # 32 kbit/s at 8 kHz
    part.write_bytes(data[:whole - 100])
    assert finish_partial(part) == "finished"
    path = tmp_path / "app" / "call_recording_abc.mp3"
    assert path.read_bytes() == data[:whole - 288]
    assert tone_level(decode_mp3(path)[1000:-1000], 440) > 5000


def test_a_file_being_written_is_left_alone(tmp_path: Path) -> None:
    live = Mp3File(path=tmp_path / "call_recording_live.mp3")
    live.write(b"\x00\x10" * 8000)
    part = live.tmp_path
    assert finish_partial(part) == "busy"
    assert discard_partial(part) is False
    assert part.exists()
    live.abandon()  # the writer is gone: now it is an orphan
    assert discard_partial(part) is True
    assert not part.exists()


def test_a_partial_file_without_one_whole_frame_is_removed(tmp_path: Path) -> None:
    part = tmp_path / ".call_recording_x.mp3.part"
    part.write_bytes(b"\xff\xe3")
    assert finish_partial(part) == "removed"
    assert list(tmp_path.iterdir()) == []


def test_whole_frames_walks_layer3_headers() -> None:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes a frame.
    head = bytes([0xFF, 0xFB, 0x90, 0x00])
    frame = head + bytes(413)
    assert whole_frames(frame * 3) == 3 * 417
    assert whole_frames(frame * 3 + frame[:100]) == 3 * 417
    assert whole_frames(b"ID3" + frame) == 0  # not a frame header: nothing is ours
    assert whole_frames(b"") == 0
