"""A caller who puts a flow on hold, on a running server with its real media relay:
tongdai answers the hold in kind (RFC 3264 §8.4) and sends the caller no music until
the caller takes it off hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.pbx.carrier import DID, SDP, is_invite_200, route_did_to_alice
from tests.pbx.peers import UdpPeer, sip_text

from tongdai.flows.store import QueueRec
from tongdai.pbx.credentials import digest_keys
from tongdai.server import build, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Response
from tongdai.sip.sdp import SessionDescription

REQUEST = """{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKhold{cseq};rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: flow-hold-1
CSeq: {cseq} {method}
Contact: <sip:carrier@127.0.0.1:{port}>
{ctype}
{body}"""


class Ear(asyncio.DatagramProtocol):
    """The caller's RTP port: counts what tongdai sends it."""

    def __init__(self) -> None:
        self.packets = 0
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets += 1
        self.arrived.set()

    async def next_packet(self, wait: float = 3.0) -> None:
        self.arrived.clear()
        await asyncio.wait_for(self.arrived.wait(), wait)


async def test_a_caller_on_hold_gets_recvonly_and_no_music_until_it_resumes(
    tmp_path: Path,
) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42400-42499"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    loop = asyncio.get_running_loop()
    transport, ear = await loop.create_datagram_endpoint(Ear, local_addr=("127.0.0.1", 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    try:
        app = await pbx.store.create_app("t")
        await pbx.store.add_device(app.app_id, "alice",
                                   digest_keys("alice", pbx.settings.domain, "alice-secret"))
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        await pbx.store.add_queue(QueueRec(app_id=app.app_id, name="sales", agents=("alice",)))
        await pbx.store.pause_agent(app.app_id, "alice", True)  # the caller waits, on music
        await pbx.store.set_flow(app.app_id, DID, "queue: sales")
        await pbx.directory.check()
        offer = SDP.format(port=rtp_port)
        await carrier.send(sip_text(REQUEST.format(
            method="INVITE", ruri=f"sip:{DID}@127.0.0.1", port=carrier.port, cseq=1,
            to=f"<sip:{DID}@127.0.0.1>", ctype="Content-Type: application/sdp\n",
            body=offer)))
        ok = await carrier.recv(is_invite_200)
        assert isinstance(ok, Response)
        ruri = (ok.headers.get("contact") or "").strip("<>")
        to = ok.headers.get("to") or ""

        async def send(method: str, cseq: int, body: str = "") -> None:
            await carrier.send(sip_text(REQUEST.format(
                method=method, ruri=ruri, port=carrier.port, cseq=cseq, to=to,
                ctype="Content-Type: application/sdp\n" if body else "", body=body)))

        async def reinvite(cseq: int, direction: str) -> SessionDescription:
            await send("INVITE", cseq, offer + f"a={direction}\n")
            got = await carrier.recv(lambda m: is_invite_200(m) and m.cseq[0] == cseq)
            assert isinstance(got, Response)
            await send("ACK", cseq)
            return SessionDescription.parse(got.body)

        await send("ACK", 1)
        for _ in range(5):
            await ear.next_packet()  # the hold music

        held = await reinvite(2, "sendonly")
        assert held.media[0].direction == "recvonly"
        await asyncio.sleep(0.1)  # what was on its way has arrived
        count = ear.packets
        await asyncio.sleep(0.5)
        assert ear.packets == count  # nothing sent while on hold

        resumed = await reinvite(3, "sendrecv")
        assert resumed.media[0].direction == "sendrecv"
        assert resumed.origin.version > held.origin.version
        for _ in range(5):
            await ear.next_packet()  # the music again
        await send("BYE", 4)
        await carrier.recv(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")
    finally:
        await shutdown(pbx)
        transport.close()
        carrier.close()
        alice.close()
