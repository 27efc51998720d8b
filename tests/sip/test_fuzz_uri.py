"""Property tests of URIs and name-addrs: str() and parse() are inverses."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.uri import NameAddr, SipUri, parse_name_addrs, same_uri

FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_FEW = settings(FUZZ, max_examples=60)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN = st.text(ALNUM + "-.!%*_+`'~", min_size=1, max_size=10)
# RFC 3261 §25.1 paramchar and hnv characters, as they may appear unescaped.
PARAMCHARS = st.text(ALNUM + "-_.!~*'()[]/:&+$", min_size=1, max_size=10)
HCHARS = st.text(ALNUM + "-_.!~*'()[]/?:+$", max_size=10)
# Any text, drawn from an alphabet full of characters with a meaning in SIP (a fixed
# alphabet draws much faster than st.characters()).
SPECIAL = ALNUM[:8] + " \t\"\\<>,;:@%?&=#[]/+$!~*'()-_.\x00\x7f\u00e9\u1ec5\u20ac\U0001f600"
# Users and passwords are any text: str() escapes what needs escaping.
ANY_TEXT = st.text(SPECIAL, min_size=1, max_size=12)

hostnames = st.text(ALNUM + "-._", min_size=1, max_size=20)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]")
hosts = hostnames | ipv4 | ipv6
params = st.lists(st.tuples(PARAMCHARS, st.none() | PARAMCHARS), max_size=4).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.just("") | ANY_TEXT)
    password = draw(ANY_TEXT) if user and draw(st.booleans()) else ""
    headers = draw(st.lists(st.tuples(HCHARS.filter(bool), HCHARS), max_size=3))
    return SipUri(
        draw(st.sampled_from(["sip", "sips"])), user, password, draw(hosts),
        draw(st.none() | st.integers(1, 65535)), draw(params), tuple(headers),
    )


tel_uris = st.builds(
    lambda number, ps: SipUri("tel", number, params=ps),
    st.text("0123456789ABCDEFabcdef*#+-.()", min_size=1, max_size=15), params,
)
uris = sip_uris() | tel_uris


@FUZZ
@given(uris)
def test_uri_round_trip(u: SipUri) -> None:
    text = str(u)
    assert SipUri.parse(text) == u
    assert str(SipUri.parse(text)) == text
    assert same_uri(u, SipUri.parse(text))


@FUZZ_FEW
@given(sip_uris())
def test_case_of_host_and_params_does_not_matter(u: SipUri) -> None:
    shouted = SipUri(u.scheme, u.user, u.password, u.host.upper(), u.port,
                     tuple((k.upper(), v if v is None else v.upper()) for k, v in u.params),
                     u.headers)
    assert same_uri(u, shouted)


# Header parameter values: a token, or a quoted string (any text, escaped).
quoted = st.text(SPECIAL.replace('"', "").replace("\\", ""), max_size=12).map(
    lambda s: f'"{s}"')
header_params = st.lists(
    st.tuples(TOKEN, st.none() | TOKEN | quoted), max_size=4).map(tuple)
displays = st.just("") | st.text(SPECIAL, max_size=15)


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    return NameAddr(draw(displays), draw(uris), draw(header_params))


@FUZZ
@given(name_addrs())
def test_name_addr_round_trip(na: NameAddr) -> None:
    assert NameAddr.parse(str(na)) == na


@FUZZ_FEW
@given(st.lists(name_addrs(), min_size=1, max_size=4))
def test_contact_lists_split_at_the_right_commas(addrs: list[NameAddr]) -> None:
    assert parse_name_addrs(", ".join(map(str, addrs))) == addrs


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_text_only_raises_remote_protocol_error(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, parse_name_addrs):
        try:
            parse(text)
        except RemoteProtocolError as exc:
            assert exc.status in (400, 416)
