"""Property tests of parse_message and StreamFramer (deterministic, a few hundred cases)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser_samples import SAMPLES

from tongdai.sip import parser
from tongdai.sip.errors import LocalProtocolError, RemoteProtocolError
from tongdai.sip.message import COMPACT, Headers, Message, Request, Response, serialize
from tongdai.sip.parser import FramingError, StreamFramer, parse_message

FUZZ = settings(
    max_examples=200, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Generated messages are costly to draw on a small machine: fewer, still varied, cases.
FUZZ_MESSAGES = settings(FUZZ, max_examples=150)
FUZZ_STREAMS = settings(FUZZ, max_examples=60)

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
# Header values: any text but line breaks, without the whitespace the parser trims.
values = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30,
).map(lambda s: s.strip(" \t"))
# Common names (which the fast path knows after one sighting) and invented ones.
COMMON = ["subject", "user-agent", "allow", "supported", "contact", "expires", "accept",
          "content-type", "record-route", "route", "session-expires", "x-tongdai-id"]
header_keys = st.sampled_from(COMMON) | tokens.map(str.lower).filter(
    lambda k: k not in COMPACT and k not in {
        "via", "from", "to", "call-id", "cseq", "content-length", "max-forwards"})


def _check(exc: RemoteProtocolError) -> None:
    assert (exc.status is None) == (exc.request is None)
    assert exc.status in (None, 400, 505, 513)


def _parse_or_reject(data: bytes) -> Message | None:
    try:
        m = parse_message(data)
    except RemoteProtocolError as exc:
        _check(exc)
        return None
    # Whatever the fast path accepts, the general path reads the same way.
    fast = parser._parse_common(data.lstrip(b"\r\n"), 65535)
    if fast is not None:
        slow = parser._parse_general(data.lstrip(b"\r\n"), 65535)
        assert fast.start_line() == slow.start_line() == m.start_line()
        assert list(fast.headers) == list(slow.headers) and fast.body == slow.body
    return m


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(SAMPLES.values()))))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 58, 59, 60, 62, 0xC3, 0xFF]))
        if action == "replace":
            data[i] = byte
        elif action == "delete":
            del data[i]
        else:
            data.insert(i, byte)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(mutated_samples())
def test_mutated_real_messages_only_raise_remote_protocol_error(data: bytes) -> None:
    m = _parse_or_reject(data)
    if m is not None:
        assert parse_message(serialize(m)).body == m.body


@st.composite
def messages(draw: st.DrawFn) -> Message:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "BYE", "OPTIONS"]) | tokens)
    items = [
        ("via", f"SIP/2.0/UDP {draw(tokens)};branch=z9hG4bK{draw(tokens)}"),
        ("from", f"<sip:{draw(tokens)}@example.com>;tag={draw(tokens)}"),
        ("to", f"<sip:{draw(tokens)}@example.com>"),
        ("call-id", draw(tokens)),
        ("cseq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    extra = draw(st.lists(st.tuples(header_keys, values), max_size=5))
    if draw(st.booleans()):
        extra.append(("max-forwards", str(draw(st.integers(0, 255)))))
    items += extra
    items = draw(st.permutations(items))
    body = draw(st.binary(max_size=100))
    if draw(st.booleans()):
        reason = draw(values.filter(bool))
        return Response(status=draw(st.integers(100, 699)), reason=reason,
                        headers=Headers(items), body=body)
    uri = f"sip:{draw(tokens)}@{draw(tokens)}"
    return Request(method=method, uri=uri, headers=Headers(items), body=body)


def _same(parsed: Message, original: Message) -> None:
    assert type(parsed) is type(original)
    assert parsed.start_line() == original.start_line()
    assert list(parsed.headers) == [*original.headers, ("content-length", str(len(original.body)))]
    assert parsed.body == original.body


@FUZZ_MESSAGES
@given(messages())
def test_serialized_messages_parse_back(m: Message) -> None:
    wire = serialize(m)
    parsed = _parse_or_reject(wire)
    assert parsed is not None
    _same(parsed, m)
    # The same with bare-LF line ends and a leading keep-alive CRLF.
    head, _, body = wire.partition(b"\r\n\r\n")
    _same(parse_message(b"\r\n" + head.replace(b"\r\n", b"\n") + b"\n\n" + body), m)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], int, bytes, list[int]]:
    msgs = [serialize(m) for m in draw(st.lists(messages(), min_size=1, max_size=3))]
    pings = 0
    wire = b""
    for m in msgs:
        n = draw(st.integers(0, 2))
        pings += n
        wire += b"\r\n\r\n" * n + m
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    return msgs, pings, wire, cuts


@FUZZ_STREAMS
@given(streams())
def test_framer_is_independent_of_chunking(case: tuple[list[bytes], int, bytes, list[int]]) -> None:
    msgs, pings, wire, cuts = case
    f = StreamFramer()
    out: list[bytes] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += f.feed(wire[a:b])
    assert out == msgs
    assert f.take_pings() == pings
    assert f.buffered == 0
    for m, original in zip(out, msgs, strict=True):
        assert parse_message(m) is not None and m == original


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_framer_on_garbage_only_raises_framing_errors(chunks: list[bytes]) -> None:
    f = StreamFramer(max_size=300)
    broken = False
    for c in chunks:
        try:
            for m in f.feed(c):
                _parse_or_reject(m)
        except FramingError as exc:
            assert (exc.status is None) == (exc.request is None)
            assert not broken
            broken = True
        except LocalProtocolError:
            assert broken
