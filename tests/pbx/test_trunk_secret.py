"""A trunk password is encrypted in the database and still answers the carrier's digest
challenge (RFC 3261 §22.2): over real UDP, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.pbx.peers import Message, UdpPeer, register, sip_text

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip import digest
from tongdai.sip.digest import Credentials, DigestServer, Verdict
from tongdai.sip.message import Request, Response

PASSWORD = "carrier-pw-7f3k"

INVITE = """INVITE sip:0901234567@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKtrs{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=trs
To: <sip:0901234567@127.0.0.1>
Call-ID: trunk-secret-1
CSeq: {n} INVITE
Contact: <sip:alice@127.0.0.1:{port}>
{auth}
"""


def _invite(m: Message) -> bool:
    return isinstance(m, Request) and m.method == "INVITE"


def _final(m: Message) -> bool:
    return isinstance(m, Response) and m.status >= 200 and m.cseq[1] == "INVITE"


async def _raw_password(pbx: Pbx) -> str:
    engine = create_async_engine(pbx.settings.db_url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SELECT password FROM trunks"))).scalar_one())
    finally:
        await engine.dispose()


async def test_a_sealed_trunk_password_answers_the_carriers_challenge(pbx: Pbx) -> None:
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    try:
        await pbx.store.add_trunk(app.app_id, "carrier", host="127.0.0.1", port=carrier.port,
                                  username="acct42", password=PASSWORD)
        stored = await _raw_password(pbx)
        assert stored.startswith("enc1:") and PASSWORD not in stored
        await pbx.directory.check()
        await register(alice, "alice", "alice-secret")

        # Alice dials a mobile number; tongdai wants her credentials first (407).
        await alice.send(sip_text(INVITE.format(port=alice.port, n=1, auth="")))
        chal = await alice.recv(_final)
        assert isinstance(chal, Response) and chal.status == 407
        value = digest.authorization(
            chal.headers.get("proxy-authenticate") or "", method="INVITE",
            uri="sip:0901234567@127.0.0.1", username="alice", password="alice-secret",
            cnonce="a1")
        await alice.send(sip_text(INVITE.format(
            port=alice.port, n=2, auth=f"Proxy-Authorization: {value}")))

        # The carrier challenges tongdai, which answers with the trunk's password.
        carrier_digest = DigestServer(realm="carrier.test", secret=os.urandom(32),
                                      algorithms=("MD5",))
        first = await carrier.recv(_invite)
        assert isinstance(first, Request)
        await carrier.send(carrier_digest.challenge_response(
            first, time.time(), os.urandom(8), to_tag="c1"))
        second = await carrier.recv(lambda m: _invite(m) and "authorization" in m.headers)
        assert isinstance(second, Request)
        creds = Credentials.parse(second.headers.get("authorization") or "")
        assert creds is not None and creds.username == "acct42"
        expected = digest.ha1("MD5", "acct42", "carrier.test", PASSWORD)
        assert carrier_digest.verify(creds, "INVITE", expected, time.time()) is Verdict.OK
        await carrier.answer(second, 486, to_tag="c2")
        busy = await alice.recv(lambda m: _final(m) and m.status != 407)
        assert isinstance(busy, Response) and busy.status == 486
    finally:
        carrier.close()
        alice.close()
