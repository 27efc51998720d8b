"""INVITEs from devices are digest-challenged, and guessing through them is throttled."""

from __future__ import annotations

import itertools

from tests.pbx.conftest import UdpClient
from tests.pbx.test_registrar import Phone

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip import digest

_n = itertools.count()

INVITE = """INVITE sip:0901234567@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKinv{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=i{n}
To: <sip:0901234567@127.0.0.1>
Call-ID: inv-{n}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:@PORT@>
{auth}Content-Length: 0

"""


async def test_invites_are_challenged_and_guessing_is_throttled(
    pbx: Pbx, client: UdpClient
) -> None:
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    assert (await Phone(client, "alice", "alice-secret").register()).status == 200

    first = await client.request(INVITE.format(n=next(_n), auth=""))
    assert first.status == 407
    chal = first.headers.get("proxy-authenticate") or ""
    for i in range(5):  # auth_fail_limit=5
        value = digest.authorization(chal, method="INVITE", uri="sip:0901234567@127.0.0.1",
                                     username="alice", password=f"guess{i}", cnonce="c",
                                     nc=i + 1)
        wrong = await client.request(
            INVITE.format(n=next(_n), auth=f"Proxy-Authorization: {value}\n"))
        assert wrong.status == 403
    assert pbx.registrar.throttle.retry_after("127.0.0.1", "alice", pbx.registrar.wall()) > 0
    # blocked: even the right password is refused from this address
    chal = (await client.request(INVITE.format(n=next(_n), auth=""))).headers.get(
        "proxy-authenticate") or ""
    value = digest.authorization(chal, method="INVITE", uri="sip:0901234567@127.0.0.1",
                                 username="alice", password="alice-secret", cnonce="c", nc=1)
    right = await client.request(INVITE.format(n=next(_n), auth=f"Proxy-Authorization: {value}\n"))
    assert right.status == 403
