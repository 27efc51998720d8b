"""A carrier calling a DID that rings the registered device alice, on an in-process PBX:
the routing and the answer every carrier-to-device call test starts with."""

from __future__ import annotations

from tests.pbx.peers import Message, UdpPeer, register

from tongdai.server import Pbx
from tongdai.sip.message import Request, Response

DID = "02873019555"
SDP = """v=0
o=carrier 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {port} RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


async def route_did_to_alice(pbx: Pbx, app_id: str, carrier: UdpPeer, alice: UdpPeer) -> None:
    """``carrier`` becomes the app's trunk, DID rings device alice (already added, with
    password alice-secret), and alice registers."""
    await pbx.store.add_trunk(app_id, "carrier", host="127.0.0.1", port=carrier.port)
    await pbx.store.add_did(app_id, DID, "alice")
    await pbx.directory.check()
    await register(alice, "alice", "alice-secret")


def is_invite_200(m: Message) -> bool:
    return isinstance(m, Response) and m.status == 200 and m.cseq[1] == "INVITE"


async def answered(carrier: UdpPeer, alice: UdpPeer, invite: bytes, *,
                   ringing: bool = False) -> tuple[Response, Request]:
    """The carrier sends ``invite``; alice (ringing first if asked) answers with SDP:
    (the 200 the carrier receives, the INVITE alice received)."""
    await carrier.send(invite)
    got = await alice.recv(lambda m: isinstance(m, Request) and m.method == "INVITE")
    assert isinstance(got, Request)
    if ringing:
        await alice.answer(got, 180, to_tag="al1")
    await alice.answer(got, 200, to_tag="al1", body=SDP.format(port=41000).encode(),
                       contact=f"<sip:alice@127.0.0.1:{alice.port}>")
    ok = await carrier.recv(is_invite_200)
    assert isinstance(ok, Response)
    return ok, got
