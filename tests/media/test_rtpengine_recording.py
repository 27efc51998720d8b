"""rtpengine's pcap recordings read back and turned into tongdai's MP3s (the real
encoder processes and sox), the TONGDAI_MEDIA_ENGINE setting, and an rtpengine
that is not there."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media._rtp import decode_mp3, frames, mp3_seconds, tone_codes, tone_level

from tongdai.media.recorder import RecorderPool
from tongdai.media.rtpengine import RtpengineEngine
from tongdai.media.rtpengine.pcap import PcapError, read_pcap
from tongdai.media.rtpengine.recording import PcapConverter, Take
from tongdai.settings import SettingsError, load_settings

RATE = 8000
A_PORT, B_PORT = 30010, 30020  # rtpengine's ports of legs a and b
T0 = 1_796_000_000.0  # wall clock, as rtpengine stamps its pcaps


def ipv4_udp(src: int, dst: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src, dst, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                       bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp


def pcap(records: list[tuple[float, bytes]], *, link: int = 101, prefix: bytes = b"") -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)]
    for at, frame in records:
        frame = prefix + frame
        out.append(struct.pack("<IIII", int(at), round(at % 1 * 1e6), len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def leg(packets: list[bytes], *, dst: int, start: float) -> list[tuple[float, bytes]]:
    return [(start + i * 0.02, ipv4_udp(40000, dst, p)) for i, p in enumerate(packets)]


def test_reads_udp_payloads_by_destination_port() -> None:
    data = pcap([(T0, ipv4_udp(5000, A_PORT, b"one")), (T0 + 0.5, ipv4_udp(5002, B_PORT, b"2")),
                 (T0 + 1.25, ipv4_udp(5000, A_PORT, b"three"))])
    got = read_pcap(data)
    assert got[A_PORT].packets == [b"one", b"three"]
    assert got[A_PORT].arrivals == pytest.approx([T0, T0 + 1.25])
    assert got[B_PORT].packets == [b"2"]
    # an Ethernet header before the IP header (recording-format=eth); a cut-off last record
    eth = pcap([(T0, ipv4_udp(1, A_PORT, b"x"))], link=1, prefix=b"\0" * 12 + b"\x08\x00")
    assert read_pcap(eth + b"\x01\x02")[A_PORT].packets == [b"x"]
    for bad in (b"", b"\0" * 24, pcap([], link=147)):
        with pytest.raises(PcapError):
            read_pcap(bad)


@pytest.fixture
async def recorders() -> AsyncIterator[RecorderPool]:
    pool = RecorderPool()
    yield pool
    await pool.stop()


def spool_with(tmp_path: Path, call_id: str, data: bytes) -> Path:
    spool = tmp_path / "spool"
    (spool / "pcaps").mkdir(parents=True)
    (spool / "metadata").mkdir()
    # rtpengine's own path to its pcap: tongdai may see the spool elsewhere.
    (spool / "pcaps" / f"{call_id}-0123abcd.pcap").write_bytes(data)
    (spool / "metadata" / f"rtpengine-meta-{call_id}-0123abcd.txt").write_text(
        f"/var/spool/rtpengine/pcaps/{call_id}-0123abcd.pcap\n\n\ncall start time: x\n")
    return spool


async def test_pcap_becomes_the_mp3_with_the_paused_time_silent(
        tmp_path: Path, recorders: RecorderPool) -> None:
    # Leg a: 440 Hz for a second, 1000 Hz while paused, 440 Hz again; leg b: 1000 Hz
    # only while paused too (the card number being read back).
    a = leg(frames(tone_codes(440, 1.0), ssrc=1) + frames(tone_codes(1000, 1.0), ssrc=1,
            ts0=5000 + RATE) + frames(tone_codes(440, 1.0), ssrc=1, ts0=5000 + 2 * RATE),
            dst=A_PORT, start=T0)
    b = leg(frames(tone_codes(1000, 1.0), ssrc=2), dst=B_PORT, start=T0 + 1.0)
    spool = spool_with(tmp_path, "call-7", pcap(sorted(a + b)))
    converter = PcapConverter(spool=spool, recorders=recorders)
    name = await converter.convert(Take(
        call_id="call-7", directory=tmp_path / "rec" / "app1", name="call_recording_x.mp3",
        ports=(A_PORT, B_PORT), start=T0, end=T0 + 3.0, paused=((T0 + 0.99, T0 + 2.0),)))
    assert name == "call_recording_x.mp3"
    path = tmp_path / "rec" / "app1" / name
    assert abs(mp3_seconds(path) - 3.0) < 0.3  # the whole talk time
    samples = decode_mp3(path)
    assert tone_level(samples[:RATE - 800], 440) > 2500
    assert tone_level(samples[-RATE + 800:], 440) > 2500
    assert tone_level(samples, 1000) < 100  # nothing said while paused is kept
    # silence from the pause (MP3's encoder delay shifts the audio by about 0.1 s)
    assert max(abs(x) for x in samples[RATE + 2000:2 * RATE - 400]) < 200
    # the pcap and its metadata are gone
    assert list((spool / "pcaps").iterdir()) == list((spool / "metadata").iterdir()) == []


async def test_no_pcap_means_no_recording(tmp_path: Path, recorders: RecorderPool,
                                          caplog: pytest.LogCaptureFixture) -> None:
    spool = spool_with(tmp_path, "other-call", pcap([]))
    converter = PcapConverter(spool=spool, recorders=recorders)
    take = Take(call_id="call-8", directory=tmp_path / "rec", name="call_recording_y.mp3",
                ports=(A_PORT, B_PORT), start=T0, end=T0 + 1, paused=())
    assert await converter.convert(take) == ""
    assert "rtpengine wrote no pcap for it" in caplog.text
    # a pcap with no G.711 in it: no file either
    spool_with(tmp_path / "2", "call-8", pcap([(T0, ipv4_udp(1, A_PORT, b"\x80junk"))]))
    converter.spool = tmp_path / "2" / "spool"
    assert await converter.convert(take) == ""
    assert not (tmp_path / "rec" / "call_recording_y.mp3").exists()


@pytest.mark.parametrize(("value", "address"), [
    ("", None),
    ("rtpengine:127.0.0.1:22222", ("127.0.0.1", 22222)),
    ("rtpengine:media.example.vn:2223", ("media.example.vn", 2223)),
    ("rtpengine:[::1]:22222", ("::1", 22222)),
])
def test_the_setting(monkeypatch: pytest.MonkeyPatch, value: str,
                     address: tuple[str, int] | None) -> None:
    monkeypatch.setenv("TONGDAI_MEDIA_ENGINE", value)
    assert load_settings().rtpengine_address == address


@pytest.mark.parametrize("value", [
    "rtpengine", "rtpengine:127.0.0.1", "rtpengine::22222", "rtpengine:h:0",
    "rtpengine:h:70000", "freeswitch:h:1", "udp:127.0.0.1:22222"])
def test_a_malformed_setting_says_what_is_expected(monkeypatch: pytest.MonkeyPatch,
                                                   value: str) -> None:
    monkeypatch.setenv("TONGDAI_MEDIA_ENGINE", value)
    with pytest.raises(SettingsError, match=r"TONGDAI_MEDIA_ENGINE: must be empty .* or "
                                            r"rtpengine:HOST:PORT"):
        load_settings()


async def test_an_rtpengine_that_does_not_answer_stops_the_start(tmp_path: Path) -> None:
    engine = RtpengineEngine(host="127.0.0.1", port=9, recordings_dir=tmp_path)
    engine.ng.timeout = 0.05
    with pytest.raises(RuntimeError, match=r"did not answer .ping.*fix TONGDAI_MEDIA_ENGINE"):
        await engine.start()
