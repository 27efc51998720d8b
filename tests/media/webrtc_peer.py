"""A minimal WebRTC media peer for tests and benchmarks: what a browser does on the
wire for one audio stream (full-ICE controlling agent with one Binding request and
USE-CANDIDATE, DTLS client, SRTP both ways), on one real UDP socket."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pylibsrtp
from aioice import stun
from OpenSSL import SSL

from tongdai.media.webrtc.identity import DtlsIdentity
from tongdai.media.webrtc.leg import new_credentials
from tongdai.media.webrtc.params import IceDtls

Addr = tuple[str, int]


class WebRtcPeer(asyncio.DatagramProtocol):
    def __init__(self, identity: DtlsIdentity) -> None:
        self.identity = identity
        self.ufrag, self.pwd = new_credentials()
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: IceDtls | None = None
        self.server: Addr | None = None
        self.conn = SSL.Connection(identity.context, None)
        self.conn.set_connect_state()
        self.tx: pylibsrtp.Session | None = None
        self.rx: pylibsrtp.Session | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.ice_ok = asyncio.get_running_loop().create_future()
        self.received: list[tuple[float, bytes]] = []  # (arrival, plain RTP)

    @property
    def params(self) -> IceDtls:
        return IceDtls(ufrag=self.ufrag, pwd=self.pwd,
                       fingerprint=f"sha-256 {self.identity.fingerprint}", setup="active")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, server: Addr, remote: IceDtls) -> None:
        self.server, self.remote = server, remote
        req = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
        req.attributes["USERNAME"] = f"{remote.ufrag}:{self.ufrag}"
        req.attributes["PRIORITY"] = 2130706431
        req.attributes["ICE-CONTROLLING"] = 1
        req.attributes["USE-CANDIDATE"] = None
        req.add_message_integrity(remote.pwd.encode())
        assert self.transport is not None
        self.transport.sendto(bytes(req), server)

    def _pump(self) -> None:
        assert self.transport is not None and self.server is not None
        with contextlib.suppress(SSL.WantReadError):
            self.conn.do_handshake()
            if not self.connected.done():
                km = self.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
                ck, sk, cs, ss = km[:16], km[16:32], km[32:46], km[46:]
                tx = pylibsrtp.Policy(key=ck + cs,
                                      ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
                rx = pylibsrtp.Policy(key=sk + ss,
                                      ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
                self.tx, self.rx = pylibsrtp.Session(tx), pylibsrtp.Session(rx)
                self.connected.set_result(None)
        while True:
            try:
                data = self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
            self.transport.sendto(data, self.server)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        first = data[0]
        if first < 4:
            msg = stun.parse_message(data)
            if msg.message_class == stun.Class.RESPONSE and not self.ice_ok.done():
                self.ice_ok.set_result(None)
                self._pump()
        elif 19 < first < 64:
            self.conn.bio_write(data)
            self._pump()
        elif first > 127 and self.rx is not None:
            with contextlib.suppress(pylibsrtp.Error):
                self.received.append((time.monotonic(), self.rx.unprotect(data)))

    def send_rtp(self, packet: bytes) -> None:
        if self.tx is not None and self.transport is not None and self.server:
            self.transport.sendto(self.tx.protect(packet), self.server)
