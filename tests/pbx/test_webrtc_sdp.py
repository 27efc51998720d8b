"""WebRTC SDP made plain for the call core and back (pbx/webrtc_sdp)."""

from __future__ import annotations

from tongdai.media.webrtc.params import IceDtls
from tongdai.pbx import webrtc_sdp
from tongdai.sip.sdp import SessionDescription

# What Chromium offers for one microphone (shortened: fewer codecs and extensions).
CHROME_OFFER = b"""v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS 6a1c\r
m=audio 54321 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 10.200.0.1\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:1 1 udp 2122260223 10.200.0.1 54321 typ host generation 0\r
a=ice-ufrag:Xy9z\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=ice-options:trickle\r
a=fingerprint:sha-256 @FP@\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=sendrecv\r
a=msid:6a1c 1b2d\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:12345 cname:abc\r
""".replace(b"@FP@", b":".join([b"01:23:45:67:89:AB:CD:EF"] * 4))

PLAIN = b"""v=0\r
o=carrier 1 1 IN IP4 10.200.0.1\r
s=-\r
c=IN IP4 10.200.0.1\r
t=0 0\r
m=audio 30000 RTP/AVP 0 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=sendrecv\r
"""

LOCAL = IceDtls(ufrag="ourU", pwd="p" * 24, fingerprint="sha-256 AA:BB", setup="passive")


def test_recognises_a_browser_offer() -> None:
    assert webrtc_sdp.is_webrtc(CHROME_OFFER)
    assert not webrtc_sdp.is_webrtc(PLAIN)
    assert not webrtc_sdp.is_webrtc(b"")
    assert not webrtc_sdp.is_webrtc(b"not sdp")
    offer = webrtc_sdp.webrtc_params(CHROME_OFFER)
    assert offer is not None
    assert offer.params.ufrag == "Xy9z" and offer.params.pwd == "abcdefghijklmnopqrstuvwx"
    assert offer.params.fingerprint.startswith("sha-256 01:23:45")
    assert offer.params.setup == "actpass" and offer.mids == ("0",)
    assert webrtc_sdp.webrtc_params(PLAIN) is None
    # without ICE credentials it is not usable
    assert webrtc_sdp.webrtc_params(CHROME_OFFER.replace(b"a=ice-pwd", b"a=x-pwd")) is None


def test_plain_keeps_g711_and_telephone_event_under_the_browsers_numbers() -> None:
    plain = SessionDescription.parse(webrtc_sdp.to_plain(CHROME_OFFER))
    [m] = plain.media
    assert m.proto == "RTP/AVP" and m.port == 54321
    assert m.formats == ["0", "8", "126"]
    names = {k for k, _ in m.attributes}
    assert names == {"rtpmap", "sendrecv"}
    assert all(k not in {"group", "msid-semantic", "extmap-allow-mixed"}
               for k, _ in plain.attributes)
    assert webrtc_sdp.to_plain(PLAIN) == PLAIN  # plain SDP is left alone


def test_an_opus_only_offer_is_refused() -> None:
    opus_only = CHROME_OFFER.replace(b"111 63 9 0 8 13 110 126", b"111")
    [m] = SessionDescription.parse(webrtc_sdp.to_plain(opus_only)).media
    assert m.port == 0


def test_webrtc_answer_carries_our_ice_lite_dtls_and_the_offers_mid() -> None:
    body = webrtc_sdp.to_webrtc(PLAIN, LOCAL, ("audio0",))
    sdp = SessionDescription.parse(body)
    [m] = sdp.media
    assert m.proto == "UDP/TLS/RTP/SAVPF" and m.port == 30000
    assert ("ice-lite", None) in sdp.attributes
    assert ("group", "BUNDLE audio0") in sdp.attributes
    assert m.attribute("mid") == "audio0"
    assert m.attribute("ice-ufrag") == "ourU" and m.attribute("ice-pwd") == "p" * 24
    assert m.attribute("fingerprint") == "sha-256 AA:BB"
    assert m.attribute("setup") == "passive"
    assert m.attribute("rtcp-mux") == ""
    assert m.attribute("candidate") == "1 1 udp 2130706431 10.200.0.1 30000 typ host"
    assert m.formats == ["0", "101"]
    # Made WebRTC twice, it is the same (a retransmitted or re-sent message).
    assert webrtc_sdp.to_webrtc(body, LOCAL, ("audio0",)) == body
    # and what we send parses back as WebRTC
    back = webrtc_sdp.webrtc_params(body)
    assert back is not None and back.params.ufrag == "ourU"


def test_our_dtls_role_in_an_answer() -> None:
    def role(setup: str) -> str:
        return webrtc_sdp.answer_setup(IceDtls(ufrag="u", pwd="p", fingerprint="f",
                                               setup=setup))  # type: ignore[arg-type]
    assert role("actpass") == "passive"
    assert role("active") == "passive"
    assert role("passive") == "active"
