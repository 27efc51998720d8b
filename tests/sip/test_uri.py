"""SIP/SIPS/tel URIs (RFC 3261 §19.1, RFC 3966) and name-addr values (§20.10)."""

from __future__ import annotations

import pytest

from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.uri import (
    STAR,
    NameAddr,
    SipUri,
    UnsupportedScheme,
    escape,
    parse_name_addrs,
    same_uri,
    unescape,
)

# RFC 3261 §19.1.3 examples, plus what phones put in Contact and Request-URIs.
ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sips:1212@gateway.com",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10]:5070;transport=tcp",
    "sip:alice-0x55d4c2a1b2c0@127.0.0.1:40123;transport=udp",
    "sip:1002@192.0.2.20:5060;ob",
    "sip:10.0.0.5;lr",
    "sip:alice@pbx.example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "sip:alice%20smith@example.com",
    "tel:+84-28-3822-1234;phone-context=+84",
    "tel:1900%23;phone-context=example.com",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text: str) -> None:
    assert str(SipUri.parse(text)) == text


def test_fields() -> None:
    u = SipUri.parse("sip:alice:secretword@atlanta.com:5070;transport=TCP;lr?subject=x")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sip", "alice", "secretword", "atlanta.com", 5070)
    assert u.params == (("transport", "TCP"), ("lr", None))
    assert u.headers == (("subject", "x"),)
    assert u.param("Transport") == "TCP" and u.param("lr") == "" and u.param("maddr") is None
    assert u.transport == "tcp"
    assert SipUri.parse("sip:a@b").transport == "udp"


def test_scheme_is_case_insensitive() -> None:
    assert SipUri.parse("SIP:alice@atlanta.com").scheme == "sip"


def test_escaped_user_is_decoded() -> None:
    u = SipUri.parse("sip:%61lice@atlanta.com")
    assert u.user == "alice" and str(u) == "sip:alice@atlanta.com"
    assert SipUri.parse("sip:%2B84901234567@pbx").user == "+84901234567"
    u = SipUri.parse("sip:Nguy%E1%BB%85n@pbx")  # UTF-8 escapes
    assert u.user == "Nguyễn" and str(u) == "sip:Nguy%E1%BB%85n@pbx"


def test_escape_and_unescape() -> None:
    assert escape("alice smith") == "alice%20smith"
    assert escape("a@b:c") == "a%40b%3Ac"
    assert escape("+84;isub=1?x/y") == "+84;isub=1?x/y"  # user-unreserved stays
    assert unescape("a%40b%3Ac") == "a@b:c"
    assert unescape(escape("Trần Thị Bé ~!@#$")) == "Trần Thị Bé ~!@#$"


def test_desk_phone_hash_is_accepted_and_escaped() -> None:
    u = SipUri.parse("sip:*98#@pbx")
    assert u.user == "*98#" and str(u) == "sip:*98%23@pbx"


def test_ipv6() -> None:
    u = SipUri.parse("sip:alice@[2001:db8::10]:5060;transport=udp")
    assert (u.host, u.port) == ("[2001:db8::10]", 5060)
    assert SipUri.parse("sip:[::1]").port is None


def test_tel() -> None:
    u = SipUri.parse("tel:+84-901-234-567;ext=12")
    assert (u.scheme, u.user, u.host, u.port) == ("tel", "+84-901-234-567", "", None)
    assert u.param("ext") == "12"


def test_aor_is_canonical() -> None:
    # RFC 3261 §10.3 step 5: parameters dropped, escapes decoded, host folded.
    u = SipUri.parse("sip:%41lice@PBX.Example.com:5060;transport=tcp?x=y")
    assert u.aor == "sip:Alice@pbx.example.com:5060"


def test_with_and_without_param() -> None:
    u = SipUri.parse("sip:a@b;transport=udp")
    v = u.with_param("transport", "tcp").with_param("lr")
    assert str(v) == "sip:a@b;transport=tcp;lr"
    assert str(v.without_param("LR")) == "sip:a@b;transport=tcp"


@pytest.mark.parametrize("text", [
    "sip:", "sip:alice@", "sip:@host", "sip:alice@host:0", "sip:alice@host:99999",
    "sip:alice@host:", "sip:al ice@host", "sip:alice@[::1", "sip:alice@[zz::1]",
    "sip:alice@host;=x", "sip:alice@host;a=<b>", "sip:a@b?x", "sip:a@b?=v",
    "sip:%zz@host", "sip:%ff@host", "sip:alice@ho st", "sip:a:b:c@host", "nonsense", "",
    "tel:", "tel:+84 90",
])
def test_malformed_uris_are_400(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse(text)
    assert info.value.status == 400


@pytest.mark.parametrize("text", ["http://example.com/", "mailto:alice@example.com", "urn:x"])
def test_unsupported_scheme_is_416(text: str) -> None:
    with pytest.raises(UnsupportedScheme) as info:
        SipUri.parse(text)
    assert info.value.status == 416


# RFC 3261 §19.1.4: the equivalent and non-equivalent examples, verbatim.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:alice@[2001:db8:0::10]", "sip:alice@[2001:DB8::10]"),
    ("tel:+1-201-555-0123", "tel:+12015550123"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=239.255.255.1", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
    ("sip:alice:pw1@atlanta.com", "sip:alice:pw2@atlanta.com"),
    ("sip:alice@atlanta.com;transport=tcp", "sip:alice@atlanta.com;transport=udp"),
    ("tel:+12015550123", "tel:+12015550124"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert same_uri(ua, ub) and same_uri(ub, ua)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_not_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert not same_uri(ua, ub) and not same_uri(ub, ua)


# name-addr ---------------------------------------------------------------------------


def test_quoted_display_name_with_escapes() -> None:
    na = NameAddr.parse(r'"Bob \"the\" Builder \\ Co" <sip:bob@biloxi.com>;tag=a48s')
    assert na.display == 'Bob "the" Builder \\ Co'
    assert na.uri.user == "bob" and na.tag == "a48s"
    assert NameAddr.parse(str(na)) == na


def test_unquoted_display_name() -> None:
    na = NameAddr.parse("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8")
    assert (na.display, na.tag) == ("Anonymous", "hyh8")
    assert str(na) == '"Anonymous" <sip:c8oqz84zk7z@privacy.org>;tag=hyh8'


def test_utf8_display_name() -> None:
    na = NameAddr.parse('"Nguyễn Văn A" <sip:0901234567@pbx>')
    assert na.display == "Nguyễn Văn A"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without <>, ";transport=tcp" is a header parameter.
    na = NameAddr.parse("sip:alice@host:5060;transport=tcp;expires=60")
    assert na.uri == SipUri.parse("sip:alice@host:5060")
    assert na.params == (("transport", "tcp"), ("expires", "60"))
    assert str(na) == "<sip:alice@host:5060>;transport=tcp;expires=60"
    semi_user = NameAddr.parse("sip:alice;day=tuesday@atlanta.com;tag=1")
    assert semi_user.uri.user == "alice;day=tuesday" and semi_user.tag == "1"


def test_uri_parameters_inside_brackets_stay_with_the_uri() -> None:
    na = NameAddr.parse("<sip:alice@host;transport=tcp>;expires=60")
    assert na.uri.param("transport") == "tcp" and na.param("expires") == "60"


def test_quoted_parameter_values_may_hold_semicolons_and_brackets() -> None:
    na = NameAddr.parse('<sip:a@b>;+sip.instance="<urn:uuid:1;2>";reg-id=1')
    assert na.param("+sip.instance") == "<urn:uuid:1;2>"
    assert na.param("reg-id") == "1"
    assert str(na) == '<sip:a@b>;+sip.instance="<urn:uuid:1;2>";reg-id=1'


def test_spaces_around_parameters() -> None:
    na = NameAddr.parse("<sip:a@b> ; tag = x1 ; lr")
    assert na.params == (("tag", "x1"), ("lr", None))


def test_tag_helpers() -> None:
    na = NameAddr.parse("<sip:bob@biloxi.com>")
    assert na.tag == ""
    tagged = na.with_tag("314159")
    assert tagged.tag == "314159" and str(tagged) == "<sip:bob@biloxi.com>;tag=314159"
    assert tagged.with_tag("2").params == (("tag", "2"),)
    assert na.tag == ""  # frozen: the original is unchanged


def test_tel_in_to() -> None:
    assert NameAddr.parse("<tel:+84283822123>").uri.user == "+84283822123"


def test_unsupported_scheme_in_a_header_is_400() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        NameAddr.parse("<mailto:alice@example.com>")
    assert info.value.status == 400


@pytest.mark.parametrize("text", [
    '"unterminated <sip:a@b>', '"Bob" sip:a@b', "<sip:a@b", "<sip:a@b> junk",
    "<sip:a@b>;=x", "<sip:a@b>;tag=a b", '<sip:a@b>;x="open', "", "*",
])
def test_malformed_name_addrs(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        NameAddr.parse(text)
    assert info.value.status == 400


def test_flag_parameter_is_allowed() -> None:
    assert NameAddr.parse("<sip:p.example.com>;lr").param("lr") == ""


def test_contact_list() -> None:
    value = ('"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
             '"Watson, T." <mailto:watson@bell-telephone.com>;q=0.1')
    with pytest.raises(RemoteProtocolError):
        parse_name_addrs(value)  # mailto: is not a contact we can use
    value = ('"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
             '"Watson, T." <sip:watson@bell-telephone.com>;q=0.1, sip:x@y;expires=0')
    addrs = parse_name_addrs(value)
    assert [a.display for a in addrs] == ["Mr. Watson", "Watson, T.", ""]
    assert [a.param("q") for a in addrs] == ["0.7", "0.1", None]
    assert addrs[2].param("expires") == "0"


def test_contact_star() -> None:
    assert parse_name_addrs("*") == [STAR]
    assert parse_name_addrs(" * ")[0].is_star
    assert str(STAR) == "*"
    assert not NameAddr.parse("<sip:a@b>").is_star
    with pytest.raises(RemoteProtocolError) as info:
        parse_name_addrs("*, <sip:a@b>")
    assert info.value.status == 400


def test_route_set() -> None:
    routes = parse_name_addrs("<sip:p1.example.com;lr>,<sip:p2.domain.com;lr>")
    assert [r.uri.host for r in routes] == ["p1.example.com", "p2.domain.com"]
    assert all(r.uri.param("lr") == "" for r in routes)
