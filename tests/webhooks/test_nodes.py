"""An endpoint's failure count and rest are shared by the nodes that send to it (two
``WebhookService`` instances with their own stores on one database stand for two
nodes): each changes the state the database holds, and each goes by it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.store.support import STORE_KEY

from tongdai.bus import Event
from tongdai.store.sql import SqlStore, open_store
from tongdai.webhooks.service import WebhookService
from tongdai.webhooks.store import EndpointRec

from .receiver import Receiver
from .test_delivery import SECRET, _settings, _until
from .test_handoff import _node, _Reads


@dataclass
class _Nodes:
    st_a: SqlStore
    st_b: SqlStore
    app_id: str
    rx: Receiver
    hook: EndpointRec

    def event(self, kind: str, call: str) -> Event:
        return Event(type=kind, app_id=self.app_id, sip_users=("u1",), ts=time.time(),
                     data={"call_id": call})

    async def endpoint(self) -> EndpointRec:
        e = await self.st_a.get_webhook(self.hook.endpoint_id)
        assert e is not None
        return e

    async def until_endpoint(self, check: str, pred: object) -> EndpointRec:
        """Wait until ``pred(endpoint)`` holds (``check`` names it in a failure)."""
        async def holds() -> bool:
            return bool(pred(await self.endpoint()))  # type: ignore[operator]
        try:
            await _until(holds)
        except AssertionError:
            raise AssertionError(f"{check}: {await self.endpoint()}") from None
        return await self.endpoint()

    async def until_held(self, n: int) -> None:
        async def held() -> bool:
            return len(self.rx.held) >= n
        await _until(held)


@pytest.fixture
async def nodes(db_url: str) -> AsyncIterator[_Nodes]:
    """Two stores on one database (SQLite, PostgreSQL); an app with one endpoint at a
    receiver that holds every request until the test answers it."""
    st_a = await open_store(db_url, key=STORE_KEY)
    st_b = await open_store(db_url, key=STORE_KEY)
    rx = Receiver(secrets=[SECRET], hold=True)
    await rx.start()
    try:
        app = await st_a.create_app("acme")
        hook = await st_a.add_webhook(app.app_id, rx.url, ("call.*",), secret=SECRET,
                                      now=1.0)
        yield _Nodes(st_a=st_a, st_b=st_b, app_id=app.app_id, rx=rx, hook=hook)
    finally:
        for gate in rx.held:
            if not gate.done():
                gate.set_result(None)
        await rx.stop()
        await st_b.close()
        await st_a.close()


async def _stop(*nodes: WebhookService) -> None:
    for n in nodes:
        await n.stop()


async def test_failures_of_both_nodes_add_up_and_disable_the_endpoint_once(
    nodes: _Nodes, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Both nodes' attempts fail at once: two failures, not the last writer's one; the
    second reaches the limit and disables the endpoint, with one event and one log
    line, though both nodes recorded a failure."""
    watcher = Receiver(secrets=[SECRET])
    await watcher.start()
    watch = await nodes.st_a.add_webhook(nodes.app_id, watcher.url, ("webhook.*",),
                                         secret=SECRET, now=1.0)
    settings = _settings(tmp_path, webhook_disable_after=2, webhook_retry_base=600.0,
                         webhook_retry_max=600.0)
    a = _node(nodes.st_a, settings, "node-a", time.time)
    b = _node(nodes.st_b, settings, "node-b", time.time)
    await a.start()
    await b.start()
    try:
        with caplog.at_level(logging.INFO, logger="tongdai.webhooks"):
            nodes.rx.status = 500
            await a.bus.publish(nodes.event("call.ringing", "x"))
            await b.bus.publish(nodes.event("call.ringing", "y"))
            await nodes.until_held(2)
            for gate in nodes.rx.held:
                gate.set_result(None)
            e = await nodes.until_endpoint("both failures recorded",
                                           lambda e: e.failures >= 2)
            assert not e.enabled
            assert e.disabled_reason == "2 failed attempts in a row; the last: HTTP 500"
            await watcher.wait_for(1)

            async def announced() -> bool:  # each node's announcement, if any, is out
                return not a._tasks and not b._tasks
            await _until(announced)
        [disabled] = await nodes.st_a.list_deliveries(endpoint_id=watch.endpoint_id)
        assert disabled.event_type == "webhook.disabled"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == ["webhook.disabled"]
    finally:
        await _stop(b, a)
        await watcher.stop()
    assert (await nodes.endpoint()).failures == 2


async def test_a_success_does_not_end_a_longer_rest_another_node_set_meanwhile(
    nodes: _Nodes, tmp_path: Path,
) -> None:
    """A retries after a short rest; while its attempt is under way, B fails and rests
    the endpoint for long. A's success began before that rest: it stands."""
    a = _node(nodes.st_a, _settings(tmp_path, webhook_retry_base=0.2,
                                    webhook_retry_max=0.2), "node-a", time.time)
    b = _node(nodes.st_b, _settings(tmp_path, webhook_retry_base=600.0,
                                    webhook_retry_max=600.0), "node-b", time.time)
    await a.start()
    await b.start()
    try:
        nodes.rx.status = 500
        await a.bus.publish(nodes.event("call.ringing", "x"))
        await nodes.until_held(1)
        nodes.rx.held[0].set_result(None)  # fails: A rests 0.1-0.2 s
        await nodes.until_held(2)  # A's retry, under way
        await b.bus.publish(nodes.event("call.ringing", "y"))
        await nodes.until_held(3)
        nodes.rx.held[2].set_result(None)  # B's fails: the endpoint rests for long
        await nodes.until_endpoint("B's rest", lambda e: e.paused_until > time.time() + 100)
        nodes.rx.status = 200
        nodes.rx.held[1].set_result(None)  # A's retry succeeds
        await nodes.rx.wait_for(1)

        async def recorded() -> bool:
            [x] = [d for d in await nodes.st_a.list_deliveries() if d.order_key == "call:x"]
            return x.delivered_at is not None
        await _until(recorded)
    finally:
        await _stop(b, a)
    e = await nodes.endpoint()
    assert e.paused_until > time.time() + 100 and e.failures == 2


async def test_a_failure_begun_before_an_enable_neither_rests_nor_disables_again(
    nodes: _Nodes, tmp_path: Path,
) -> None:
    """The endpoint has failed once (one more disables it); an administrator enables
    it while an attempt is under way, which then fails: the enable holds."""
    a = _node(nodes.st_a, _settings(tmp_path, webhook_disable_after=2,
                                    webhook_retry_base=0.2, webhook_retry_max=0.2),
              "node-a", time.time)
    await a.start()
    try:
        nodes.rx.status = 500
        await a.bus.publish(nodes.event("call.ringing", "x"))
        await nodes.until_held(1)
        nodes.rx.held[0].set_result(None)  # the first failure
        await nodes.until_held(2)  # the retry, under way
        assert (await nodes.endpoint()).failures == 1
        await nodes.st_b.enable_webhook(nodes.hook.endpoint_id)
        nodes.rx.held[1].set_result(None)  # fails, but began before the enable

        async def recorded() -> bool:
            [x] = await nodes.st_a.list_deliveries()
            return x.attempts == 2
        await _until(recorded)
        e = await nodes.endpoint()
        assert e.enabled and e.failures == 0 and e.paused_until == 0.0
        # Nor does the node rest it: the delivery goes out again at once.
        nodes.rx.status = 200
        await nodes.until_held(3)
        nodes.rx.held[2].set_result(None)
        await nodes.rx.wait_for(1)
    finally:
        await _stop(a)
    assert (await nodes.endpoint()).enabled


async def test_a_node_with_nothing_waiting_holds_fresh_deliveries_while_another_rests(
    nodes: _Nodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fails and rests the endpoint for long. B has nothing of it in the database;
    once its poll has read the endpoint's state, B's fresh delivery waits for the rest
    too (an administrator then ends it), rather than going out at once."""
    nodes.rx.hold = False
    reads_b = _Reads(nodes.st_b)
    monkeypatch.setattr(nodes.st_b, "read_outbox", reads_b)
    long = _settings(tmp_path, webhook_retry_base=600.0, webhook_retry_max=600.0)
    a = _node(nodes.st_a, long, "node-a", time.time)
    b = _node(nodes.st_b, long, "node-b", time.time)
    await a.start()
    await b.start()
    try:
        await b.bus.publish(nodes.event("call.ringing", "w"))  # B learns the endpoint
        await nodes.rx.wait_for(1)
        nodes.rx.status = 500
        await a.bus.publish(nodes.event("call.ringing", "x"))
        await nodes.until_endpoint("A's rest", lambda e: e.paused_until > time.time() + 100)
        nodes.rx.status = 200
        await reads_b.one_after(reads_b.count)  # B's poll, after the rest began
        requests = nodes.rx.requests
        await b.bus.publish(nodes.event("call.ringing", "y"))
        await reads_b.one_after(reads_b.count)  # what B does with it, it has done
        assert nodes.rx.requests == requests
        [y] = [d for d in await nodes.st_b.list_deliveries() if d.order_key == "call:y"]
        assert y.attempts == 0
        await nodes.st_a.enable_webhook(nodes.hook.endpoint_id)
        await nodes.rx.wait_for(3)  # w, then y and A's x
    finally:
        await _stop(b, a)
    assert {r.body["data"]["call_id"] for r in nodes.rx.got} == {"w", "x", "y"}
