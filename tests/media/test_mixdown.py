"""The recording timeline, with a fake clock: placement, gaps, wrap, SSRC changes, mix."""

from __future__ import annotations

import struct
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.media._rtp import FRAME, frames, rtcp_rr, rtp, tone_codes, tone_level

from tongdai.media.mixdown import Mixdown, mix_pcm16
from tongdai.rtp.g711 import decode_ulaw

T0 = 1000.0  # the fake monotonic time recording started


def pcm(data: bytes) -> array[int]:
    out = array("h")
    out.frombytes(data)
    return out


def arrivals(count: int, first: float = T0 + 0.02) -> list[float]:
    # Each packet arrives when its 20 ms of audio is complete.
    return [first + 0.02 * i for i in range(count)]


def test_in_order_stream_fills_the_talk_time_exactly() -> None:
    codes = tone_codes(440, 1.0)
    packets = frames(codes, ssrc=1)
    mix = Mixdown(start=T0)
    mix.feed(0, packets, arrivals(len(packets)))
    out = mix.pull(T0 + 0.7) + mix.finish(T0 + 1.5)
    assert len(out) == 2 * 12000  # 1.5 s at 8 kHz
    assert mix.has_audio
    # The first packet ended at T0 + 20 ms, so the audio starts at sample 0.
    assert out[: 2 * 8000] == decode_ulaw(codes)
    assert out[2 * 8000:] == bytes(2 * 4000)


def test_pull_holds_back_then_late_packets_still_land() -> None:
    codes = tone_codes(440, 1.0)
    packets = frames(codes, ssrc=1)
    times = arrivals(len(packets))
    mix = Mixdown(start=T0, holdback=0.5)
    # Packet 30 is late by 300 ms: it arrives in the next batch.
    first = [p for i, p in enumerate(packets) if i != 30]
    mix.feed(0, first, [t for i, t in enumerate(times) if i != 30])
    out = mix.pull(T0 + 1.0)
    assert len(out) == 2 * 4000  # held back 0.5 s
    mix.feed(0, [packets[30]], [times[30] + 0.3])
    out += mix.finish(T0 + 1.0)
    assert out == decode_ulaw(codes)


def test_too_late_packets_are_dropped_not_misplaced() -> None:
    codes = tone_codes(440, 1.0)
    packets = frames(codes, ssrc=1)
    mix = Mixdown(start=T0, holdback=0.1)
    mix.feed(0, packets[1:], arrivals(49, T0 + 0.04))
    out = mix.pull(T0 + 1.0)
    mix.feed(0, packets[:1], [T0 + 1.0])  # its place was released already
    out += mix.finish(T0 + 1.0)
    assert out[: 2 * FRAME] == bytes(2 * FRAME)
    assert out[2 * FRAME:] == decode_ulaw(codes)[2 * FRAME:]


def test_loss_leaves_silence_and_keeps_length() -> None:
    codes = tone_codes(440, 2.0)
    packets = frames(codes, ssrc=1)
    times = arrivals(len(packets))
    kept = [i for i in range(len(packets)) if i % 10 != 3]
    mix = Mixdown(start=T0)
    mix.feed(0, [packets[i] for i in kept], [times[i] for i in kept])
    out = mix.finish(T0 + 2.0)
    assert len(out) == 2 * 16000
    whole = decode_ulaw(codes)
    for i in range(len(packets)):
        lo, hi = 2 * FRAME * i, 2 * FRAME * (i + 1)
        assert out[lo:hi] == (bytes(2 * FRAME) if i % 10 == 3 else whole[lo:hi])


def test_reordering_is_undone() -> None:
    codes = tone_codes(1000, 1.0)
    packets = frames(codes, ssrc=1)
    times = arrivals(len(packets))
    swapped, swapped_times = list(packets), list(times)
    for i in range(0, len(swapped) - 1, 2):
        # Packet i is delayed: it arrives just after packet i + 1.
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        swapped_times[i], swapped_times[i + 1] = times[i + 1], times[i + 1] + 0.001
    mix = Mixdown(start=T0)
    mix.feed(0, swapped, swapped_times)
    assert mix.finish(T0 + 1.0) == decode_ulaw(codes)


def test_timestamp_and_sequence_wrap() -> None:
    codes = tone_codes(440, 1.0)
    packets = frames(codes, ssrc=1, seq0=65530, ts0=2**32 - 3 * FRAME)
    mix = Mixdown(start=T0)
    mix.feed(0, packets, arrivals(len(packets)))
    assert mix.finish(T0 + 1.0) == decode_ulaw(codes)


def test_silence_suppression_gap() -> None:
    # 0.5 s of talk, 1 s of nothing sent (timestamps jump, RFC 3551 §4.1), 0.5 s.
    codes = tone_codes(440, 0.5)
    first = frames(codes, ssrc=1, ts0=0)
    second = frames(codes, ssrc=1, seq0=1025, ts0=12000)
    mix = Mixdown(start=T0)
    mix.feed(0, first + second, arrivals(25) + arrivals(25, T0 + 1.52))
    out = mix.finish(T0 + 2.0)
    assert out == decode_ulaw(codes) + bytes(2 * 8000) + decode_ulaw(codes)


def test_ssrc_change_starts_a_segment_at_arrival_time() -> None:
    a = frames(tone_codes(440, 0.5), ssrc=1, ts0=123456)
    # After a re-INVITE the device restarts with a new SSRC and unrelated timestamps.
    b = frames(tone_codes(1000, 0.5), ssrc=2, ts0=999, seq0=7)
    mix = Mixdown(start=T0)
    mix.feed(0, a + b, arrivals(25) + arrivals(25, T0 + 1.02))
    out = pcm(mix.finish(T0 + 1.5))
    assert tone_level(out[:4000], 440) > 7000
    assert max(abs(x) for x in out[4000:8000]) == 0
    assert tone_level(out[8000:12000], 1000) > 7000


def test_old_ssrc_packet_after_change_keeps_its_place() -> None:
    a = frames(tone_codes(440, 0.5), ssrc=1)
    b = frames(tone_codes(1000, 0.5), ssrc=2, ts0=0)
    mix = Mixdown(start=T0)
    a_times = arrivals(25)
    late = a.pop(20)  # arrives after the new SSRC started
    a_times.pop(20)
    mix.feed(0, a + b[:5] + [late] + b[5:],
             a_times + arrivals(5, T0 + 0.52) + [T0 + 0.63] + arrivals(20, T0 + 0.62))
    out = mix.finish(T0 + 1.0)
    assert out[: 2 * 4000] == decode_ulaw(tone_codes(440, 0.5))


def test_timestamp_jump_is_reanchored_not_a_huge_gap() -> None:
    codes = tone_codes(440, 0.5)
    first = frames(codes, ssrc=1, ts0=0)
    # Same SSRC, timestamp jumps an hour ahead (a buggy device): no hour of silence.
    second = frames(codes, ssrc=1, ts0=8000 * 3600, seq0=1025)
    mix = Mixdown(start=T0)
    mix.feed(0, first + second, arrivals(25) + arrivals(25, T0 + 0.52))
    out = mix.finish(T0 + 1.0)
    assert out == decode_ulaw(codes) * 2


def test_timestamp_jump_back_restarts_the_segment() -> None:
    codes = tone_codes(440, 0.5)
    first = frames(codes, ssrc=1, ts0=8000 * 3600)
    second = frames(codes, ssrc=1, ts0=0, seq0=1025)
    mix = Mixdown(start=T0)
    mix.feed(0, first + second, arrivals(25) + arrivals(25, T0 + 0.52))
    assert mix.finish(T0 + 1.0) == decode_ulaw(codes) * 2


def test_delayed_first_packet_does_not_shift_the_stream() -> None:
    codes = tone_codes(440, 1.0)
    packets = frames(codes, ssrc=1)
    times = arrivals(len(packets))
    times[0] += 0.015  # the first packet is 15 ms late, the rest on time
    mix = Mixdown(start=T0)
    mix.feed(0, packets, times)
    out = mix.finish(T0 + 1.0)
    assert out[2 * FRAME:] == decode_ulaw(codes)[2 * FRAME:]


def test_other_payloads_are_not_recorded() -> None:
    dtmf = rtp(seq=1, ts=0, ssrc=1, pt=101, payload=b"\x05\x0a\x00\xa0")
    comfort_noise = rtp(seq=2, ts=160, ssrc=1, pt=13, payload=b"\x40")
    mix = Mixdown(start=T0)
    mix.feed(0, [dtmf, comfort_noise, rtcp_rr(1), b"\x00\x01junk"], arrivals(4))
    assert not mix.has_audio
    assert mix.finish(T0 + 0.1) == bytes(1600)


def test_both_directions_are_summed() -> None:
    a = frames(tone_codes(440, 1.0), ssrc=1)
    b = frames(tone_codes(1000, 1.0, alaw=True), ssrc=2, pt=8)
    mix = Mixdown(start=T0)
    mix.feed(0, a, arrivals(50))
    mix.feed(1, b, arrivals(50))
    out = pcm(mix.finish(T0 + 1.0))
    assert tone_level(out, 440) > 7000
    assert tone_level(out, 1000) > 7000
    assert tone_level(out, 700) < 300


def test_mix_clips_instead_of_wrapping() -> None:
    a = struct.pack("<4h", 30000, -30000, 100, 32767)
    b = struct.pack("<4h", 30000, -30000, -300, 32767)
    assert struct.unpack("<4h", mix_pcm16(a, b)) == (32767, -32768, -200, 32767)


samples16 = st.lists(st.integers(-32768, 32767), min_size=0, max_size=300)


@settings(max_examples=80)
@given(st.data())
def test_mix_matches_the_obvious_loop(data: st.DataObject) -> None:
    xs = data.draw(samples16)
    ys = data.draw(st.lists(st.sampled_from([-32768, -1, 0, 1, 32767]) | st.integers(-32768, 32767),
                            min_size=len(xs), max_size=len(xs)))
    a = struct.pack(f"<{len(xs)}h", *xs)
    b = struct.pack(f"<{len(ys)}h", *ys)
    expected = [max(-32768, min(32767, x + y)) for x, y in zip(xs, ys, strict=True)]
    assert list(struct.unpack(f"<{len(xs)}h", mix_pcm16(a, b))) == expected
