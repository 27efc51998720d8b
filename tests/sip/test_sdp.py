"""SDP (RFC 4566) parsing, serialisation and the rewrites the media relay makes."""

from __future__ import annotations

import pytest

from tongdai.sip.sdp import Connection, Media, Origin, SdpError, SessionDescription


def body(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


BARESIP = body(
    "v=0",
    "o=- 1474520935 3108364125 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "a=tool:baresip 1.0.0",
    "m=audio 10004 RTP/AVP 0 8 101",
    "b=AS:96",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=ptime:20",
)

PJSIP = body(
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

# Linphone over IPv6, offering audio and video; unknown attributes everywhere.
LINPHONE_V6 = body(
    "v=0",
    "o=alice 2764 1021 IN IP6 2001:db8::10",
    "s=Talk",
    "c=IN IP6 2001:db8::10",
    "t=0 0",
    "a=ice-pwd:31ec21eb38b2ec6d36e8dc7b",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
    "m=video 9078 RTP/AVP 96",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:* trr-int 1000",
)

# Asterisk putting a call on hold the RFC 2543 way, with a session-level direction.
HOLD = body(
    "v=0",
    "o=- 1920434390 1920434392 IN IP4 203.0.113.9",
    "s=Asterisk",
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "a=sendonly",
    "m=audio 15986 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
)


@pytest.mark.parametrize("raw", [BARESIP, PJSIP, LINPHONE_V6, HOLD])
def test_serialize_is_byte_exact(raw: bytes) -> None:
    assert SessionDescription.parse(raw).serialize() == raw


def test_fields() -> None:
    sdp = SessionDescription.parse(PJSIP)
    assert sdp.origin == Origin("-", "3912345678", 3912345679, "IN", "IP4", "192.0.2.20")
    assert sdp.session_name == "pjmedia" and sdp.connection is None
    assert sdp.attributes == [("X-nat", "0")]
    assert sdp.lines == [("b", "AS:84"), ("t", "0 0")]
    (m,) = sdp.media
    assert (m.kind, m.port, m.proto, m.formats) == ("audio", 4002, "RTP/AVP", ["8", "101"])
    assert m.connection == Connection("IN", "IP4", "192.0.2.20")
    assert m.lines == [("b", "TIAS:64000")]
    assert m.attribute("fmtp") == "101 0-16" and m.attribute("sendrecv") == ""
    assert m.attribute("ptime") is None
    assert sdp.media_address(m) == "192.0.2.20"


def test_rtpmap_with_static_payload_types() -> None:
    m = SessionDescription.parse(BARESIP).media[0]
    assert m.rtpmap() == {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"}
    m = SessionDescription.parse(LINPHONE_V6).media[0]
    assert m.rtpmap()[96] == "opus/48000/2" and m.rtpmap()[18] == "G729/8000"
    assert list(m.rtpmap()) == [96, 97, 98, 0, 8, 18, 101, 99, 100]


def test_direction() -> None:
    assert SessionDescription.parse(BARESIP).media[0].direction == "sendrecv"
    assert SessionDescription.parse(LINPHONE_V6).media[0].direction == "sendrecv"  # default
    hold = SessionDescription.parse(HOLD)
    assert hold.direction == "sendonly"
    assert hold.media[0].direction == "sendonly"  # inherited from the session level
    assert hold.on_hold
    assert not SessionDescription.parse(PJSIP).on_hold


def test_rtcp_port() -> None:
    assert SessionDescription.parse(PJSIP).media[0].rtcp_port == 4003
    assert SessionDescription.parse(BARESIP).media[0].rtcp_port == 10005


def test_tolerates_lf_and_trailing_spaces() -> None:
    sloppy = PJSIP.replace(b"\r\n", b" \n").replace(b"s=pjmedia", b"s=pjmedia\t")
    sdp = SessionDescription.parse(sloppy)
    assert sdp.serialize() == PJSIP


def test_empty_session_name_is_written_as_one_space() -> None:
    raw = body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s= ", "t=0 0")
    sdp = SessionDescription.parse(raw)
    assert sdp.session_name == "" and sdp.serialize() == raw


def test_port_count_and_rejected_stream() -> None:
    raw = body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0",
               "m=audio 49170/2 RTP/AVP 0", "m=video 0 RTP/AVP 31")
    sdp = SessionDescription.parse(raw)
    assert (sdp.media[0].port, sdp.media[0].port_count) == (49170, 2)
    assert sdp.media[1].port == 0
    assert sdp.serialize() == raw


def test_relay_rewrite() -> None:
    sdp = SessionDescription.parse(PJSIP)
    sdp.set_connection("198.51.100.1")
    m = sdp.media[0]
    m.port = 30000
    m.set_rtcp(30001)  # the default: the attribute goes
    sdp.bump_version()
    out = SessionDescription.parse(sdp.serialize())
    assert out.connection == Connection("IN", "IP4", "198.51.100.1")
    assert out.media[0].connection == out.connection
    assert out.origin.address == "198.51.100.1" and out.origin.version == 3912345680
    assert out.media[0].port == 30000 and out.media[0].rtcp_port == 30001
    assert out.media[0].attribute("rtcp") is None
    # Everything else is untouched, in order.
    assert out.media[0].attributes == [
        ("sendrecv", None), ("rtpmap", "8 PCMA/8000"), ("rtpmap", "101 telephone-event/8000"),
        ("fmtp", "101 0-16"), ("ssrc", "1398210587 cname:4c3b2a1f6e5d7c8b"),
    ]
    assert out.attributes == [("X-nat", "0")] and out.lines == [("b", "AS:84"), ("t", "0 0")]
    # c= goes after s= and before b=/t= (RFC 4566 §5).
    assert sdp.serialize().splitlines()[3] == b"c=IN IP4 198.51.100.1"


def test_set_connection_ipv6() -> None:
    sdp = SessionDescription.parse(BARESIP)
    sdp.set_connection("[2001:db8::1]")
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::1")
    assert (sdp.origin.addrtype, sdp.origin.address) == ("IP6", "2001:db8::1")
    assert b"c=IN IP6 2001:db8::1\r\n" in sdp.serialize()


def test_set_rtcp_rewrites_in_place_or_drops() -> None:
    m = SessionDescription.parse(PJSIP).media[0]
    m.set_rtcp(5000)
    assert m.attributes[0] == ("rtcp", "5000") and m.rtcp_port == 5000
    m.set_rtcp(6001, "10.0.0.1")
    assert m.attribute("rtcp") == "6001 IN IP4 10.0.0.1"
    m.set_rtcp(None)
    assert m.attribute("rtcp") is None and m.rtcp_port == 4003


def test_with_direction_copies_and_set_direction_mutates() -> None:
    sdp = SessionDescription.parse(HOLD)
    resumed = sdp.with_direction("sendrecv")
    assert sdp.media[0].direction == "sendonly" and sdp.direction == "sendonly"
    assert resumed.media[0].direction == "sendrecv" and resumed.direction == "sendrecv"
    assert resumed.attributes == []
    m = SessionDescription.parse(BARESIP).media[0]
    inactive = m.with_direction("inactive")
    assert m.direction == "sendrecv"
    assert inactive.attributes[2] == ("inactive", None)  # in place of sendrecv
    m.set_direction("recvonly")
    assert [k for k, v in m.attributes if v is None] == ["recvonly"]
    with pytest.raises(ValueError):
        m.set_direction("sideways")


def test_media_can_be_built() -> None:
    sdp = SessionDescription(origin=Origin("tongdai", "1", 1, address="192.0.2.5"),
                             connection=Connection.for_host("192.0.2.5"), lines=[("t", "0 0")])
    sdp.media.append(Media("audio", 4000, "RTP/AVP", ["0"], attributes=[("sendrecv", None)]))
    assert sdp.serialize() == body(
        "v=0", "o=tongdai 1 1 IN IP4 192.0.2.5", "s=-", "c=IN IP4 192.0.2.5", "t=0 0",
        "m=audio 4000 RTP/AVP 0", "a=sendrecv")


@pytest.mark.parametrize("raw", [
    b"",
    b"\r\n\r\n",
    body("o=- 1 1 IN IP4 192.0.2.1", "v=0", "s=-"),  # v= not first
    body("v=1", "o=- 1 1 IN IP4 192.0.2.1", "s=-"),
    body("v=0", "s=-", "t=0 0"),  # no o=
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "t=0 0"),  # no s=
    body("v=0", "o=- 1 IN IP4 192.0.2.1", "s=-"),
    body("v=0", "o=- 1 x IN IP4 192.0.2.1", "s=-"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "m=audio RTP/AVP 0"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "m=audio 70000 RTP/AVP 0"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "m=audio 4000/x RTP/AVP 0"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "this is not sdp"),
    body("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "1=2"),
    body("v=0", "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-"),
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=caf\xe9\r\n",
])
def test_malformed(raw: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(raw)
