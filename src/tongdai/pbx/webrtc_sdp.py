"""WebRTC SDP at the edge of the call core (RFC 8829 JSEP, RFC 8839, RFC 5763).

The call core speaks plain RTP/AVP SDP only. A leg is a WebRTC leg when its SDP says
``UDP/TLS/RTP/SAVPF`` (with ICE credentials and a DTLS fingerprint), or when we offer
to a device reached over a websocket (a browser). Its SDP is turned into plain SDP on
the way in (``to_plain``, keeping ``webrtc_params``: what the media engine needs for
ICE and DTLS) and plain SDP is turned into WebRTC SDP on the way out (``to_webrtc``,
with our ICE-lite credentials, one host candidate, the fingerprint and the DTLS role).

Only G.711 (PCMU, PCMA) and RFC 4733 telephone-event at 8 kHz are kept from a
browser's offer, under the browser's payload type numbers: every browser offers
them, so the carrier or desk phone on the other leg gets the same codec and nothing
is transcoded (Opus would need it). Video and data sections are refused (port 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.media.webrtc.params import IceDtls, Setup
from tongdai.sip.sdp import Media, SdpError, SessionDescription

__all__ = ["WebRtcOffer", "is_webrtc", "to_plain", "to_webrtc", "webrtc_params"]

WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"
PLAIN_PROTO = "RTP/AVP"
_KEEP_CODECS = ("pcmu/8000", "pcma/8000", "telephone-event/8000")
# Media attributes that describe the codecs and direction and survive the crossing;
# everything else (ICE, DTLS, mid, msid, ssrc, extmap, rtcp-fb, rtcp-mux) is WebRTC's.
_KEEP_ATTRS = frozenset({"rtpmap", "fmtp", "ptime", "maxptime",
                         "sendrecv", "sendonly", "recvonly", "inactive"})
_SETUPS: dict[str, Setup] = {"actpass": "actpass", "active": "active", "passive": "passive"}
_SESSION_DROP = frozenset({"group", "msid-semantic", "ice-lite", "ice-ufrag", "ice-pwd",
                           "ice-options", "fingerprint", "setup", "extmap-allow-mixed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WebRtcOffer:
    """What a WebRTC SDP told us: the media engine's part, and the m= line ids that
    our answer must echo (RFC 8843 §7.3)."""

    params: IceDtls
    mids: tuple[str, ...]


def _parse(body: bytes) -> SessionDescription | None:
    if not body:
        return None
    try:
        return SessionDescription.parse(body)
    except SdpError:
        return None


def _audio(sdp: SessionDescription) -> Media | None:
    return next((m for m in sdp.media if m.kind == "audio" and m.port), None)


def _secure(m: Media | None) -> bool:
    # UDP/TLS/RTP/SAVP(F) (RFC 5764 §8), also TCP/TLS/RTP/SAVPF
    return m is not None and "TLS" in m.proto.upper().split("/")


def is_webrtc(body: bytes) -> bool:
    """Whether ``body`` is SDP whose audio runs over DTLS-SRTP (a browser's)."""
    sdp = _parse(body)
    return sdp is not None and _secure(_audio(sdp))


def webrtc_params(body: bytes) -> WebRtcOffer | None:
    """The browser's ICE credentials, fingerprint and DTLS role, or None when
    ``body`` is not WebRTC SDP or lacks one of them."""
    if b"fingerprint" not in body:  # most calls: plain SDP, not worth parsing here
        return None
    sdp = _parse(body)
    m = _audio(sdp) if sdp is not None else None
    if sdp is None or m is None or not _secure(m):
        return None

    def attr(name: str) -> str | None:
        value = m.attribute(name)
        return value if value is not None else next(
            (v for k, v in sdp.attributes if k == name), None)

    ufrag, pwd, fp = attr("ice-ufrag"), attr("ice-pwd"), attr("fingerprint")
    setup = _SETUPS.get((attr("setup") or "actpass").strip().lower())
    if not ufrag or not pwd or not fp or setup is None:
        return None
    mids = tuple(x.attribute("mid") or "" for x in sdp.media)
    return WebRtcOffer(params=IceDtls(ufrag=ufrag.strip(), pwd=pwd.strip(),
                                      fingerprint=" ".join(fp.split()), setup=setup),
                       mids=mids)


def to_plain(body: bytes) -> bytes:
    """``body`` as RTP/AVP SDP with G.711 and telephone-event only; unchanged when it
    is not WebRTC SDP. An audio section with none of those codecs is refused."""
    sdp = _parse(body)
    if sdp is None or not is_webrtc(body):
        return body
    sdp.attributes = [kv for kv in sdp.attributes if kv[0] not in _SESSION_DROP]
    for m in sdp.media:
        if m.kind != "audio" or not m.port:
            m.port = 0
            continue
        names = m.rtpmap()
        keep = [f for f in m.formats if f.isdigit() and
                names.get(int(f), "").lower() in _KEEP_CODECS]
        m.proto = PLAIN_PROTO
        if not any(names.get(int(f), "").lower() != "telephone-event/8000" for f in keep):
            m.port, keep = 0, keep or ["0"]
        m.formats = keep
        m.attributes = [
            (k, v) for k, v in m.attributes if k in _KEEP_ATTRS and
            (k not in ("rtpmap", "fmtp") or (v or "").partition(" ")[0] in keep)]
    return sdp.serialize()


def to_webrtc(body: bytes, local: IceDtls, mids: tuple[str, ...] = ()) -> bytes:
    """Plain SDP (already pointing at our port for this leg) as WebRTC SDP: our ICE-lite
    credentials, a host candidate on that port, our fingerprint and DTLS role,
    rtcp-mux; ``mids`` are the offer's m= line ids (an offer of ours uses 0, 1...)."""
    sdp = _parse(body)
    if sdp is None:
        return body
    sdp.attributes = [kv for kv in sdp.attributes if kv[0] not in _SESSION_DROP]
    host = sdp.connection.host if sdp.connection is not None else ""
    bundle: list[str] = []
    for i, m in enumerate(sdp.media):
        mid = mids[i] if i < len(mids) and mids[i] else str(i)
        if m.kind != "audio":
            m.attributes = [("mid", mid)]
            continue
        m.proto = WEBRTC_PROTO
        m.attributes = [(k, v) for k, v in m.attributes if k in _KEEP_ATTRS]
        if not m.port:
            m.attributes.insert(0, ("mid", mid))
            continue
        bundle.append(mid)
        m_host = m.connection.host if m.connection is not None else host
        m.attributes[:0] = [
            ("mid", mid),
            ("ice-ufrag", local.ufrag),
            ("ice-pwd", local.pwd),
            ("fingerprint", local.fingerprint),
            ("setup", local.setup),
            ("rtcp-mux", None),
            ("candidate", f"1 1 udp 2130706431 {m_host} {m.port} typ host"),
            ("end-of-candidates", None),
        ]
    sdp.attributes[:0] = [("ice-lite", None), ("msid-semantic", " WMS")]
    if bundle:
        sdp.attributes.insert(0, ("group", "BUNDLE " + " ".join(bundle)))
    return sdp.serialize()


def answer_setup(offer: IceDtls) -> Setup:
    """Our DTLS role in an answer (RFC 5763 §5): the other one, passive for actpass."""
    return "active" if offer.setup == "passive" else "passive"
