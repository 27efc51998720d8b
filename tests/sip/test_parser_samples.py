"""Real-world SIP messages, as baresip, SIPp, Linphone, Asterisk and pjsip send them.

Shared by the parser and framer tests; the tests here check that every sample parses
the same way on the fast path and the general path.
"""

from __future__ import annotations

import pytest

from tongdai.sip import parser
from tongdai.sip.message import Request, Response


def msg(*lines: str, body: bytes = b"", length: str | None = None) -> bytes:
    """A message from header lines; ``length`` is the Content-Length text, if wanted."""
    head = "\r\n".join(lines)
    if length is not None:
        head += f"\r\nContent-Length: {length}"
    return head.encode() + b"\r\n\r\n" + body


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


BARESIP_REGISTER = msg(
    "REGISTER sip:127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:40123;branch=z9hG4bK6f2ad4b2c1d0a7e1;rport",
    "Contact: <sip:alice-0x55d4c2a1b2c0@127.0.0.1:40123;transport=udp>;expires=60",
    "Max-Forwards: 70",
    "To: <sip:alice@127.0.0.1:5060>",
    "From: <sip:alice@127.0.0.1:5060>;tag=3c2e3f4a1b0d9e8f",
    "Call-ID: 9d7c3b2a1f0e4d5c",
    "CSeq: 31297 REGISTER",
    "User-Agent: baresip v1.0.0 (x86_64/linux)",
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE",
    "Supported: replaces,norefersub,100rel",
    length="0",
)

BARESIP_REGISTER_AUTH = msg(
    "REGISTER sip:127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:40123;branch=z9hG4bK0a1b2c3d4e5f6071;rport",
    "Contact: <sip:alice-0x55d4c2a1b2c0@127.0.0.1:40123;transport=udp>;expires=60",
    "Max-Forwards: 70",
    "To: <sip:alice@127.0.0.1:5060>",
    "From: <sip:alice@127.0.0.1:5060>;tag=3c2e3f4a1b0d9e8f",
    "Call-ID: 9d7c3b2a1f0e4d5c",
    "CSeq: 31298 REGISTER",
    "User-Agent: baresip v1.0.0 (x86_64/linux)",
    'Authorization: Digest username="alice", realm="tongdai", '
    'nonce="AAABk2Rkc2FmZGZhc2RmYXNkZg", uri="sip:127.0.0.1:5060", '
    'response="1d4a2a5c8f2b3e7c9d0e1f2a3b4c5d6e", algorithm=MD5, cnonce="8c1d2e3f", '
    "qop=auth, nc=00000001",
    length="0",
)

SIPP_SDP = sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)
# SIPp pads [len] with spaces: "Content-Length:   129".
SIPP_INVITE = msg(
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0",
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001",
    "To: service <sip:service@127.0.0.1:5060>",
    "Call-ID: 1-4242@127.0.0.1",
    "CSeq: 1 INVITE",
    "Contact: sip:sipp@127.0.0.1:5061",
    "Max-Forwards: 70",
    "Subject: Performance Test",
    "Content-Type: application/sdp",
    body=SIPP_SDP,
    length=f"{len(SIPP_SDP):>5}",
)

SIPP_ACK = msg(
    "ACK sip:service@127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-5",
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001",
    "To: service <sip:service@127.0.0.1:5060>;tag=as5f3c2b1a",
    "Call-ID: 1-4242@127.0.0.1",
    "CSeq: 1 ACK",
    "Contact: sip:sipp@127.0.0.1:5061",
    "Max-Forwards: 70",
    "Subject: Performance Test",
    length="    0",
)

SIPP_BYE = msg(
    "BYE sip:service@127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-7",
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001",
    "To: service <sip:service@127.0.0.1:5060>;tag=as5f3c2b1a",
    "Call-ID: 1-4242@127.0.0.1",
    "CSeq: 2 BYE",
    "Contact: sip:sipp@127.0.0.1:5061",
    "Max-Forwards: 70",
    "Subject: Performance Test",
    length="    0",
)

# Linphone over IPv6, with a GRUU instance and an escaped user in From.
LINPHONE_REGISTER_V6 = msg(
    "REGISTER sip:[2001:db8::1] SIP/2.0",
    "Via: SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bK.Xo2W~3rQd;rport",
    "From: <sip:%2B84901234567@[2001:db8::1]>;tag=F7y9Qm0aZ",
    "To: <sip:%2B84901234567@[2001:db8::1]>",
    "CSeq: 20 REGISTER",
    "Call-ID: 8zk3W0Lm1q",
    "Max-Forwards: 70",
    "Supported: replaces, outbound, gruu, path",
    "Accept: application/sdp",
    "Accept: text/plain",
    "Accept: application/vnd.gsma.rcs-ft-http+xml",
    "Contact: <sip:%2B84901234567@[2001:db8::10]:5060;transport=udp>;"
    '+sip.instance="<urn:uuid:7d1e4c2a-0f3b-4e5d-9a8b-1c2d3e4f5a6b>";+org.linphone.specs="lime"',
    "Expires: 3600",
    "User-Agent: LinphoneAndroid/5.2.5 (Pixel 7) LinphoneSDK/5.3.47",
    length="0",
)

# A mobile client that uses compact header forms (RFC 3261 §7.3.3).
COMPACT_REGISTER = msg(
    "REGISTER sip:pbx.example.com SIP/2.0",
    "v: SIP/2.0/TCP 198.51.100.7:52311;branch=z9hG4bK77ef4c2312983.1;rport",
    "f: <sip:bob@pbx.example.com>;tag=1928301774",
    "t: <sip:bob@pbx.example.com>",
    "i: a84b4c76e66710@pc33.example.com",
    "CSeq: 4711 REGISTER",
    "m: <sip:bob@198.51.100.7:52311;transport=tcp>",
    "k: path, gruu",
    "Max-Forwards: 70",
    "l: 0",
)

PJSIP_SDP = sdp(
    "v=0",
    "o=- 3912345678 3912345679 IN IP4 192.0.2.20",
    "s=pjmedia",
    "b=AS:84",
    "t=0 0",
    "a=X-nat:0",
    "m=audio 4002 RTP/AVP 8 101",
    "c=IN IP4 192.0.2.20",
    "b=TIAS:64000",
    "a=rtcp:4003 IN IP4 192.0.2.20",
    "a=sendrecv",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ssrc:1398210587 cname:4c3b2a1f6e5d7c8b",
)
# A 200 OK that went through a proxy: two Via lines, one of them a comma list.
PJSIP_200 = msg(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 10.0.0.5:5060;rport=5060;received=10.0.0.5;branch=z9hG4bKPj-1",
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-a, SIP/2.0/TCP 10.0.0.10;branch=z9hG4bK-b",
    "Record-Route: <sip:10.0.0.5;lr>",
    "Call-ID: 4e9d0a1f-6c55-4c1e-9b5a-7d2e3f4a5b6c",
    'From: "Bob" <sip:1002@pbx.example.com>;tag=Y3n8Hh2kQ',
    "To: <sip:1001@pbx.example.com>;tag=f3c2a1b0-9d8e-4f7a",
    "CSeq: 21170 INVITE",
    "Contact: <sip:1001@192.0.2.20:5060;ob>",
    "Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE",
    "Supported: replaces, 100rel, timer, norefersub",
    "Session-Expires: 1800;refresher=uac",
    "Require: timer",
    "Content-Type: application/sdp",
    body=PJSIP_SDP,
    length=str(len(PJSIP_SDP)),
)

ASTERISK_OPTIONS = msg(
    "OPTIONS sip:alice@192.0.2.10:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKPj8c1d5a3e-2b4f-4a6d",
    "From: <sip:alice@192.0.2.1>;tag=0a9b8c7d-6e5f-4a3b",
    "To: <sip:alice@192.0.2.10>",
    "Contact: <sip:alice@192.0.2.1:5060>",
    "Call-ID: 5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c",
    "CSeq: 36578 OPTIONS",
    "Max-Forwards: 70",
    "User-Agent: Asterisk PBX 20.5.0",
    length=" 0",
)

# An Asterisk trunk call to a tel: Request-URI, with a folded header (§7.3.1).
ASTERISK_INVITE_TEL = msg(
    "INVITE tel:+84283822123 SIP/2.0",
    "Via: SIP/2.0/UDP 203.0.113.9:5060;rport;branch=z9hG4bKPjf1e2d3c4",
    'From: "Nguyen Van A" <sip:0901234567@203.0.113.9>;tag=8f7e6d5c',
    "To: <tel:+84283822123>",
    "Contact: <sip:asterisk@203.0.113.9:5060>",
    "Call-ID: 7c6b5a49-3827-4165-9f8e-7d6c5b4a3928",
    "CSeq: 11432 INVITE",
    "Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL,",
    "  UPDATE, PRACK, MESSAGE, REFER",
    "Supported: 100rel, timer, replaces, norefersub",
    "P-Asserted-Identity: <sip:0901234567@203.0.113.9>",
    "Max-Forwards: 70",
    "User-Agent: Asterisk PBX 18.20.0",
    length="0",
)

SAMPLES = {
    "baresip-register": BARESIP_REGISTER,
    "baresip-register-auth": BARESIP_REGISTER_AUTH,
    "sipp-invite": SIPP_INVITE,
    "sipp-ack": SIPP_ACK,
    "sipp-bye": SIPP_BYE,
    "linphone-register-ipv6": LINPHONE_REGISTER_V6,
    "compact-register": COMPACT_REGISTER,
    "pjsip-200": PJSIP_200,
    "asterisk-options": ASTERISK_OPTIONS,
    "asterisk-invite-tel": ASTERISK_INVITE_TEL,
}


def same(a: Request | Response, b: Request | Response) -> bool:
    """Equal start line, headers and body."""
    return (
        type(a) is type(b) and a.start_line() == b.start_line()
        and list(a.headers) == list(b.headers) and a.body == b.body
    )


@pytest.mark.parametrize("name", SAMPLES)
def test_fast_and_general_paths_agree(name: str) -> None:
    data = SAMPLES[name]
    fast = parser.parse_message(data)
    general = parser._parse_general(data, 65535)
    assert same(fast, general)


def test_common_traffic_takes_the_fast_path() -> None:
    for data in (BARESIP_REGISTER, BARESIP_REGISTER_AUTH, SIPP_INVITE, ASTERISK_OPTIONS):
        parser.parse_message(data)  # the first sight of a header name takes the long way
        assert parser._parse_common(data, 65535) is not None
    # Folding and repeated headers are left to the general path.
    assert parser._parse_common(ASTERISK_INVITE_TEL, 65535) is None
    assert parser._parse_common(PJSIP_200, 65535) is None
