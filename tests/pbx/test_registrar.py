"""The registrar over real UDP: digest, bindings, expiry rules, throttling, other methods."""

from __future__ import annotations

import hashlib
import itertools

from tests.pbx.conftest import UdpClient

from tongdai.pbx import capabilities
from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip import digest
from tongdai.sip.message import Response

REGISTER = """REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bK{branch};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=f1
To: <sip:{user}@127.0.0.1>
Call-ID: reg-{user}-{call}
CSeq: {cseq} REGISTER
{contact}{expires}{extra}{auth}Content-Length: 0

"""


_branches = itertools.count()


class Phone:
    def __init__(self, client: UdpClient, user: str, password: str) -> None:
        self.client = client
        self.user = user
        self.password = password
        self.cseq = 0
        self.call = hashlib.md5(user.encode()).hexdigest()[:8]

    async def send(self, *, contact: str | None = None, expires: int | None = None,
                   auth: str = "", extra: str = "") -> Response:
        self.cseq += 1
        c = contact if contact is not None else f"<sip:{self.user}@127.0.0.1:{self.client.port}>"
        text = REGISTER.format(
            branch=f"{self.user}{next(_branches)}", user=self.user, call=self.call, cseq=self.cseq,
            contact=f"Contact: {c}\n" if c else "",
            expires=f"Expires: {expires}\n" if expires is not None else "", auth=auth,
            extra=extra,
        )
        return await self.client.request(text)

    async def register(self, *, contact: str | None = None, expires: int | None = None,
                       password: str | None = None, extra: str = "") -> Response:
        """A REGISTER answered with a challenge, then again with credentials;
        ``extra`` is header lines added to both (each ending in a newline)."""
        first = await self.send(contact=contact, expires=expires, extra=extra)
        if first.status != 401:
            return first
        chal = first.headers.get("www-authenticate")
        assert chal is not None
        value = digest.authorization(
            chal, method="REGISTER", uri="sip:127.0.0.1", username=self.user,
            password=password or self.password, cnonce="c0ffee",
        )
        return await self.send(contact=contact, expires=expires, extra=extra,
                               auth=f"Authorization: {value}\n")


async def _device(pbx: Pbx, user: str = "alice", pw: str = "alice-secret") -> str:
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, user, digest_keys(user, pbx.settings.domain, pw))
    return app.app_id


async def test_challenge_then_200_lists_bindings(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    phone = Phone(client, "alice", "alice-secret")
    first = await phone.send()
    assert first.status == 401
    chal = first.headers.get("www-authenticate") or ""
    assert 'realm="127.0.0.1"' in chal and 'qop="auth"' in chal
    ok = await phone.register(expires=600)
    assert ok.status == 200
    contacts = ok.headers.values("contact")
    assert len(contacts) == 1 and "expires=" in contacts[0]
    assert pbx.location.is_registered("alice")
    assert pbx.calls.is_registered("alice")


async def test_wrong_password_and_unknown_user_look_alike(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    wrong = await Phone(client, "alice", "nope").register()
    unknown = await Phone(client, "mallory", "whatever").register()
    assert wrong.status == unknown.status == 403
    assert wrong.reason == unknown.reason
    assert not pbx.location.is_registered("alice")


async def test_expires_rules(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    phone = Phone(client, "alice", "alice-secret")
    brief = await phone.register(expires=10)
    assert brief.status == 423
    assert brief.headers.get("min-expires") == "60"
    capped = await phone.register(expires=999_999)
    assert capped.status == 200
    left = int((capped.headers.values("contact")[0]).split("expires=")[1])
    assert 3590 <= left <= 3600  # register_max_expires
    # a contact parameter wins over the header
    two = await phone.register(contact="<sip:alice@127.0.0.1:5999>;expires=120", expires=600)
    assert two.status == 200
    assert len(two.headers.values("contact")) == 2


async def test_unregister_one_and_all(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    events = pbx.bus.subscribe()
    phone = Phone(client, "alice", "alice-secret")
    assert (await phone.register()).status == 200
    assert (await phone.register(contact="<sip:alice@127.0.0.1:6000>")).status == 200
    assert len(pbx.location.bindings("alice")) == 2
    one = await phone.register(contact="<sip:alice@127.0.0.1:6000>", expires=0)
    assert one.status == 200 and len(one.headers.values("contact")) == 1
    star_without_zero = await phone.register(contact="*", expires=60)
    assert star_without_zero.status == 400
    gone = await phone.register(contact="*", expires=0)
    assert gone.status == 200 and not gone.headers.values("contact")
    assert not pbx.location.is_registered("alice")
    kinds = []
    for _ in range(2):
        ev = await events.__anext__()
        kinds.append(ev.type)
        assert ev.sip_users == ("alice",)
    assert kinds == ["device.registered", "device.unregistered"]


async def test_query_without_contact_lists_bindings(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    phone = Phone(client, "alice", "alice-secret")
    await phone.register()
    query = await phone.register(contact="")
    assert query.status == 200
    assert len(query.headers.values("contact")) == 1


async def test_brute_force_is_throttled(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    for i in range(5):  # auth_fail_limit=5
        r = await Phone(client, "alice", f"guess{i}").register()
        assert r.status == 403
    # now even the right password is refused from this address for a while
    blocked = await Phone(client, "alice", "alice-secret").register()
    assert blocked.status == 403
    assert not pbx.location.is_registered("alice")
    assert pbx.registrar.stats["blocked"] >= 1


async def test_stale_nonce_is_rechallenged(pbx: Pbx, client: UdpClient) -> None:
    await _device(pbx)
    phone = Phone(client, "alice", "alice-secret")
    old_nonce = pbx.registrar.digest.make_nonce(pbx.registrar.wall() - 10_000, b"8bytes!!")
    value = digest.authorization(
        f'Digest realm="127.0.0.1", nonce="{old_nonce}", algorithm=MD5, qop="auth"',
        method="REGISTER", uri="sip:127.0.0.1", username="alice", password="alice-secret",
        cnonce="x",
    )
    r = await phone.send(auth=f"Authorization: {value}\n")
    assert r.status == 401
    assert "stale=true" in (r.headers.get("www-authenticate") or "")


async def test_options_and_unsupported_methods(pbx: Pbx, client: UdpClient) -> None:
    base = """{method} sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bK{method}1
Max-Forwards: 70
From: <sip:x@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
Call-ID: m-{method}
CSeq: 1 {method}
Content-Length: 0

"""
    ok = await client.request(base.format(method="OPTIONS"))
    assert ok.status == 200 and "INVITE" in (ok.headers.get("allow") or "")
    assert (await client.request(base.format(method="SUBSCRIBE"))).status == 405
    assert (await client.request(base.format(method="FROBNICATE"))).status == 501


async def test_options_advertises_only_what_is_implemented(pbx: Pbx, client: UdpClient) -> None:
    # RFC 3261 §20.5/§20.37: a peer may use what Allow and Supported list, so both come
    # from pbx/capabilities.py, which lists only what is implemented.
    options = """OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKopt2
Max-Forwards: 70
From: <sip:x@127.0.0.1>;tag=a
To: <sip:127.0.0.1>
Call-ID: opt-2
CSeq: 1 OPTIONS
Content-Length: 0

"""
    ok = await client.request(options)
    allowed = {m.strip() for m in (ok.headers.get("allow") or "").split(",")}
    assert allowed == set(capabilities.METHODS)
    supported = {t.strip() for t in (ok.headers.get("supported") or "").split(",") if t.strip()}
    assert supported == set(capabilities.SUPPORTED)
    # RFC 3262 §3: offering 100rel means answering PRACK.
    assert ("100rel" in supported) == ("PRACK" in allowed)
    assert (ok.headers.get("server") or "").startswith("tongdai/")
    # Each allowed request outside a dialog gets a real answer, never 501.
    for method in sorted(allowed - {"ACK", "CANCEL", "INVITE", "REGISTER", "OPTIONS"}):
        out = await client.request(options.replace("OPTIONS", method).replace("opt2", method))
        assert out.status != 501, method


async def test_malformed_input_gets_400_or_is_dropped(pbx: Pbx, client: UdpClient) -> None:
    bad_cseq = """REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKbad1
From: <sip:x@127.0.0.1>;tag=a
To: <sip:x@127.0.0.1>
Call-ID: bad-1
CSeq: one REGISTER
Content-Length: 0

"""
    assert (await client.request(bad_cseq)).status == 400
    loop_sock = client.sock
    loop_sock.sendto(b"\x00\xff garbage that is not SIP", client.server)
    assert await client.silence(0.3)
    # and the server still works afterwards
    await _device(pbx)
    assert (await Phone(client, "alice", "alice-secret").register()).status == 200



async def test_bindings_survive_a_restart(pbx: Pbx, client: UdpClient) -> None:
    """Bindings are written behind to the store and restored by a new location service."""
    from tongdai.pbx.location import Location

    await _device(pbx)
    assert (await Phone(client, "alice", "alice-secret").register(expires=600)).status == 200
    await pbx.location.flush()
    fresh = Location(store=pbx.store, devices=pbx.store, bus=pbx.bus,
                     wall_clock=pbx.registrar.wall)
    assert await fresh.restore() == 1
    assert fresh.is_registered("alice")
    [reg] = fresh.bindings("alice")
    assert reg.source_port == client.port and reg.transport == "udp"
