"""parse_message: RFC 3261 §7 parsing of real-world messages and every error rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_parser_samples import (
    ASTERISK_INVITE_TEL,
    BARESIP_REGISTER,
    BARESIP_REGISTER_AUTH,
    COMPACT_REGISTER,
    LINPHONE_REGISTER_V6,
    PJSIP_200,
    PJSIP_SDP,
    SAMPLES,
    SIPP_INVITE,
    SIPP_SDP,
    msg,
)

import tongdai.sip
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Request, Response, make_response, serialize
from tongdai.sip.parser import parse_message
from tongdai.sip.sdp import SessionDescription
from tongdai.sip.uri import NameAddr, SipUri, parse_name_addrs

BASE = (
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-base",
    "From: <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>",
    "Call-ID: base-call-1",
)


def request(start: str = "OPTIONS sip:bob@example.com SIP/2.0", *extra: str,
            cseq: str = "1 OPTIONS", body: bytes = b"", length: str | None = "0") -> bytes:
    return msg(start, *BASE, f"CSeq: {cseq}", *extra, body=body, length=length)


def parse_request(data: bytes) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    return m


def parse_response(data: bytes) -> Response:
    m = parse_message(data)
    assert isinstance(m, Response)
    return m


def rejected(data: bytes, **kw: int) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data, **kw)
    exc = info.value
    # The caller's contract: a status to answer comes with the request to answer.
    assert (exc.status is None) == (exc.request is None)
    return exc


# Real-world messages ----------------------------------------------------------------


def test_baresip_register() -> None:
    m = parse_request(BARESIP_REGISTER)
    assert (m.method, m.uri) == ("REGISTER", "sip:127.0.0.1:5060")
    assert m.cseq == (31297, "REGISTER")
    assert m.call_id == "9d7c3b2a1f0e4d5c"
    assert m.from_tag == "3c2e3f4a1b0d9e8f" and m.to_tag == ""
    assert m.top_via.branch == "z9hG4bK6f2ad4b2c1d0a7e1" and "rport" in m.top_via.params
    assert m.headers.values("supported") == ["replaces", "norefersub", "100rel"]
    assert m.body == b""
    contact = parse_name_addrs(m.headers.get("contact") or "")[0]
    assert contact.uri.user == "alice-0x55d4c2a1b2c0" and contact.param("expires") == "60"


def test_register_with_authorization_is_not_split_at_commas() -> None:
    m = parse_request(BARESIP_REGISTER_AUTH)
    values = m.headers.values("authorization")
    assert len(values) == 1 and values[0].startswith("Digest username=\"alice\"")
    assert values[0].endswith("qop=auth, nc=00000001")


def test_sipp_invite_with_padded_content_length_and_sdp() -> None:
    m = parse_request(SIPP_INVITE)
    assert m.headers.get("content-length") == str(len(SIPP_SDP))
    assert m.body == SIPP_SDP
    assert m.content_type == "application/sdp"
    assert NameAddr.parse(m.headers.get("from") or "").display == "sipp"
    assert SessionDescription.parse(m.body).media[0].port == 6000


def test_compact_forms_are_expanded() -> None:
    m = parse_request(COMPACT_REGISTER)
    keys = [k for k, _ in m.headers]
    assert keys == [
        "via", "from", "to", "call-id", "cseq", "contact", "supported", "max-forwards",
        "content-length",
    ]
    assert m.top_via.transport == "TCP"
    assert m.call_id == "a84b4c76e66710@pc33.example.com"


def test_linphone_ipv6_register_with_escaped_user_and_instance() -> None:
    m = parse_request(LINPHONE_REGISTER_V6)
    assert m.uri == "sip:[2001:db8::1]"
    via = m.top_via
    assert (via.host, via.port) == ("[2001:db8::10]", 5060)
    to = NameAddr.parse(m.headers.get("to") or "")
    assert to.uri.user == "+84901234567" and to.uri.host == "[2001:db8::1]"
    assert m.headers.get_all("accept") == [
        "application/sdp", "text/plain", "application/vnd.gsma.rcs-ft-http+xml",
    ]
    contact = parse_name_addrs(m.headers.get("contact") or "")[0]
    assert contact.param("+sip.instance") == "<urn:uuid:7d1e4c2a-0f3b-4e5d-9a8b-1c2d3e4f5a6b>"


def test_response_through_a_proxy_with_via_lines_and_lists() -> None:
    m = parse_response(PJSIP_200)
    assert (m.status, m.reason) == (200, "OK")
    assert len(m.headers.get_all("via")) == 2
    assert [v.split(";")[0] for v in m.headers.values("via")] == [
        "SIP/2.0/UDP 10.0.0.5:5060", "SIP/2.0/UDP 10.0.0.9:5060", "SIP/2.0/TCP 10.0.0.10",
    ]
    assert m.top_via.params["received"] == "10.0.0.5"
    assert m.to_tag == "f3c2a1b0-9d8e-4f7a"
    assert m.body == PJSIP_SDP


def test_folded_header_and_tel_request_uri() -> None:
    m = parse_request(ASTERISK_INVITE_TEL)
    assert SipUri.parse(m.uri).user == "+84283822123"
    allow = m.headers.get("allow") or ""
    assert allow.endswith("CANCEL, UPDATE, PRACK, MESSAGE, REFER")
    assert "\n" not in allow and "  " not in allow
    assert m.headers.values("allow")[-1] == "REFER"


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_survive_serialize(name: str) -> None:
    first = parse_message(SAMPLES[name])
    again = parse_message(serialize(first))
    assert again.start_line() == first.start_line()
    assert list(again.headers) == list(first.headers)
    assert again.body == first.body


def test_reason_phrase_keeps_spaces_and_utf8() -> None:
    m = parse_response(msg(
        "SIP/2.0 486 Máy bận - Busy Here", *BASE, "CSeq: 1 INVITE", length="0"))
    assert (m.status, m.reason) == (486, "Máy bận - Busy Here")


def test_status_line_without_reason_phrase() -> None:
    m = parse_response(msg("SIP/2.0 100", *BASE, "CSeq: 1 INVITE", length="0"))
    assert (m.status, m.reason) == (100, "")


# Syntax tolerated -----------------------------------------------------------------


def test_leading_crlfs_are_ignored() -> None:
    # RFC 3261 §7.5
    assert parse_request(b"\r\n\r\n" + BARESIP_REGISTER).method == "REGISTER"


def test_keepalive_only_is_dropped() -> None:
    assert rejected(b"\r\n\r\n").status is None
    assert rejected(b"").status is None


def test_header_names_are_case_insensitive_and_may_have_space_before_colon() -> None:
    m = parse_request(msg(
        "OPTIONS sip:bob@example.com SIP/2.0", "VIA : SIP/2.0/UDP h;branch=z9hG4bK1",
        "from:<sip:a@b>;tag=1", "tO:\t<sip:b@b>", "CALL-ID:  x1  ", "cseq: 1 OPTIONS",
        length="0",
    ))
    assert m.headers.get("Via") == "SIP/2.0/UDP h;branch=z9hG4bK1"
    assert m.headers.get("to") == "<sip:b@b>" and m.call_id == "x1"


def test_folding_with_tabs_joins_with_one_space() -> None:
    m = parse_request(request(
        "OPTIONS sip:bob@example.com SIP/2.0", "Subject: I know you're there,",
        "\tpick up the phone", "  and talk to me!"))
    assert m.headers.get("subject") == "I know you're there, pick up the phone and talk to me!"


def test_lf_only_line_ends_are_tolerated() -> None:
    crlf = parse_message(SIPP_INVITE)
    head, _, body = SIPP_INVITE.partition(b"\r\n\r\n")
    lf = parse_message(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert list(lf.headers) == list(crlf.headers)
    assert lf.body == SIPP_SDP


def test_lf_head_with_crlf_body_splits_at_the_first_empty_line() -> None:
    body = b"--b\r\n\r\npart\r\n"
    data = request(length=str(len(body))).replace(b"\r\n", b"\n") + body
    m = parse_request(data)
    assert m.body == body


def test_empty_header_values_and_unknown_methods() -> None:
    m = parse_request(request("FOO sip:bob@example.com SIP/2.0", "Subject:", cseq="7 FOO"))
    assert (m.method, m.headers.get("subject")) == ("FOO", "")


def test_content_length_truncates_the_body() -> None:
    m = parse_request(request(body=b"hello, trailing junk", length="5"))
    assert m.body == b"hello"


def test_missing_content_length_on_udp_means_rest_of_datagram() -> None:
    m = parse_request(request(body=b"v=0\r\n", length=None))
    assert m.body == b"v=0\r\n"


def test_message_without_empty_line_is_tolerated() -> None:
    data = request().removesuffix(b"\r\n")
    assert parse_request(data).call_id == "base-call-1"


# Errors ------------------------------------------------------------------------------


def test_body_shorter_than_content_length_is_400_with_the_request() -> None:
    exc = rejected(request(body=b"abc", length="10"))
    assert exc.status == 400 and exc.request is not None
    resp = make_response(exc.request, exc.status)
    assert resp.headers.get("call-id") == "base-call-1"
    assert serialize(resp).startswith(b"SIP/2.0 400 Bad Request\r\n")


@pytest.mark.parametrize("missing", ["via", "from", "to", "call-id", "cseq"])
def test_request_missing_an_essential_header_is_dropped(missing: str) -> None:
    lines = [ln for ln in (*BASE, "CSeq: 1 OPTIONS") if not ln.lower().startswith(missing + ":")]
    exc = rejected(msg("OPTIONS sip:bob@example.com SIP/2.0", *lines, length="0"))
    assert exc.status is None and exc.request is None


def test_max_forwards_is_optional() -> None:
    assert "max-forwards" not in parse_request(request()).headers


@pytest.mark.parametrize(("cseq", "reason"), [
    ("1 INVITE", "CSeq method does not match the request method"),
    ("x OPTIONS", "Malformed CSeq"),
    ("-1 OPTIONS", "Malformed CSeq"),
    ("2147483648 OPTIONS", "Malformed CSeq"),
    ("1", "Malformed CSeq"),
    ("1 options", "CSeq method does not match the request method"),
])
def test_bad_cseq_is_400(cseq: str, reason: str) -> None:
    exc = rejected(request(cseq=cseq))
    assert (exc.status, exc.reason) == (400, reason)
    assert exc.request is not None and exc.request.method == "OPTIONS"


def test_cseq_with_extra_whitespace_is_fine() -> None:
    assert parse_request(request(cseq="1   OPTIONS")).cseq == (1, "OPTIONS")


@pytest.mark.parametrize("version", ["SIP/3.0", "SIP/1.0", "SIP/2.1"])
def test_other_sip_versions_are_505(version: str) -> None:
    exc = rejected(request(f"OPTIONS sip:bob@example.com {version}"))
    assert exc.status == 505 and exc.request is not None


def test_lower_case_version_is_accepted() -> None:
    assert parse_request(request("OPTIONS sip:bob@example.com sip/2.0")).method == "OPTIONS"


def test_too_large_request_is_513_and_response_dropped() -> None:
    data = request(body=b"x" * 2000, length="2000")
    exc = rejected(data, max_size=1000)
    assert exc.status == 513 and exc.request is not None
    resp = PJSIP_200
    assert rejected(resp, max_size=len(resp) - 1).status is None
    assert parse_response(resp).status == 200


def test_non_utf8_header_is_400_with_the_request() -> None:
    data = request("OPTIONS sip:bob@example.com SIP/2.0", "Subject: cafe!")
    exc = rejected(data.replace(b"cafe!", b"caf\xe9"))  # Latin-1, not UTF-8
    assert exc.status == 400 and "UTF-8" in exc.reason
    assert exc.request is not None and exc.request.call_id == "base-call-1"


def test_non_utf8_body_is_fine() -> None:
    body = b"\xff\xfe binary"
    assert parse_request(request(body=body, length=str(len(body)))).body == body


@pytest.mark.parametrize("line", ["No colon here", ":no name", "Bad Name: x", "N\x00: y"])
def test_malformed_header_line_is_400(line: str) -> None:
    exc = rejected(request("OPTIONS sip:bob@example.com SIP/2.0", line))
    assert exc.status == 400 and exc.request is not None


def test_continuation_before_any_header_is_400() -> None:
    data = msg("OPTIONS sip:bob@example.com SIP/2.0", " folded", *BASE, "CSeq: 1 OPTIONS")
    assert rejected(data).status == 400


def test_bare_cr_in_a_header_is_400() -> None:
    exc = rejected(request("OPTIONS sip:bob@example.com SIP/2.0", "Subject: a\rInjected: b"))
    assert exc.status == 400


@pytest.mark.parametrize("header", ["CSeq: 2 OPTIONS", "Call-ID: other", "Content-Length: 1"])
def test_conflicting_single_headers_are_400(header: str) -> None:
    exc = rejected(request("OPTIONS sip:bob@example.com SIP/2.0", header))
    assert exc.status == 400 and "More than one" in exc.reason


def test_repeated_identical_content_length_is_fine() -> None:
    m = parse_request(request("OPTIONS sip:bob@example.com SIP/2.0", "Content-Length: 0"))
    assert m.body == b""


@pytest.mark.parametrize("value", ["seventy", "-1", "70000", "\u0667\u0660"])
def test_malformed_max_forwards_is_400(value: str) -> None:
    exc = rejected(request("OPTIONS sip:bob@example.com SIP/2.0", f"Max-Forwards: {value}"))
    assert exc.status == 400


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "²"])
def test_malformed_content_length_is_400(value: str) -> None:
    assert rejected(request(length=value)).status == 400


@pytest.mark.parametrize("start", [
    "OPTIONS sip:bob @example.com SIP/2.0",  # a space inside the Request-URI
    "OPTIONS bob SIP/2.0",  # no scheme
])
def test_malformed_request_uri_is_400(start: str) -> None:
    exc = rejected(request(start))
    assert exc.status == 400 and exc.reason == "Malformed Request-URI"


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"hello",
    b"OPTIONS\r\n\r\n",
    b"\x00\x01\x02\x03",
    b"INV@ITE sip:a@b SIP/2.0\r\n\r\n",
])
def test_garbage_is_dropped(data: bytes) -> None:
    assert rejected(data).status is None


@pytest.mark.parametrize("start", [
    "SIP/2.0 2000 OK", "SIP/2.0 099 Early", "SIP/2.0 700 Seven", "SIP/2.0 OK", "SIP/3.0 200 OK",
    "SIP/2.0 20x OK",
])
def test_malformed_status_lines_are_dropped(start: str) -> None:
    assert rejected(msg(start, *BASE, "CSeq: 1 INVITE", length="0")).status is None


def test_responses_are_never_answered() -> None:
    no_via = msg("SIP/2.0 200 OK", *BASE[1:], "CSeq: 1 INVITE", length="0")
    assert rejected(no_via).status is None
    short = msg("SIP/2.0 200 OK", *BASE, "CSeq: 1 INVITE", body=b"ab", length="3")
    assert rejected(short).status is None
    bad_line = msg("SIP/2.0 200 OK", *BASE, "CSeq: 1 INVITE", "garbage", length="0")
    assert rejected(bad_line).status is None


def test_the_partial_request_can_be_answered() -> None:
    exc = rejected(request("OPTIONS sip:bob@example.com SIP/7.0"))
    assert exc.request is not None
    resp = make_response(exc.request, 505, to_tag="xyz")
    back = parse_response(serialize(resp))
    assert back.status == 505 and back.to_tag == "xyz" and back.cseq == (1, "OPTIONS")


# The purity rule of the protocol layer ---------------------------------------------


def test_sip_package_does_no_io() -> None:
    forbidden = {"asyncio", "socket", "time", "threading"}
    for path in Path(tongdai.sip.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & forbidden, path.name
