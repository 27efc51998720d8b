"""Inbound routing on the store: which trunks a source is, and whose call a DID makes."""

from __future__ import annotations

import time

from tongdai.bus.memory import InProcessBus
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.dialplan import DialPlan, Inbound, ToDevice, Unroutable
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.sip.peer import Peer
from tongdai.store.records import Registration
from tongdai.store.sql import SqlStore

CARRIER = "203.0.113.10"


def _plan(store: SqlStore) -> DialPlan:
    location = Location(store=store, devices=store, bus=InProcessBus(), wall_clock=time.time)
    return DialPlan(directory=DeviceDirectory(store=store, clock=time.time), location=location)


def _online(plan: DialPlan, sip_user: str, app_id: str) -> None:
    plan.location.apply(sip_user=sip_user, app_id=app_id, remove=[], set_=[Registration(
        sip_user=sip_user, contact=f"sip:{sip_user}@198.51.100.7:5062", source_host="198.51.100.7",
        source_port=5062, transport="udp", expires_at=time.time() + 600, call_id="c",
        cseq=1, user_agent="t",
    )])


async def _two_tenants(store: SqlStore, transport: str = "udp") -> tuple[str, str]:
    """Apps A and B, both buying from the same carrier host:port, each with a DID."""
    ids = []
    for name, did in (("A", "02873019555"), ("B", "02873019666")):
        app = await store.create_app(name)
        await store.add_device(app.app_id, f"dev{name.lower()}",
                               digest_keys(f"dev{name.lower()}", "r", "pw-123456"))
        await store.add_trunk(app.app_id, "vn-carrier", host=CARRIER, port=5060,
                              transport=transport)
        await store.add_did(app.app_id, did, f"dev{name.lower()}")
        ids.append(app.app_id)
    return ids[0], ids[1]


async def test_every_trunk_of_a_shared_carrier_matches_its_source(store: SqlStore) -> None:
    a, b = await _two_tenants(store)
    plan = _plan(store)
    trunks = await plan.trunks_of(Peer("udp", CARRIER, 5060))
    assert sorted(t.app_id for t in trunks) == sorted([a, b])
    assert await plan.trunks_of(Peer("udp", CARRIER, 5061)) == []
    assert await plan.trunks_of(Peer("udp", "203.0.113.11", 5060)) == []


async def test_the_did_picks_the_tenant_among_the_matching_trunks(store: SqlStore) -> None:
    a, b = await _two_tenants(store)
    plan = _plan(store)
    _online(plan, "deva", a)
    trunks = await plan.trunks_of(Peer("udp", CARRIER, 5060))
    for order in (trunks, list(reversed(trunks))):
        got = await plan.inbound(order, "+842873019555")
        assert isinstance(got, Inbound)
        assert got.trunk.app_id == a and got.did_number == "02873019555"
        assert isinstance(got.target, ToDevice) and got.target.device.sip_user == "deva"
        other = await plan.inbound(order, "02873019666")  # B's DID, B's device offline
        assert isinstance(other, Inbound) and other.trunk.app_id == b
        assert isinstance(other.target, Unroutable) and other.target.status == 480


async def test_a_did_of_nobody_behind_the_carrier_is_nobodys_call(store: SqlStore) -> None:
    a, _ = await _two_tenants(store)
    c = await store.create_app("C")  # a third tenant on another carrier
    await store.add_device(c.app_id, "devc", digest_keys("devc", "r", "pw-123456"))
    await store.add_trunk(c.app_id, "other", host="198.51.100.1", port=5060)
    await store.add_did(c.app_id, "02873019777", "devc")
    plan = _plan(store)
    trunks = await plan.trunks_of(Peer("udp", CARRIER, 5060))
    assert await plan.inbound(trunks, "02873019000") is None  # unknown DID
    assert await plan.inbound(trunks, "02873019777") is None  # C's DID, not via this carrier
    assert await plan.inbound(trunks, "not-a-number") is None
    # a single trunk of the carrier no longer speaks for another tenant's DID
    only_a = [t for t in trunks if t.app_id == a]
    assert await plan.inbound(only_a, "02873019666") is None


async def test_over_tcp_only_the_configured_transport_and_port_count(store: SqlStore) -> None:
    a = await store.create_app("A")
    await store.add_trunk(a.app_id, "udp-trunk", host=CARRIER, port=5060, transport="udp")
    b = await store.create_app("B")
    await store.add_trunk(b.app_id, "tcp-trunk", host=CARRIER, port=5070, transport="tcp")
    plan = _plan(store)
    # A UDP trunk never matches a TCP source, even from its own port.
    assert await plan.trunks_of(Peer("tcp", CARRIER, 5060)) == []
    # Nor a TCP trunk a UDP one.
    assert await plan.trunks_of(Peer("udp", CARRIER, 5070)) == []
    # The connection tongdai opened to host:5070 (or one the carrier opened from 5070).
    (t,) = await plan.trunks_of(Peer("tcp", CARRIER, 5070))
    assert t.app_id == b.app_id
    # Any other port of the carrier's host is a stranger.
    assert await plan.trunks_of(Peer("tcp", CARRIER, 40312)) == []
    (u,) = await plan.trunks_of(Peer("udp", CARRIER, 5060))
    assert u.app_id == a.app_id
