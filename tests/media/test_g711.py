from __future__ import annotations

import struct

from tongdai.rtp.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
    linear_to_alaw,
    linear_to_ulaw,
)


def test_ulaw_known_values() -> None:
    # ITU-T G.711 Table 2a (as in the Sun reference g711.c, 16-bit scale).
    assert ULAW_TO_LINEAR[0xFF] == 0
    assert ULAW_TO_LINEAR[0x7F] == 0  # "negative zero"
    assert ULAW_TO_LINEAR[0x00] == -32124
    assert ULAW_TO_LINEAR[0x80] == 32124
    assert ULAW_TO_LINEAR[0xFE] == 8
    assert ULAW_TO_LINEAR[0x7E] == -8
    assert ULAW_TO_LINEAR[0xEF] == 132
    assert ULAW_TO_LINEAR[0xF0] == 120


def test_alaw_known_values() -> None:
    # ITU-T G.711 Table 1a: 0xD5 / 0x55 are the smallest positive / negative steps.
    assert ALAW_TO_LINEAR[0xD5] == 8
    assert ALAW_TO_LINEAR[0x55] == -8
    assert ALAW_TO_LINEAR[0xAA] == 32256
    assert ALAW_TO_LINEAR[0x2A] == -32256
    assert ALAW_TO_LINEAR[0xD4] == 24
    assert ALAW_TO_LINEAR[0xC5] == 264


def test_tables_are_odd_symmetric_and_monotonic() -> None:
    for table, sign in ((ULAW_TO_LINEAR, 0x80), (ALAW_TO_LINEAR, 0x80)):
        for code in range(128):
            assert table[code] == -table[code | sign]
        positives = sorted(table[c] for c in range(256) if table[c] > 0)
        assert len(set(positives)) == len(positives)


def test_bulk_decode_matches_table() -> None:
    codes = bytes(range(256))
    assert decode_ulaw(codes) == struct.pack("<256h", *ULAW_TO_LINEAR)
    assert decode_alaw(codes) == struct.pack("<256h", *ALAW_TO_LINEAR)
    assert decode_ulaw(b"") == b""


def test_encode_decode_round_trip() -> None:
    for code in range(256):
        if code != 0x7F:  # negative zero encodes back to positive zero
            assert linear_to_ulaw(ULAW_TO_LINEAR[code]) == code
        assert linear_to_alaw(ALAW_TO_LINEAR[code]) == code


def test_quantisation_error_is_bounded() -> None:
    # Within one step of the segment: at most 1/16 of the value (plus the bias).
    for s in range(-32000, 32000, 37):
        assert abs(ULAW_TO_LINEAR[linear_to_ulaw(s)] - s) <= abs(s) / 16 + 8
        assert abs(ALAW_TO_LINEAR[linear_to_alaw(s)] - s) <= abs(s) / 16 + 16
    assert encode_ulaw([0, -1, 32767, -32768]) == bytes([0xFF, 0x7F, 0x80, 0x00])
    assert encode_alaw([0, -1]) == bytes([0xD5, 0x55])
