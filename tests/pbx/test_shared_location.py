"""Two location services on one database (two nodes): a device registered at one is
found by the other on a miss, over UDP only, kept for a short while, lapsing at its
own expiry. Runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from tongdai.bus.memory import InProcessBus
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.dialplan import DialPlan, ToDevice, Unroutable, binding_peer
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.pbx.shared_location import BACKGROUND_READS, SHARED_TTL
from tongdai.sip.peer import Peer
from tongdai.store.records import Registration
from tongdai.store.sql import SqlStore

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _reg(user: str, port: int, *, transport: str = "udp", ttl: float = 600) -> Registration:
    return Registration(
        sip_user=user, contact=f"sip:{user}@198.51.100.7:{port}", source_host="198.51.100.7",
        source_port=port, transport=transport, expires_at=T0 + ttl, call_id=f"c-{user}",
        cseq=1, user_agent="t")


async def _nodes(store: SqlStore, clock: Clock) -> tuple[Location, Location, str]:
    app = await store.create_app("shared")
    for user in ("alice", "bob", "carol"):
        await store.add_device(app.app_id, user, digest_keys(user, "r", f"{user}-secret"))
    a = Location(store=store, devices=store, bus=InProcessBus(), wall_clock=clock,
                 shared=store)
    b = Location(store=store, devices=store, bus=InProcessBus(), wall_clock=clock,
                 shared=store)
    return a, b, app.app_id


async def test_a_udp_binding_made_at_one_node_is_found_at_the_other(store: SqlStore) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    reg = _reg("alice", 5062)
    a.apply(sip_user="alice", app_id=app_id, set_=[reg], remove=[])
    assert await b.lookup("alice") == []  # not yet written behind: nobody has it
    await a.flush()
    # The negative answer is cached for a moment; once stale it is read again.
    assert await b.lookup("alice") == []
    clock.now += SHARED_TTL
    assert await b.lookup("alice") == [reg]
    assert b.bindings("alice") == [reg] and b.is_registered("alice")
    assert b.local_bindings("alice") == [] and b.count() == 0
    # A node's own bindings come first, without reading the store.
    assert a.bindings("alice") == [reg]


async def test_unregistering_at_one_node_is_seen_at_the_other_within_the_cache_time(
    store: SqlStore,
) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    reg = _reg("bob", 5070)
    a.apply(sip_user="bob", app_id=app_id, set_=[reg], remove=[])
    await a.flush()
    assert await b.lookup("bob") == [reg]
    a.apply(sip_user="bob", app_id=app_id, set_=[], remove=[reg.contact])
    await a.flush()
    assert b.bindings("bob") == [reg]  # cached
    clock.now += SHARED_TTL
    assert await b.lookup("bob") == []
    assert not b.is_registered("bob")


async def test_a_binding_learnt_elsewhere_lapses_at_its_own_expiry(store: SqlStore) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    reg = _reg("carol", 5080, ttl=SHARED_TTL / 2)
    a.apply(sip_user="carol", app_id=app_id, set_=[reg], remove=[])
    await a.flush()
    assert await b.lookup("carol") == [reg]
    clock.now += SHARED_TTL / 2  # the answer is still fresh, the binding expired
    assert b.bindings("carol") == []
    assert await b.lookup("carol") == []


async def test_a_connection_held_by_another_node_is_offline_here(
    store: SqlStore, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    tcp = _reg("alice", 40001, transport="tcp")
    a.apply(sip_user="alice", app_id=app_id, set_=[tcp], remove=[])
    await a.flush()
    with caplog.at_level(logging.INFO, logger="tongdai.location"):
        assert await b.lookup("alice") == []
    assert [r.message for r in caplog.records].count("registration.elsewhere") == 1
    assert a.bindings("alice") == [tcp]  # the node holding the connection reaches it


async def test_a_connection_held_by_an_edge_proxy_is_reached_through_its_path(
    store: SqlStore,
) -> None:
    # A TCP device registered through the edge (Path, RFC 3327): the row holds the Path,
    # and the other node routes to the edge rather than to the connection.
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    plan = DialPlan(directory=DeviceDirectory(store=store, clock=clock), location=b)
    edge = "<sip:127.0.0.10;lr;received=sip:198.51.100.7:40001%3Btransport%3Dtcp>"
    via_edge = replace(_reg("alice", 40001, transport="tcp"), path=(edge,))
    a.apply(sip_user="alice", app_id=app_id, set_=[via_edge], remove=[])
    await a.flush()
    assert await b.lookup("alice") == [via_edge]
    target = await plan.route(app_id, "alice")
    assert isinstance(target, ToDevice)
    assert binding_peer(target.binding) == Peer("udp", "127.0.0.10", 5060)


async def test_a_binding_removed_here_but_not_yet_written_is_not_read_back(
    store: SqlStore,
) -> None:
    clock = Clock()
    a, _b, app_id = await _nodes(store, clock)
    reg = _reg("alice", 5062)
    a.apply(sip_user="alice", app_id=app_id, set_=[reg], remove=[])
    await a.flush()
    a.apply(sip_user="alice", app_id=app_id, set_=[], remove=[reg.contact])
    assert await a.lookup("alice") == []  # its row is still there until the next flush


async def test_a_query_that_cannot_wait_reads_in_the_background(store: SqlStore) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    reg = _reg("bob", 5070)
    a.apply(sip_user="bob", app_id=app_id, set_=[reg], remove=[])
    await a.flush()
    assert not b.is_registered("bob")  # unknown here: a read starts
    for _ in range(200):
        if b.is_registered("bob"):
            break
        await asyncio.sleep(0.01)
    assert b.bindings("bob") == [reg]
    await b.stop()


async def test_without_sharing_a_node_sees_only_its_own(store: SqlStore) -> None:
    clock = Clock()
    a, _b, app_id = await _nodes(store, clock)
    alone = Location(store=store, devices=store, bus=InProcessBus(), wall_clock=clock)
    a.apply(sip_user="alice", app_id=app_id, set_=[_reg("alice", 5062)], remove=[])
    await a.flush()
    assert await alone.lookup("alice") == []
    assert not alone.is_registered("alice")


async def test_the_dial_plan_of_one_node_routes_to_a_device_registered_at_another(
    store: SqlStore,
) -> None:
    clock = Clock()
    a, b, app_id = await _nodes(store, clock)
    plan = DialPlan(directory=DeviceDirectory(store=store, clock=clock), location=b)
    assert isinstance(await plan.route(app_id, "bob"), Unroutable)  # nowhere yet
    reg = _reg("bob", 5070)
    a.apply(sip_user="bob", app_id=app_id, set_=[reg], remove=[])
    await a.flush()
    clock.now += SHARED_TTL  # the "nowhere" answer is stale
    target = await plan.route(app_id, "bob")
    assert isinstance(target, ToDevice) and target.binding == reg


async def test_a_node_restarting_restores_only_the_bindings_it_holds(store: SqlStore) -> None:
    clock = Clock()
    app = await store.create_app("restore")
    for user in ("alice", "bob", "carol"):
        await store.add_device(app.app_id, user, digest_keys(user, "r", f"{user}-secret"))

    def node(name: str) -> Location:
        return Location(store=store, devices=store, bus=InProcessBus(), wall_clock=clock,
                        shared=store, node=name)

    a, b = node("node-a"), node("node-b")
    a.apply(sip_user="alice", app_id=app.app_id, set_=[_reg("alice", 5062)], remove=[])
    b.apply(sip_user="bob", app_id=app.app_id, set_=[_reg("bob", 5070)], remove=[])
    await a.flush()
    await b.flush()
    await store.sync_registrations([_reg("carol", 5080)], [])  # written before nodes
    again = node("node-a")
    assert await again.restore() == 2
    assert again.local_bindings("alice") and again.local_bindings("carol")
    assert again.local_bindings("bob") == []
    assert await again.lookup("bob") == [_reg("bob", 5070)]  # b's, through the store
    # A device that moves to another node is that node's from then on.
    b.apply(sip_user="alice", app_id=app.app_id, set_=[_reg("alice", 5062)], remove=[])
    await b.flush()
    assert await node("node-a").restore() == 1  # carol only


async def test_synchronous_asks_about_many_unknown_devices_start_few_reads(
    store: SqlStore,
) -> None:
    reads: list[str] = []

    class Counting:
        async def registrations_of(self, sip_user: str, now: float) -> list[Registration]:
            reads.append(sip_user)
            return list(await store.registrations_of(sip_user, now))

    clock = Clock()
    node = Location(store=store, devices=store, bus=InProcessBus(), wall_clock=clock,
                    shared=Counting())
    for i in range(BACKGROUND_READS * 3):  # a presence page of devices offline everywhere
        assert not node.is_registered(f"nobody{i}")
    for _ in range(500):  # the reads started run; no later one can start
        if len(reads) == BACKGROUND_READS:
            break
        await asyncio.sleep(0.01)
    assert len(reads) == BACKGROUND_READS
    assert await node.lookup("nobody40") == []  # a caller that waits is never left out
    assert reads[-1] == "nobody40"
    await node.stop()
