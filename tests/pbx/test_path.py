"""Path (RFC 3327) over real UDP: a REGISTER forwarded by an edge proxy stores the
proxy's Path with the binding and echoes it (§5.3); a call to that device goes to the
proxy with the Path as its Route set, the Request-URI still the device's contact; a
Path that does not start at the sender is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.pbx.conftest import UdpClient
from tests.pbx.peers import Message, UdpPeer, sip_text
from tests.pbx.test_registrar import Phone

from tongdai.pbx.b2bua.messages import Messages
from tongdai.pbx.b2bua.model import Leg
from tongdai.pbx.b2bua.state import LegState
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.digest_gate import BLOCKED_REASON
from tongdai.pbx.location import Location
from tongdai.server import Pbx, build, shutdown
from tongdai.settings import SettingsError, load_settings
from tongdai.sip.message import Request
from tongdai.sip.parser import parse_message
from tongdai.sip.peer import Peer

# Where the edge delivers: the device's address behind NAT, as add_path_received writes it.
CONTACT = "sip:agent@10.0.0.5:5099;transport=tcp"


async def _agent(pbx: Pbx) -> str:
    app = await pbx.store.create_app("edge")
    await pbx.store.add_device(app.app_id, "agent",
                               digest_keys("agent", pbx.settings.domain, "agent-secret"))
    return app.app_id


def _path(port: int) -> str:
    return f"<sip:127.0.0.1:{port};lr;received=sip:10.0.0.5:5099%3Btransport%3Dtcp>"


async def test_a_register_through_a_proxy_keeps_and_echoes_its_path(
    pbx: Pbx, client: UdpClient,
) -> None:
    await _agent(pbx)
    path = _path(client.port)
    phone = Phone(client, "agent", "agent-secret")
    ok = await phone.register(contact=f"<{CONTACT}>",
                              extra=f"Path: {path}\nSupported: path\n")
    assert ok.status == 200
    assert ok.headers.values("path") == [path]
    [binding] = pbx.location.bindings("agent")
    assert binding.path == (path,)
    await pbx.location.flush()  # the row keeps it too, for the other nodes
    [row] = await pbx.store.registrations_of("agent", time.time())
    assert row.path == (path,)


async def test_path_is_echoed_only_to_a_device_that_supports_it(
    pbx: Pbx, client: UdpClient,
) -> None:
    await _agent(pbx)
    path = _path(client.port)
    ok = await Phone(client, "agent", "agent-secret").register(extra=f"Path: {path}\n")
    assert ok.status == 200
    assert ok.headers.values("path") == []
    assert pbx.location.bindings("agent")[0].path == (path,)


async def test_a_path_that_does_not_start_at_the_sender_is_refused(
    pbx: Pbx, client: UdpClient,
) -> None:
    # Otherwise a device could aim the nodes' INVITEs at any address.
    await _agent(pbx)
    phone = Phone(client, "agent", "agent-secret")
    elsewhere = await phone.register(extra="Path: <sip:192.0.2.9:5060;lr>\n")
    assert elsewhere.status == 403
    garbled = await phone.register(extra="Path: <sip:;lr>\n")
    assert garbled.status == 400
    assert not pbx.location.is_registered("agent")


def _is_invite(m: Message) -> bool:
    return isinstance(m, Request) and m.method == "INVITE"


async def test_a_call_to_the_device_goes_to_the_proxy_with_a_route_set(
    pbx: Pbx, client: UdpClient,
) -> None:
    app_id = await _agent(pbx)
    edge = UdpPeer(pbx.sip_port)  # the edge's listening port; the REGISTER came from client
    try:
        path = _path(edge.port)
        ok = await Phone(client, "agent", "agent-secret").register(
            contact=f"<{CONTACT}>", extra=f"Path: {path}\n")
        assert ok.status == 200
        await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number="agent")
        ring = await edge.recv(_is_invite)
        assert isinstance(ring, Request)
        assert ring.uri == CONTACT
        assert ring.headers.values("route") == [path]
        assert await client.silence(0.3)  # not to where the REGISTER came from
    finally:
        edge.close()


async def test_requests_from_an_edge_proxy_count_as_from_devices(pbx: Pbx) -> None:
    # The edge forwards every device's INVITE from its own address, registered there
    # or not; the digest check then says which device it is.
    edge = Location(store=pbx.store, devices=pbx.store, bus=pbx.bus, wall_clock=time.time,
                    edges=frozenset({("127.0.0.1", 5070)}))
    assert edge.known_source("udp", "127.0.0.1", 5070)
    assert not edge.known_source("udp", "127.0.0.1", 5071)
    assert not pbx.location.known_source("udp", "127.0.0.1", 5070)


def test_edge_proxies_setting_is_host_and_port() -> None:
    s = load_settings(sip_edge_proxies="10.0.0.5:5060, [::1]:5070")
    assert s.sip_edge_addresses == frozenset({("10.0.0.5", 5060), ("::1", 5070)})
    with pytest.raises(SettingsError, match="host:port"):
        load_settings(sip_edge_proxies="10.0.0.5")


def test_a_dialog_made_through_a_proxy_keeps_it_on_the_route() -> None:
    # RFC 3261 §12.1.1: the UAS copies Record-Route into its 18x/2xx, so the caller's
    # ACK and BYE come back through the edge that forwarded the INVITE.
    invite = parse_message(sip_text(
        "INVITE sip:0901@127.0.0.1 SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKedge\n"
        "Record-Route: <sip:127.0.0.1:5070;lr>\n"
        "From: <sip:agent@127.0.0.1>;tag=a\nTo: <sip:0901@127.0.0.1>\n"
        "Call-ID: rr-1\nCSeq: 1 INVITE\nContent-Length: 0\n\n"))
    assert isinstance(invite, Request)
    msg = Messages(domain="pbx.example", host="127.0.0.1", port=5060)
    leg = Leg(name="a", peer=Peer("udp", "127.0.0.1", 5070), uas=True,
              state=LegState.RINGING, invite=invite, local_tag="t1")
    for status in (180, 200):
        assert msg.response(leg, status).headers.values("record-route") == [
            "<sip:127.0.0.1:5070;lr>"]
    assert msg.response(leg, 486).headers.values("record-route") == []


async def test_behind_an_edge_the_throttle_counts_each_device_not_the_edge(
    tmp_path: Path, db_url: str,
) -> None:
    # Every device's REGISTER comes from the edge's address: failures are counted
    # against the device's own (the Via the edge stamped), so one phone with a wrong
    # password does not lock out the others.
    edge = UdpClient(0)
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, sip_port=0, rtp_ports="42100-42199",
        auth_fail_address_limit=2, register_min_expires=60,
        sip_edge_proxies=f"127.0.0.1:{edge.port}")
    pbx = await build(settings)
    try:
        edge.server = ("127.0.0.1", pbx.sip_port)
        await _agent(pbx)
        await pbx.store.add_device((await pbx.store.list_apps())[0].app_id, "mallory",
                                   digest_keys("mallory", pbx.settings.domain, "right-pw"))
        mallory = Phone(edge, "mallory", "wrong-pw")
        from_mallory = "Via: SIP/2.0/UDP 10.0.0.66:5060;branch=z9hG4bKm;received=10.0.0.66\n"
        statuses = [(await mallory.register(extra=from_mallory)).status for _ in range(3)]
        assert statuses[-1] == 403
        refused = await mallory.register(extra=from_mallory, password="right-pw")
        assert refused.status == 403 and refused.reason == BLOCKED_REASON
        agent = Phone(edge, "agent", "agent-secret")
        from_agent = "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa\n"
        assert (await agent.register(extra=from_agent)).status == 200
    finally:
        edge.close()
        await shutdown(pbx)
