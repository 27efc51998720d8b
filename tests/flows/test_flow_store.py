"""Flows, queues and paused agents on both backends: versions, live changes (the
configuration version moves), and what a flow uses cannot be removed."""

from __future__ import annotations

import pytest
from tests.flows.test_document import EXAMPLE

from tongdai.flows.document import FlowError
from tongdai.flows.store import QueueRec
from tongdai.pbx.credentials import digest_keys
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.sql import SqlStore


async def _app(store: SqlStore) -> str:
    app = await store.create_app("shop")
    for user, ext in (("alice", "101"), ("bob", "102")):
        await store.add_device(app.app_id, user, digest_keys(user, "t", "pw"), extension=ext)
    await store.add_did(app.app_id, "02873001234", "alice")
    return app.app_id


async def test_flow_versions_and_config_changes(store: SqlStore) -> None:
    app = await _app(store)
    with pytest.raises(FlowError, match=r"^menu.options.1.queue: no queue 'sales' in this app"):
        await store.set_flow(app, "02873001234", EXAMPLE)
    await store.add_queue(QueueRec(app_id=app, name="sales", agents=("alice", "bob")))
    before = await store.config_version()
    first = await store.set_flow(app, "02873001234", EXAMPLE)
    assert (first.version, first.did_number, first.document) == (1, "02873001234", EXAMPLE)
    assert await store.config_version() > before
    second = await store.set_flow(app, "02873001234", "play: welcome")
    assert second.version == 2
    assert await store.get_flow("02873001234") == second
    assert await store.list_flows(app) == [second]
    await store.remove_flow(app, "02873001234")
    assert await store.get_flow("02873001234") is None
    with pytest.raises(NotFound):
        await store.remove_flow(app, "02873001234")
    with pytest.raises(NotFound):
        await store.set_flow(app, "0999999999", "play: welcome")
    other = (await store.create_app("other")).app_id
    with pytest.raises(NotFound):
        await store.set_flow(other, "02873001234", "play: welcome")


async def test_what_a_flow_uses_cannot_be_removed(store: SqlStore) -> None:
    app = await _app(store)
    await store.add_queue(QueueRec(app_id=app, name="sales", agents=("alice",)))
    await store.set_flow(app, "02873001234", EXAMPLE)
    with pytest.raises(Conflict, match="flow did 02873001234 uses queue 'sales'"):
        await store.remove_queue(app, "sales")
    with pytest.raises(Conflict, match="flow did 02873001234 uses device 'bob'"):
        await store.remove_device("bob", app_id=app)
    await store.set_flow(app, "02873001234", "play: welcome")
    await store.remove_did("02873001234", app_id=app)  # alice rings no DID now
    with pytest.raises(Conflict, match="queue 'sales' uses device 'alice'"):
        await store.remove_device("alice", app_id=app)
    await store.remove_queue(app, "sales")
    await store.remove_device("bob", app_id=app)  # nothing uses it any more


async def test_queues_and_pauses(store: SqlStore) -> None:
    app = await _app(store)
    q = QueueRec(app_id=app, name="sales", agents=("alice", "bob"), strategy="round-robin",
                 max_wait=60, max_length=5, ring_timeout=10, wrapup=3)
    assert await store.add_queue(q) == q
    with pytest.raises(Conflict):
        await store.add_queue(q)
    assert await store.get_queue(app, "sales") == q
    changed = QueueRec(app_id=app, name="sales", agents=("bob",), strategy="longest-idle")
    await store.update_queue(changed)
    assert await store.list_queues(app) == [changed]
    for bad in (QueueRec(app_id=app, name="x", agents=()),
                QueueRec(app_id=app, name="x", agents=("alice",), strategy="random"),
                QueueRec(app_id=app, name="bad name", agents=("alice",)),
                QueueRec(app_id=app, name="x", agents=("alice",), ring_timeout=0)):
        with pytest.raises(Invalid):
            await store.add_queue(bad)
    with pytest.raises(NotFound, match="agent 'carol'"):
        await store.add_queue(QueueRec(app_id=app, name="x", agents=("carol",)))
    await store.pause_agent(app, "bob", True)
    await store.pause_agent(app, "bob", True)
    assert await store.paused_agents(app) == {"bob"}
    await store.pause_agent(app, "bob", False)
    assert await store.paused_agents(app) == frozenset()
    with pytest.raises(NotFound):
        await store.pause_agent(app, "carol", True)


async def test_a_flow_on_an_extension(store: SqlStore) -> None:
    app = await _app(store)
    await store.add_queue(QueueRec(app_id=app, name="sales", agents=("alice",)))
    with pytest.raises(Conflict, match="extension 101 is device 'alice'"):
        await store.set_extension_flow(app, "101", "play: welcome")
    with pytest.raises(Invalid, match="2 to 8 digits"):
        await store.set_extension_flow(app, "sales", "play: welcome")
    with pytest.raises(FlowError, match="no queue 'support'"):
        await store.set_extension_flow(app, "300", "queue: support")
    before = await store.config_version()
    first = await store.set_extension_flow(app, "300", "queue: sales")
    assert (first.version, first.extension, first.did_number) == (1, "300", "")
    assert first.name == "extension 300" and await store.config_version() > before
    second = await store.set_extension_flow(app, "300", "device: bob")
    assert second.version == 2 and await store.list_extension_flows(app) == [second]
    assert await store.get_extension_flow(app, "300") == second
    assert await store.list_flows(app) == []  # DIDs' flows only
    with pytest.raises(Conflict, match="flow extension 300 uses device 'bob'"):
        await store.remove_device("bob", app_id=app)
    await store.remove_extension_flow(app, "300")
    assert await store.get_extension_flow(app, "300") is None
    with pytest.raises(NotFound):
        await store.remove_extension_flow(app, "300")
    other = (await store.create_app("other")).app_id
    assert await store.get_extension_flow(other, "300") is None
