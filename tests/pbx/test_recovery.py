"""At start-up, the checkpoints and partial recordings a crash left become CDRs and MP3s."""

from __future__ import annotations

from array import array
from pathlib import Path

from tests.media._rtp import frames, mp3_seconds, tone_codes
from tests.store.support import stored_cdr

from tongdai.media.encoder import Encoder
from tongdai.media.mp3 import Mp3File
from tongdai.pbx.recovery import STALE_AFTER, node_id, recover
from tongdai.settings import load_settings
from tongdai.store.records import CallCheckpoint, Cdr
from tongdai.store.sql import SqlStore

NOW = 1_800_000_000.0
ME = "node-me"


def _cp(app_id: str, call_id: str, **kw: object) -> CallCheckpoint:
    args: dict[str, object] = {
        "call_id": call_id, "app_id": app_id, "node": ME,
        "caller": {"number": "0901234567", "type": "realnumber"},
        "callee": {"number": "101", "type": "user", "username": "alice"},
        "klass": "trunking", "did_number": "02873019555", "direction": "to_ab",
        "started_at": NOW - 60.0, "answered_at": NOW - 55.0, "checkpoint_at": NOW - 12.4,
        "sip_users": ("alice",),
    } | kw
    return CallCheckpoint(**args)  # type: ignore[arg-type]


def _partial(directory: Path, name: str, seconds: int) -> None:
    """What the encoder of a killed server leaves: ``seconds`` of audio, unfinished."""
    packets = frames(tone_codes(440, float(seconds)), ssrc=1)
    times = array("d", (0.02 * (i + 1) for i in range(len(packets))))
    enc = Encoder()
    enc.handle(("open", 1, str(directory / name), 0.0, 32, "c"))
    for s in range(seconds):
        part = slice(s * 50, (s + 1) * 50)
        enc.handle(("step", 1, (packets[part], times[part], [], array("d")), s + 1.0))
    enc.abandon()


async def test_leftover_checkpoints_become_cdrs(store: SqlStore, tmp_path: Path) -> None:
    app = (await store.create_app("a")).app_id
    recs = tmp_path / "recordings"
    d = recs / app
    d.mkdir(parents=True)
    _partial(d, "call_recording_live.mp3", 4)
    (d / "call_recording_done.mp3").write_bytes(b"published before the crash")
    _partial(d, "call_recording_orphan.mp3", 2)  # its call never got a checkpoint
    writer = Mp3File(path=d / "call_recording_other.mp3")  # another live server's
    writer.write(b"\x00\x10" * 8000)

    up = _cp(app, "up", recording="call_recording_live.mp3")
    ended = _cp(app, "ended", recording="call_recording_done.mp3", ended_at=NOW - 20.0,
                hangup_by="callee", checkpoint_at=NOW - 25.0)
    no_audio = _cp(app, "silent", recording="call_recording_none.mp3")
    other = _cp(app, "other", node="node-other", checkpoint_at=NOW - 3.0)
    dead = _cp(app, "dead", node="node-gone", checkpoint_at=NOW - STALE_AFTER - 1)
    await store.write_calls(checkpoints=[up, ended, no_audio, other, dead])

    got = await recover(store=store, node=ME, recordings_dir=recs, now=NOW)

    by_id = {c.call_id: c for c in got.cdrs}
    assert sorted(by_id) == ["dead", "ended", "silent", "up"]
    assert got.recordings == 2 and got.removed == 1
    # A call cut off while up: answered, as long as its last checkpoint says.
    c = by_id["up"]
    assert (c.status_detail, c.hangup_by, c.sip_code) == ("SUCCESS", "system", 200)
    assert (c.duration_seconds, c.billing_seconds) == (48, 43)  # 47.6 and 42.6 s
    assert c.recording == "call_recording_live.mp3"
    assert 3.0 < mp3_seconds(d / c.recording) < 4.0
    assert (c.caller, c.callee, c.did_number, c.direction, c.klass, c.sip_users) == (
        up.caller, up.callee, up.did_number, up.direction, up.klass, up.sip_users)
    # A call that had ended, its recording being finished: exact, with its file.
    e = by_id["ended"]
    assert (e.duration_seconds, e.billing_seconds, e.hangup_by) == (40, 35, "callee")
    assert e.recording == "call_recording_done.mp3"
    assert by_id["silent"].recording == ""
    assert await stored_cdr(store, "up") == c
    # Only another live server's call is left, with its file.
    assert [cp.call_id for cp in await store.list_checkpoints(node="node-other")] == ["other"]
    assert await store.list_checkpoints(node=ME) == []
    assert sorted(p.name for p in d.iterdir()) == [
        ".call_recording_other.mp3.part", "call_recording_done.mp3", "call_recording_live.mp3"]
    writer.discard()

    # A second start finds nothing more to do.
    again = await recover(store=store, node=ME, recordings_dir=recs, now=NOW + 1)
    assert again.cdrs == () and again.removed == 0


async def test_a_call_whose_cdr_made_it_only_loses_its_checkpoint(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = (await store.create_app("a")).app_id
    cp = _cp(app, "c1")
    cdr = Cdr(call_id="c1", app_id=app, caller=cp.caller, callee=cp.callee, klass=cp.klass,
              did_number=cp.did_number, direction=cp.direction, status_detail="SUCCESS",
              duration_seconds=60, unix_timestamp=int(cp.started_at), billing_seconds=55,
              started_at=cp.started_at, answered_at=cp.answered_at, ended_at=NOW,
              hangup_by="caller")
    await store.add_cdr(cdr)
    await store.write_calls(checkpoints=[cp, _cp(app, "c2")])  # c1's delete was lost
    got = await recover(store=store, node=ME, recordings_dir=tmp_path, now=NOW)
    assert [c.call_id for c in got.cdrs] == ["c2"]
    assert await stored_cdr(store, "c1") == cdr
    assert await store.list_checkpoints(node=ME) == []


def test_node_id_is_stable_per_data_dir_and_sip_address(tmp_path: Path) -> None:
    a = load_settings(data_dir=tmp_path / "a", sip_port=5060)
    assert node_id(a) == node_id(load_settings(data_dir=tmp_path / "a", sip_port=5060))
    assert node_id(a) != node_id(load_settings(data_dir=tmp_path / "a", sip_port=5070))
    assert node_id(a) != node_id(load_settings(data_dir=tmp_path / "b", sip_port=5060))
