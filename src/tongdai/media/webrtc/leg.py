"""The browser side of one media leg: ICE-lite, DTLS-SRTP and rtcp-mux on its RTP port.

A WebRTC leg keeps the relay's socket and its plain-RTP port object (latching,
recording, activity) and puts this object in front of it:

* Demultiplexing by the first octet (RFC 7983 §7): 0-3 STUN, 20-63 DTLS, 128-191
  SRTP/SRTCP.
* ICE-lite (RFC 8445 §2.5, §7.3): we never send checks; a Binding request whose
  USERNAME starts with our ufrag and whose MESSAGE-INTEGRITY is keyed with our
  password is answered with XOR-MAPPED-ADDRESS, and the address that sends it
  becomes where the leg's media goes (the browser is the controlling agent and picks
  the pair; consent freshness, RFC 7675, is the same request every few seconds).
* DTLS (RFC 5764): the role the SDP negotiated; once the handshake is done the peer
  certificate must match the SDP fingerprint, and the exported keying material gives
  the SRTP keys of both directions (§4.2).
* SRTP from the browser is decrypted and handed to the plain port, as if it had come
  in plain; what the other leg sends to this one is encrypted on the way out (the
  plain port's ``transport`` is a stand-in that protects). SRTCP from the browser is
  authenticated and dropped: the plain legs' RTCP is theirs, per leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import string
from typing import Any

import pylibsrtp
from aioice import stun
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from tongdai.media.webrtc.identity import DtlsIdentity
from tongdai.media.webrtc.params import IceDtls, Setup

__all__ = ["WebRtcLeg", "new_credentials"]

log = logging.getLogger("tongdai.media.webrtc")

Addr = tuple[str, int]
_ICE_CHARS = string.ascii_letters + string.digits + "+/"
_KEY_LEN, _SALT_LEN = 16, 14  # SRTP_AES128_CM_SHA1_80 (RFC 5764 §4.1.2)


def new_credentials() -> tuple[str, str]:
    """ICE ufrag (≥ 4 characters) and password (≥ 22), RFC 8839 §5.4."""
    ufrag = "".join(secrets.choice(_ICE_CHARS) for _ in range(8))
    pwd = "".join(secrets.choice(_ICE_CHARS) for _ in range(24))
    return ufrag, pwd


class _Protector:
    """Stands in for the leg's UDP transport: encrypts what is sent to the browser."""

    __slots__ = ("srtp", "transport")

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport
        self.srtp: pylibsrtp.Session | None = None  # until DTLS is done: send nothing

    def sendto(self, data: bytes, addr: Addr | None = None) -> None:
        srtp = self.srtp
        if srtp is None:
            return
        try:
            # RTCP multiplexed by a plain peer (RFC 5761 §4: PT 192-223 in octet 1).
            out = srtp.protect_rtcp(data) if 191 < data[1] < 224 else srtp.protect(data)
        except (pylibsrtp.Error, IndexError):
            return
        self.transport.sendto(out, addr)

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


class WebRtcLeg(asyncio.DatagramProtocol):
    """ICE-lite + DTLS-SRTP in front of ``inner``, the leg's plain RTP port object.

    ``inner`` must have ``transport``, ``dest`` and ``datagram_received`` and
    ``connection_lost`` like an ``asyncio.DatagramProtocol`` (the relay's port).
    """

    def __init__(self, *, inner: Any, transport: asyncio.DatagramTransport,
                 identity: DtlsIdentity) -> None:
        self.inner = inner
        self.transport = transport
        self.identity = identity
        self.ufrag, self.pwd = new_credentials()
        self._key = self.pwd.encode()
        self.remote: IceDtls | None = None
        self.address: Addr | None = None  # the pair the browser nominated
        self._dtls: SSL.Connection | None = None
        self._server = True
        self._timer: asyncio.TimerHandle | None = None
        self._rx: pylibsrtp.Session | None = None
        self.connected = False
        self.plain = False  # a plain device answered instead: no ICE, DTLS or SRTP
        self.failed = ""
        self._out = _Protector(transport)
        inner.transport = self._out
        transport.set_protocol(self)

    def local(self, setup: Setup) -> IceDtls:
        """What our SDP for this leg says."""
        return IceDtls(ufrag=self.ufrag, pwd=self.pwd,
                       fingerprint=f"sha-256 {self.identity.fingerprint}", setup=setup)

    def set_remote(self, remote: IceDtls) -> None:
        """The browser's ICE credentials, fingerprint and DTLS role from its SDP; our
        role is the other one (an ``actpass`` peer leaves it to us: passive)."""
        if self.remote is not None and self._dtls is not None:
            if (remote.ufrag, remote.fingerprint) == (self.remote.ufrag,
                                                      self.remote.fingerprint):
                return  # a re-offer (hold, resume) of the same session
            self._reset()
        self.remote = remote
        self._server = remote.setup != "passive"
        conn = SSL.Connection(self.identity.context, None)
        if self._server:
            conn.set_accept_state()
        else:
            conn.set_connect_state()
        self._dtls = conn
        if not self._server and self.address is not None:
            self._handshake()

    def _fall_back(self) -> None:
        """Become a plain RTP leg for good: the plain port takes the socket back."""
        self.plain = True
        self._reset()
        self.inner.transport = self.transport
        self.transport.set_protocol(self.inner)
        log.info("WebRTC leg: plain RTP arrived before ICE; the leg is plain RTP")

    def _reset(self) -> None:
        self._dtls = None
        self._rx = None
        self._out.srtp = None
        self.connected = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # asyncio -----------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.inner.connection_lost(exc)

    def error_received(self, exc: Exception) -> None:
        log.debug("WebRTC socket error (ignored): %s", exc)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if len(data) < 2:
            return
        first = data[0]
        if first > 127:
            rx = self._rx
            if rx is None:
                if self.address is None:
                    # RTP before any ICE check: not a browser but a plain device that
                    # answered the same call (a device rung on a desk phone and in a
                    # browser at once). A browser sends no media before ICE and DTLS.
                    self._fall_back()
                    self.inner.datagram_received(data, addr)
                return
            try:
                if 191 < data[1] < 224:
                    rx.unprotect_rtcp(data)  # authenticated, not relayed
                    return
                plain = rx.unprotect(data)
            except pylibsrtp.Error:
                return
            self.inner.datagram_received(plain, addr)
        elif first < 4:
            self._stun(data, addr)
        elif 19 < first < 64:
            self._dtls_in(data, addr)

    # ICE-lite ----------------------------------------------------------------

    def _stun(self, data: bytes, addr: Addr) -> None:
        try:
            msg = stun.parse_message(data)
        except ValueError:
            return
        if msg.message_method != stun.Method.BINDING or \
                msg.message_class != stun.Class.REQUEST:
            return
        user = msg.attributes.get("USERNAME")
        if not isinstance(user, str) or not hmac.compare_digest(
                user.partition(":")[0].encode(), self.ufrag.encode()) or \
                not msg.check_message_integrity(self._key):
            self._stun_error(msg, addr, 401, "Unauthenticated")
            return
        resp = stun.Message(message_method=stun.Method.BINDING,
                            message_class=stun.Class.RESPONSE,
                            transaction_id=msg.transaction_id)
        resp.attributes["XOR-MAPPED-ADDRESS"] = addr
        resp.add_message_integrity(self._key)
        self.transport.sendto(bytes(resp), addr)
        if self.address is None or ("USE-CANDIDATE" in msg.attributes and
                                    addr != self.address):
            self._select(addr)

    def _stun_error(self, msg: stun.Message, addr: Addr, code: int, reason: str) -> None:
        resp = stun.Message(message_method=msg.message_method,
                            message_class=stun.Class.ERROR,
                            transaction_id=msg.transaction_id)
        resp.attributes["ERROR-CODE"] = (code, reason)
        resp.add_fingerprint()
        self.transport.sendto(bytes(resp), addr)

    def _select(self, addr: Addr) -> None:
        first = self.address is None
        self.address = addr
        # The plain port sends the other leg's audio (through the protector) there.
        self.inner.set_ice(addr)
        if first and not self._server and self._dtls is not None:
            self._handshake()

    # DTLS --------------------------------------------------------------------

    def _dtls_in(self, data: bytes, addr: Addr) -> None:
        conn = self._dtls
        if conn is None:
            return
        if self.address is None:
            self._select(addr)
        conn.bio_write(data)
        if self.connected:
            with contextlib.suppress(SSL.Error):
                conn.recv(1500)  # alerts and retransmitted Finished: drain them
            self._flush()
            return
        self._handshake()

    def _handshake(self) -> None:
        conn = self._dtls
        if conn is None:
            return
        try:
            conn.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            self.failed = f"DTLS handshake failed: {exc}"
            log.warning("WebRTC leg: %s", self.failed)
            self._flush()
            return
        else:
            self._established(conn)
        self._flush()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._dtls
        if conn is None or self.connected:
            return
        delay = conn.DTLSv1_get_timeout()
        if delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        conn = self._dtls
        if conn is None or self.connected:
            return
        with contextlib.suppress(SSL.Error):
            conn.DTLSv1_handle_timeout()
        self._flush()
        self._arm()

    def _flush(self) -> None:
        conn = self._dtls
        if conn is None or self.address is None:
            return
        while True:
            try:
                data = conn.bio_read(65536)
            except SSL.WantReadError:
                return
            if not data:
                return
            self.transport.sendto(data, self.address)

    def _established(self, conn: SSL.Connection) -> None:
        remote = self.remote
        cert = conn.get_peer_certificate(as_cryptography=True)
        if remote is None or cert is None:
            self.failed = "DTLS peer sent no certificate"
            return
        algo, _, want = remote.fingerprint.partition(" ")
        got = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
        if algo.lower() != "sha-256" or not hmac.compare_digest(got, want.upper()):
            self.failed = "DTLS certificate does not match the SDP fingerprint"
            log.warning("WebRTC leg: %s", self.failed)
            return
        # RFC 5764 §4.2: client key, server key, client salt, server salt.
        km = conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (_KEY_LEN + _SALT_LEN))
        ck, sk = km[:_KEY_LEN], km[_KEY_LEN:2 * _KEY_LEN]
        cs, ss = km[2 * _KEY_LEN:2 * _KEY_LEN + _SALT_LEN], km[2 * _KEY_LEN + _SALT_LEN:]
        mine, theirs = (sk + ss, ck + cs) if self._server else (ck + cs, sk + ss)
        rx = pylibsrtp.Policy(key=theirs, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        tx = pylibsrtp.Policy(key=mine, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        tx.allow_repeat_tx = True
        self._rx = pylibsrtp.Session(policy=rx)
        self._out.srtp = pylibsrtp.Session(policy=tx)
        self.connected = True
