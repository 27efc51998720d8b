"""Property tests of SDP: serialize() and parse() are inverses; bad input is an SdpError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tongdai.sip.sdp import DIRECTIONS, Connection, Media, Origin, SdpError, SessionDescription

FUZZ = settings(
    max_examples=120, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_FEW = settings(FUZZ, max_examples=60)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
words = st.text(ALNUM + "-./+*_:#", min_size=1, max_size=10)
# Line values: text with inner spaces, but none at the ends (the parser trims them).
texts = st.text(ALNUM + " :=/-.\u00e9\u1ec5", max_size=20).map(str.strip)

origins = st.builds(Origin, words, st.text("0123456789", min_size=1, max_size=12),
                    st.integers(0, 2**63), words, words, words)
connections = st.builds(Connection, words, words, words)
# Attribute names hold no ":" (it separates the value); direction flags included.
attributes = st.lists(
    st.tuples(st.sampled_from(DIRECTIONS) | words.filter(lambda w: ":" not in w),
              st.none() | texts),
    max_size=5,
)


def typed_lines(first: str, rest: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Lines whose types come from ``first`` (written before c=) then from ``rest``."""
    before = st.lists(st.tuples(st.sampled_from(first), texts), max_size=2)
    after = st.lists(st.tuples(st.sampled_from(rest), texts), max_size=3)
    return st.builds(lambda a, b: a + b, before, after)


media = st.builds(
    Media,
    kind=st.sampled_from(["audio", "video", "text"]) | words,
    port=st.integers(0, 65535),
    proto=st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"]),
    formats=st.lists(st.integers(0, 127).map(str) | words, max_size=5),
    port_count=st.none() | st.integers(1, 8),
    connection=st.none() | connections,
    lines=typed_lines("i", "bkxy"),
    attributes=attributes,
)

descriptions = st.builds(
    SessionDescription,
    origin=origins,
    session_name=texts,
    connection=st.none() | connections,
    media=st.lists(media, max_size=3),
    attributes=attributes,
    lines=typed_lines("iuep", "btrzkxy"),
)


@FUZZ
@given(descriptions)
def test_round_trip(sdp: SessionDescription) -> None:
    wire = sdp.serialize()
    assert SessionDescription.parse(wire) == sdp
    # LF-only and trailing blanks read the same.
    assert SessionDescription.parse(wire.replace(b"\r\n", b" \n")) == sdp


@FUZZ_FEW
@given(descriptions, st.sampled_from(["192.0.2.7", "2001:db8::7"]), st.integers(0, 65535))
def test_relay_rewrite_round_trips(sdp: SessionDescription, host: str, port: int) -> None:
    sdp.set_connection(host)
    sdp.bump_version()
    for m in sdp.media:
        m.port = port
        m.set_rtcp(None if port % 2 else port + 3)
    back = SessionDescription.parse(sdp.serialize())
    assert back == sdp
    assert all(back.media_address(m) == host for m in back.media)
    assert all(m.rtcp_port in (port + 1, port + 3) for m in back.media)


def _accepts_consistently(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpError:
        return
    # Whatever was accepted is written out in a form that reads back the same.
    assert SessionDescription.parse(sdp.serialize()) == sdp


@settings(FUZZ, max_examples=250)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_sdp_error(data: bytes) -> None:
    _accepts_consistently(data)


@FUZZ_FEW
@given(descriptions, st.data())
def test_mangled_descriptions_only_raise_sdp_error(
    sdp: SessionDescription, data: st.DataObject,
) -> None:
    wire = bytearray(sdp.serialize())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.sampled_from(b"=\r\n \x00\xff:/v"))
    _accepts_consistently(bytes(wire))
