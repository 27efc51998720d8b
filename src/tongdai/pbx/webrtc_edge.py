"""WebRTC legs at the call driver's edge: the call core sees plain RTP/AVP SDP only.

A SIP dialog is a WebRTC leg when the SDP of its device says ``UDP/TLS/RTP/SAVPF``, or
when we send SDP to a browser: a device reached over a websocket (RFC 7118), or one
whose Contact says ``;transport=ws`` or ``wss`` although we reach it otherwise (over
the UDP of a proxy in front of us, the edge of docs/scaling.md, which holds its
websocket). Its SDP
is made plain on the way in, the browser's ICE and DTLS parameters going to the media
session; plain SDP going out to it is made WebRTC with the media session's ICE-lite
credentials and certificate (``tongdai.pbx.webrtc_sdp``). Which media leg a message
belongs to is read from the SDP itself: what the core sends a leg always points at
that leg's own relay port.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tongdai.media.engine import Leg, MediaSession
from tongdai.media.webrtc import WebRtcSession
from tongdai.pbx import webrtc_sdp
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Message, Request, Response
from tongdai.sip.peer import Peer
from tongdai.sip.sdp import SdpError, SessionDescription
from tongdai.sip.uri import SipUri

log = logging.getLogger("tongdai.calls")

WS_TRANSPORTS = frozenset({"ws", "wss"})


def _sip_call_id(msg: Message) -> str:
    return (msg.headers.get("call-id") or "").strip()


def _to_browser(msg: Message, peer: Peer | None) -> bool:
    """Whether ``msg`` goes to a browser: sent over a websocket, or a request to a
    websocket Contact (RFC 7118 §5: its Request-URI carries ``;transport=ws``)."""
    if peer is not None and peer.transport in WS_TRANSPORTS:
        return True
    if not isinstance(msg, Request):
        return False
    try:
        return SipUri.parse(msg.uri).transport in WS_TRANSPORTS
    except RemoteProtocolError:  # a URI we could not parse names no browser
        return False


def _our_port(body: bytes) -> int | None:
    try:
        sdp = SessionDescription.parse(body)
    except SdpError:
        return None
    return next((m.port for m in sdp.media if m.kind == "audio" and m.port), None)


class WebRtcEdge:
    """Which SIP dialogs are WebRTC legs, and their SDP translation both ways."""

    def __init__(self) -> None:
        self._dialogs: dict[str, tuple[str, Leg]] = {}  # SIP Call-ID -> (call, leg)
        self._offers: dict[tuple[str, Leg], webrtc_sdp.WebRtcOffer] = {}
        self._ports: dict[int, tuple[str, Leg]] = {}  # our relay port -> (call, leg)
        self._calls: dict[str, list[str]] = {}  # call -> its SIP Call-IDs

    def media_created(self, call_id: str, session: MediaSession) -> None:
        for leg in ("a", "b"):
            self._ports[session.local_address(leg)[1]] = (call_id, leg)

    def forget(self, call_id: str, session: MediaSession | None) -> None:
        for sip_id in self._calls.pop(call_id, ()):
            self._dialogs.pop(sip_id, None)
        for leg in ("a", "b"):
            self._offers.pop((call_id, leg), None)
            if session is not None:
                self._ports.pop(session.local_address(leg)[1], None)

    def _bind(self, sip_id: str, call_id: str, leg: Leg) -> None:
        if sip_id and sip_id not in self._dialogs:
            self._dialogs[sip_id] = (call_id, leg)
            self._calls.setdefault(call_id, []).append(sip_id)

    # In ---------------------------------------------------------------------------

    @staticmethod
    def new_call(req: Request) -> webrtc_sdp.WebRtcOffer | None:
        """A new INVITE from a browser: its SDP made plain; returns what it said."""
        offer = webrtc_sdp.webrtc_params(req.body)
        if offer is not None:
            req.body = webrtc_sdp.to_plain(req.body)
        return offer

    def caller(self, req: Request, call_id: str, offer: webrtc_sdp.WebRtcOffer,
               session: MediaSession | None) -> None:
        """The new call's leg a is the browser that sent ``req``."""
        self._bind(_sip_call_id(req), call_id, "a")
        self._remote(call_id, "a", offer, session)

    def incoming(self, msg: Message, sessions: Mapping[str, MediaSession]) -> None:
        """A request or response on a dialog: WebRTC SDP made plain, the browser's
        parameters to the media session."""
        if not msg.body:
            return
        offer = webrtc_sdp.webrtc_params(msg.body)
        if offer is None:
            return
        where = self._dialogs.get(_sip_call_id(msg))
        msg.body = webrtc_sdp.to_plain(msg.body)
        if where is not None:
            self._remote(where[0], where[1], offer, sessions.get(where[0]))

    def _remote(self, call_id: str, leg: Leg, offer: webrtc_sdp.WebRtcOffer,
                session: MediaSession | None) -> None:
        self._offers[(call_id, leg)] = offer
        if isinstance(session, WebRtcSession):
            session.webrtc_remote(leg, offer.params)

    # Out --------------------------------------------------------------------------

    def outgoing(self, msg: Message, peer: Peer | None,
                 sessions: Mapping[str, MediaSession]) -> None:
        """SDP we send: WebRTC SDP when it goes to a WebRTC leg."""
        if not msg.body or msg.content_type not in ("", "application/sdp"):
            return
        sip_id = _sip_call_id(msg)
        where = self._dialogs.get(sip_id)
        if where is None:
            if not _to_browser(msg, peer):
                return
            port = _our_port(msg.body)
            where = self._ports.get(port) if port is not None else None
            if where is None:
                return
            self._bind(sip_id, *where)
        call_id, leg = where
        session = sessions.get(call_id)
        if not isinstance(session, WebRtcSession):
            return
        offer = self._offers.get((call_id, leg))
        answering = isinstance(msg, Response) or (
            isinstance(msg, Request) and msg.method == "ACK")
        if answering and offer is not None:
            local = session.webrtc_local(leg, webrtc_sdp.answer_setup(offer.params))
            msg.body = webrtc_sdp.to_webrtc(msg.body, local, offer.mids)
        else:
            msg.body = webrtc_sdp.to_webrtc(msg.body, session.webrtc_local(leg, "actpass"))
