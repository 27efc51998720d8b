"""SIP over WebSocket (RFC 7118) against the whole PBX in-process, over real sockets.

A ``websockets`` client plays the browser: it registers with digest, gets the calls
of its device over its connection, and is refused for a foreign Origin or without
the ``sip`` subprotocol.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.pbx.peers import UdpPeer, register, sip_text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tongdai.pbx.protocol import DeviceOffline
from tongdai.server import Pbx, StartError, build, shutdown
from tongdai.settings import SettingsError, load_settings
from tongdai.sip import digest
from tongdai.sip.message import Request, Response, make_response, serialize
from tongdai.sip.parser import parse_message
from tongdai.store.records import Cdr
from tongdai.transport.ws import origin_allowed

try:  # the store keeps digest keys of device passwords (pbx/credentials.py)
    from tongdai.pbx.credentials import digest_keys
except ImportError:  # the store hashes the password itself
    digest_keys = None  # type: ignore[assignment,unused-ignore]

SIP = [Subprotocol("sip")]
PASSWORD = "ws-secret-1"
READ_TIMEOUT = 1.0
Message = Request | Response

_n = itertools.count(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    """A SIP over WebSocket client, as JsSIP or SIP.js in a browser tab."""

    def __init__(self, ws: ClientConnection, user: str = "agent") -> None:
        self.ws = ws
        self.user = user
        self.call_id = f"ws-reg-{next(_n)}"
        self.cseq = 0

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, pred: Callable[[Message], bool] = lambda m: True,
                   wait: float = 3.0) -> Message:
        deadline = time.monotonic() + wait
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            msg = parse_message(raw.encode() if isinstance(raw, str) else raw)
            if pred(msg):
                return msg

    def register_text(self, auth: str = "") -> str:
        self.cseq += 1
        lines = [
            "REGISTER sip:127.0.0.1 SIP/2.0",
            f"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{next(_n)}",
            "Max-Forwards: 70",
            f"To: <sip:{self.user}@127.0.0.1>",
            f"From: <sip:{self.user}@127.0.0.1>;tag=b{self.cseq}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{self.user}@df7jal23ls0d.invalid;transport=ws>;expires=600",
        ]
        if auth:
            lines.append(f"Authorization: {auth}")
        return "\r\n".join([*lines, "Content-Length: 0", "", ""])

    async def register(self) -> tuple[Response, Response]:
        """The challenge and the answer to the authenticated REGISTER."""
        await self.send(self.register_text())
        chal = await self.recv(lambda m: isinstance(m, Response))
        assert isinstance(chal, Response)
        auth = digest.authorization(chal.headers.get("www-authenticate") or "",
                                    method="REGISTER", uri="sip:127.0.0.1",
                                    username=self.user, password=PASSWORD, cnonce="c0ffee")
        await self.send(self.register_text(auth or ""))
        ok = await self.recv(lambda m: isinstance(m, Response))
        assert isinstance(ok, Response)
        return chal, ok


async def _pbx(tmp_path: Path, **settings: Any) -> Pbx:
    return await build(load_settings(
        data_dir=tmp_path, sip_port=0, rtp_ports="43300-43399",
        tcp_read_timeout=READ_TIMEOUT, **settings))


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    p = await _pbx(tmp_path, sip_ws_port=_free_port())
    try:
        yield p
    finally:
        await shutdown(p)


async def _agent(pbx: Pbx, *users: str) -> str:
    """An app with the device ``agent`` (and ``users``), all with PASSWORD, and a trunk."""
    app = await pbx.store.create_app("ws")
    store: Any = pbx.store
    for user in ("agent", *users):
        if digest_keys is not None:
            await store.add_device(app.app_id, user,
                                   digest_keys(user, pbx.settings.domain, PASSWORD))
        else:
            await store.add_device(app.app_id, user, PASSWORD, realm=pbx.settings.domain)
    await pbx.store.add_trunk(app.app_id, "carrier", host="127.0.0.1", port=_free_port(),
                              transport="udp")
    await pbx.directory.check()
    return app.app_id


def _url(pbx: Pbx, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{pbx.shell.ws_port(scheme)}"


def _is_invite(m: Message) -> bool:
    return isinstance(m, Request) and m.method == "INVITE"


async def _cdrs(pbx: Pbx, app_id: str, wait: float = 3.0) -> list[Cdr]:
    deadline = time.monotonic() + wait
    while True:
        _, rows = await pbx.store.list_cdrs(app_id, 0, time.time() + 60, limit=5, offset=0)
        if rows or time.monotonic() > deadline:
            return list(rows)
        await asyncio.sleep(0.1)


async def test_register_over_ws_is_challenged_then_bound_to_the_connection(pbx: Pbx) -> None:
    await _agent(pbx)
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        assert ws.subprotocol == "sip"
        chal, ok = await Browser(ws).register()
        assert chal.status == 401 and ok.status == 200
        # The response came back over the websocket, its Via stamped with the source.
        assert chal.top_via.transport == "WS" and "received=127.0.0.1" in str(
            chal.headers.get("via"))
        (reg,) = pbx.location.bindings("agent")
        local = ws.local_address
        assert (reg.transport, reg.source_host, reg.source_port) == ("ws", "127.0.0.1",
                                                                    local[1])
        assert reg.contact == "sip:agent@df7jal23ls0d.invalid;transport=ws"


async def test_click_to_call_rings_the_browser_over_its_websocket(pbx: Pbx) -> None:
    app_id = await _agent(pbx)
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        browser = Browser(ws)
        await browser.register()
        await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number="0901234567")
        invite = await browser.recv(_is_invite)
        assert isinstance(invite, Request)
        # RFC 7118 §5: a request the server sends over a websocket says WS in its Via.
        assert invite.top_via.transport == "WS"
        assert invite.uri == "sip:agent@df7jal23ls0d.invalid;transport=ws"
        await browser.send(serialize(make_response(invite, 486)))
        ack = await browser.recv(lambda m: isinstance(m, Request) and m.method == "ACK")
        assert ack.call_id == invite.call_id
    (cdr,) = await _cdrs(pbx, app_id)
    assert cdr.status_detail == "BUSY" and cdr.answered_at is None


async def test_a_closed_websocket_ends_the_ringing_call_and_the_device_goes_offline(
    pbx: Pbx,
) -> None:
    app_id = await _agent(pbx)
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        browser = Browser(ws)
        await browser.register()
        await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number="0901234567")
        await browser.recv(_is_invite)
        closed_at = time.monotonic()
    # The ringing leg fails with its connection, not after Timer B (32 s).
    cdrs = await _cdrs(pbx, app_id, wait=3.0)
    assert len(cdrs) == 1 and cdrs[0].answered_at is None
    assert time.monotonic() - closed_at < 3.0
    # A browser cannot be called back: its binding is gone with the connection.
    assert not pbx.location.is_registered("agent")
    with pytest.raises(DeviceOffline):
        await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number="0901234567")


async def test_a_foreign_origin_is_refused_and_the_own_host_or_none_accepted(pbx: Pbx) -> None:
    with pytest.raises(InvalidStatus) as err:
        async with connect(_url(pbx), subprotocols=SIP,
                           origin=Origin("https://evil.example")):
            pass
    assert err.value.response.status_code == 403
    for origin in (Origin("http://127.0.0.1:8080"), None):
        async with connect(_url(pbx), subprotocols=SIP, origin=origin) as ws:
            assert ws.subprotocol == "sip"
    with pytest.raises(InvalidStatus) as err:
        async with connect(_url(pbx), subprotocols=SIP, origin=Origin("http://127.0.0.1"),
                           additional_headers={"Origin": "https://evil.example"}):
            pass
    assert err.value.response.status_code == 403


async def test_listed_origins_only(tmp_path: Path) -> None:
    p = await _pbx(tmp_path, sip_ws_port=_free_port(),
                   sip_ws_origins="https://crm.example.vn/")
    try:
        async with connect(_url(p), subprotocols=SIP,
                           origin=Origin("https://crm.example.vn")) as ws:
            assert ws.subprotocol == "sip"
        for origin in (Origin("http://127.0.0.1:8080"), None):
            with pytest.raises(InvalidStatus):
                async with connect(_url(p), subprotocols=SIP, origin=origin):
                    pass
    finally:
        await shutdown(p)


@pytest.mark.parametrize("offered", [None, ["chat"]])
async def test_a_handshake_without_the_sip_subprotocol_is_refused(
    pbx: Pbx, offered: list[str] | None,
) -> None:
    subprotocols = [Subprotocol(s) for s in offered] if offered else None
    with pytest.raises(InvalidStatus) as err:
        async with connect(_url(pbx), subprotocols=subprotocols):
            pass
    assert err.value.response.status_code == 400


async def test_malformed_sip_is_answered_or_dropped_and_the_listener_lives_on(pbx: Pbx) -> None:
    await _agent(pbx)
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        browser = Browser(ws)
        # A request with a broken CSeq: 400, the connection stays.
        await browser.send("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;"
                           "branch=z9hG4bKbad1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1"
                           "\r\nTo: <sip:a@b>\r\nCall-ID: bad1\r\nCSeq: x OPTIONS\r\n\r\n")
        bad = await browser.recv()
        assert isinstance(bad, Response) and bad.status == 400 and bad.call_id == "bad1"
        # Bytes that are no SIP message at all (and no Call-ID to answer): dropped.
        await browser.send(b"\xff\xfe not sip at all")
        await browser.send("OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n")
        await browser.send("\r\n\r\n")  # a keep-alive (RFC 5626 §4.4.1) gets one CRLF
        assert await ws.recv() == "\r\n"
        _, ok = await browser.register()
        assert ok.status == 200
        # Bigger than a SIP message may be: the connection closes (1009), nothing else.
        await browser.send("x" * 70000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        _, ok = await Browser(ws).register()
        assert ok.status == 200


async def test_a_websocket_that_sends_no_sip_message_is_closed(pbx: Pbx) -> None:
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT + 3)
        assert time.monotonic() - started < READ_TIMEOUT + 2


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_wss_with_the_certificate_from_settings(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    p = await _pbx(tmp_path / "data", sip_wss_port=_free_port(), tls_cert=str(cert),
                   tls_key=str(key))
    try:
        assert p.shell.ws_port("ws") is None
        await _agent(p)
        client_tls = ssl.create_default_context(cafile=str(cert))
        async with connect(_url(p, "wss"), subprotocols=SIP, ssl=client_tls) as ws:
            chal, ok = await Browser(ws).register()
            assert chal.status == 401 and ok.status == 200
        # The connection closed: the binding goes with it.
        deadline = time.monotonic() + 3
        while p.location.is_registered("agent") and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert not p.location.is_registered("agent")
    finally:
        await shutdown(p)


def test_wss_settings_need_a_certificate_and_key() -> None:
    with pytest.raises(SettingsError, match="sip_wss_port needs tls_cert"):
        load_settings(sip_wss_port=8089)
    with pytest.raises(SettingsError, match="tls_cert and tls_key go together"):
        load_settings(tls_cert="/etc/ssl/cert.pem")
    with pytest.raises(SettingsError, match="is not an origin"):
        load_settings(sip_ws_origins="crm.example.vn")
    s = load_settings(sip_ws_origins=" https://crm.example.vn/ , http://10.0.0.5:8080")
    assert s.sip_ws_origin_list == ("https://crm.example.vn", "http://10.0.0.5:8080")


def test_origin_rules() -> None:
    own = "10.0.0.5:8088"
    assert origin_allowed(None, own, ())
    assert origin_allowed("https://10.0.0.5:8443", own, ())
    assert not origin_allowed("https://evil.example", own, ())
    assert not origin_allowed("null", own, ())
    assert not origin_allowed("https://10.0.0.5", None, ())
    assert origin_allowed("https://crm.example.vn", own, ("https://crm.example.vn",))
    assert not origin_allowed(None, own, ("https://crm.example.vn",))
    assert origin_allowed("https://x.example", own, ("*",))


async def test_caps_and_idle_timeout_of_tcp_apply(tmp_path: Path) -> None:
    p = await _pbx(tmp_path, sip_ws_port=_free_port(), tcp_max_per_source=2,
                   tcp_idle_timeout=1.5)
    try:
        await _agent(p)
        async with connect(_url(p), subprotocols=SIP) as registered, \
                connect(_url(p), subprotocols=SIP) as quiet:
            _, ok = await Browser(registered).register()
            assert ok.status == 200
            with pytest.raises(InvalidStatus) as err:
                async with connect(_url(p), subprotocols=SIP):
                    pass
            assert err.value.response.status_code == 503
            await quiet.send("\r\n\r\n")  # a keep-alive is not a SIP message ...
            await Browser(quiet).send("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS "
                                      "q.invalid;branch=z9hG4bKq1\r\nMax-Forwards: 70\r\n"
                                      "From: <sip:q@q>;tag=1\r\nTo: <sip:q@q>\r\n"
                                      "Call-ID: q1\r\nCSeq: 1 OPTIONS\r\n\r\n")
            # ... an OPTIONS is; then, idle and carrying no registration, it is closed.
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(quiet.recv(), 5)
            assert 1.0 < time.monotonic() - started < 4.0
            # The connection a device registered through stays, however quiet.
            await registered.ping()
            assert p.location.is_registered("agent")
    finally:
        await shutdown(p)


async def test_start_errors_name_the_setting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(StartError, match=r"TONGDAI_SIP_WS_PORT \d+ is in use"):
            await _pbx(tmp_path / "a", sip_ws_port=taken.getsockname()[1])
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(StartError, match="cannot load TONGDAI_TLS_CERT"):
        await _pbx(tmp_path / "b", sip_wss_port=_free_port(), tls_cert=str(bad),
                   tls_key=str(bad))


_DESK_INVITE = """INVITE sip:agent@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKdesk{n};rport
Max-Forwards: 70
From: <sip:desk@127.0.0.1>;tag=desk1
To: <sip:agent@127.0.0.1>
Call-ID: desk-to-browser
CSeq: {n} INVITE
Contact: <sip:desk@127.0.0.1:{port}>
{auth}Content-Type: application/sdp

v=0
o=desk 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40010 RTP/AVP 0
"""

_SDP = (b"v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40020 RTP/AVP 0\r\n")


async def test_a_desk_phone_calls_the_browser_and_hangs_up_over_its_websocket(
    pbx: Pbx,
) -> None:
    """The whole dialog with the browser's leg on its websocket: INVITE, ACK and BYE."""
    await _agent(pbx, "desk")
    desk = UdpPeer(pbx.sip_port)
    try:
        await register(desk, "desk", PASSWORD)
        async with connect(_url(pbx), subprotocols=SIP) as ws:
            browser = Browser(ws)
            await browser.register()

            await desk.send(sip_text(_DESK_INVITE.format(port=desk.port, n=1, auth="")))
            chal = await desk.final()
            assert chal.status == 407
            # RFC 3261 §17.1.1.3: the ACK of a non-2xx final response.
            ack_headers = chal.headers.copy()
            ack_headers.set("cseq", "1 ACK")
            ack_headers.set("max-forwards", 70)
            await desk.send(Request(method="ACK", uri="sip:agent@127.0.0.1",
                                    headers=ack_headers))
            auth = digest.authorization(chal.headers.get("proxy-authenticate") or "",
                                        method="INVITE", uri="sip:agent@127.0.0.1",
                                        username="desk", password=PASSWORD, cnonce="d1")
            await desk.send(sip_text(_DESK_INVITE.format(
                port=desk.port, n=2, auth=f"Proxy-Authorization: {auth}\n")))
            ring = await browser.recv(_is_invite)
            assert isinstance(ring, Request) and ring.top_via.transport == "WS"
            ok = make_response(ring, 200, to_tag="brw1", body=_SDP,
                               content_type="application/sdp")
            ok.headers.add("contact", "<sip:agent@df7jal23ls0d.invalid;transport=ws>")
            await browser.send(serialize(ok))
            answered = await desk.final()
            assert answered.status == 200
            ack = await browser.recv(lambda m: isinstance(m, Request) and m.method == "ACK")
            assert ack.call_id == ring.call_id
            # The desk phone hangs up: the BYE reaches the browser over its websocket.
            bye = Request(method="BYE", uri=f"sip:tongdai@127.0.0.1:{pbx.sip_port}",
                          headers=answered.headers.copy())
            bye.headers.pop_first("contact")
            bye.headers.set("cseq", "3 BYE")
            bye.headers.set("via", f"SIP/2.0/UDP 127.0.0.1:{desk.port};branch=z9hG4bKdbye")
            await desk.send(bye)
            bye_in = await browser.recv(lambda m: isinstance(m, Request) and m.method == "BYE")
            assert isinstance(bye_in, Request) and bye_in.call_id == ring.call_id
            assert bye_in.top_via.transport == "WS"
            await browser.send(serialize(make_response(bye_in, 200)))
            assert (await desk.final()).status == 200
    finally:
        desk.close()


def _browser_invite(n: int) -> str:
    return sip_text(f"""INVITE sip:0901234567@127.0.0.1 SIP/2.0
Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKbinv{n}
Max-Forwards: 70
From: <sip:agent@127.0.0.1>;tag=bi{n}
To: <sip:0901234567@127.0.0.1>
Call-ID: browser-invite-{n}
CSeq: 1 INVITE
Contact: <sip:agent@df7jal23ls0d.invalid;transport=ws;ob>

""").decode()


async def test_a_browser_calls_out_over_its_registered_websocket(pbx: Pbx) -> None:
    await _agent(pbx)
    async with connect(_url(pbx), subprotocols=SIP) as stranger:
        # Not registered through this connection: a stranger (RFC 3261 §26.3.2.2).
        await stranger.send(_browser_invite(1))
        refused = await Browser(stranger).recv(
            lambda m: isinstance(m, Response) and m.status >= 200)
        assert isinstance(refused, Response) and refused.status == 403
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        browser = Browser(ws)
        await browser.register()
        await browser.send(_browser_invite(2))
        chal = await browser.recv(lambda m: isinstance(m, Response) and m.status >= 200)
        assert isinstance(chal, Response) and chal.status == 407


async def test_plain_http_on_the_websocket_port_is_refused_and_it_keeps_serving(
    pbx: Pbx,
) -> None:
    port = pbx.shell.ws_port("ws")
    assert port is not None
    for request in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"\x16\x03\x01 tls?\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        status = await asyncio.wait_for(reader.read(200), 3)
        assert status.startswith(b"HTTP/1.1 4") or status == b""
        writer.close()
        await writer.wait_closed()
    async with connect(_url(pbx), subprotocols=SIP) as ws:
        assert ws.subprotocol == "sip"


async def test_shutdown_closes_live_websockets_as_going_away(tmp_path: Path) -> None:
    p = await _pbx(tmp_path, sip_ws_port=_free_port())
    stopped = False
    try:
        await _agent(p)
        async with connect(_url(p), subprotocols=SIP) as ws:
            await Browser(ws).register()
            await shutdown(p)
            stopped = True
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1001
    finally:
        if not stopped:
            await shutdown(p)
