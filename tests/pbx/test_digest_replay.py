"""A REGISTER answered without qop cannot be replayed to bind an attacker's Contact."""

from __future__ import annotations

from tests.pbx.peers import UdpPeer, sip_text

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip import digest
from tongdai.sip.message import Response

REGISTER = """REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag={tag}
To: <sip:alice@127.0.0.1>
Call-ID: {call_id}
CSeq: {cseq} REGISTER
Contact: {contact}
Expires: 600
{auth}
"""


def _register(peer: UdpPeer, n: int, *, contact: str, auth: str = "",
              call_id: str = "reg-alice") -> bytes:
    return sip_text(REGISTER.format(
        port=peer.port, branch=f"replay{n}", tag=f"t{n}", call_id=call_id, cseq=n,
        contact=contact, auth=f"Authorization: {auth}" if auth else "",
    ).replace("\n\n\n", "\n\n"))


async def test_a_replayed_register_without_qop_gets_a_fresh_challenge(pbx: Pbx) -> None:
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    phone, attacker = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    try:
        mine = f"<sip:alice@127.0.0.1:{phone.port}>"
        await phone.send(_register(phone, 1, contact=mine))
        chal = await phone.final()
        assert chal.status == 401
        # An RFC 2069-style phone: it answers without qop (a sniffer sees it all).
        offer = (chal.headers.get("www-authenticate") or "").replace(', qop="auth"', "")
        auth = digest.authorization(offer, method="REGISTER", uri="sip:127.0.0.1",
                                    username="alice", password="alice-secret", cnonce="c")
        assert auth is not None and "qop" not in auth
        await phone.send(_register(phone, 2, contact=mine, auth=auth))
        ok = await phone.final()
        assert ok.status == 200

        # The attacker replays the captured Authorization with its own Contact, from
        # its own address, again and again within the nonce lifetime.
        theirs = "<sip:alice@198.51.100.66:5099>"
        for n in (3, 4, 5):
            await attacker.send(_register(attacker, n, contact=theirs, auth=auth,
                                          call_id="evil"))
            resp = await attacker.final()
            assert isinstance(resp, Response)
            assert resp.status == 401, resp.status
            assert "stale=true" in (resp.headers.get("www-authenticate") or "")
        contacts = [r.contact for r in pbx.location.bindings("alice")]
        assert contacts == [f"sip:alice@127.0.0.1:{phone.port}"]

        # The honest phone reusing its nonce is challenged again too, and answers it.
        await phone.send(_register(phone, 6, contact=mine, auth=auth))
        again = await phone.final()
        assert again.status == 401
        fresh = (again.headers.get("www-authenticate") or "").replace(', qop="auth"', "")
        auth2 = digest.authorization(fresh, method="REGISTER", uri="sip:127.0.0.1",
                                     username="alice", password="alice-secret", cnonce="c")
        assert auth2 is not None
        await phone.send(_register(phone, 7, contact=mine, auth=auth2))
        assert (await phone.final()).status == 200
    finally:
        phone.close()
        attacker.close()
