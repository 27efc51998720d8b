"""The webhook tables on SQLite and PostgreSQL: endpoints with sealed secrets, and the
outbox of deliveries."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.store.support import STORE_KEY

from tongdai.store.errors import Conflict, NotFound
from tongdai.store.sql import SqlStore, open_store
from tongdai.webhooks.store import (
    DELIVERED,
    MAX_ENDPOINTS_PER_APP,
    PENDING,
    Attempt,
    EndpointState,
    NewDelivery,
)

SECRET = "whsec_store-test-secret"


def _new(endpoint_id: str, n: int, key: str = "call:a") -> NewDelivery:
    return NewDelivery(delivery_id=f"whd_{endpoint_id}_{n}", endpoint_id=endpoint_id,
                       event_id=f"evt_{n}", event_type="call.ringing", order_key=key,
                       body=f'{{"n":{n}}}', created_at=1000.0 + n)


async def test_endpoints_keep_their_secret_sealed_and_follow_their_app(
    store: SqlStore,
) -> None:
    app = await store.create_app("acme")
    e = await store.add_webhook(app.app_id, "https://crm.example.com/h", ("call.*",),
                                secret=SECRET, now=1.0)
    assert e.enabled and e.events == ("call.*",) and e.secret.reveal() == SECRET
    assert SECRET not in repr(e)
    async with store._engine.connect() as conn:
        [stored] = (await conn.execute(text("SELECT secret FROM webhook_endpoints"))).scalars()
    assert stored.startswith("enc1:") and SECRET not in stored
    assert [w.endpoint_id for w in await store.list_webhooks(app.app_id)] == [e.endpoint_id]
    assert await store.list_webhooks("other") == []
    off = await store.enable_webhook(e.endpoint_id, enabled=False, reason="too many failures")
    assert not off.enabled and off.disabled_reason == "too many failures"
    on = await store.enable_webhook(e.endpoint_id)
    assert on.enabled and on.failures == 0 and on.disabled_reason == ""
    await store.add_deliveries([_new(e.endpoint_id, 1)], node="n1")
    await store.delete_app(app.app_id)  # the tenant is gone: its webhooks too
    assert await store.list_webhooks() == []
    assert await store.list_deliveries() == []


async def test_an_app_has_a_bounded_number_of_webhooks_and_unknowns_are_named(
    store: SqlStore,
) -> None:
    app = await store.create_app("acme")
    for i in range(MAX_ENDPOINTS_PER_APP):
        await store.add_webhook(app.app_id, f"https://h{i}.example.com/", ("*",),
                                secret=SECRET, now=1.0)
    with pytest.raises(Conflict, match="remove one first"):
        await store.add_webhook(app.app_id, "https://x.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    with pytest.raises(NotFound, match="app 'nope'"):
        await store.add_webhook("nope", "https://x.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    with pytest.raises(NotFound, match="webhook list"):
        await store.remove_webhook("wh_missing")
    with pytest.raises(NotFound, match="webhook deliveries"):
        await store.redeliver("whd_missing", node="n1")


async def test_pending_deliveries_come_oldest_first_for_this_node_and_ready_endpoints(
    store: SqlStore,
) -> None:
    app = await store.create_app("acme")
    a = await store.add_webhook(app.app_id, "https://a.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    b = await store.add_webhook(app.app_id, "https://b.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    await store.add_deliveries([_new(a.endpoint_id, 1), _new(b.endpoint_id, 2),
                                _new(a.endpoint_id, 3)], node="n1")
    await store.add_deliveries([_new(a.endpoint_id, 4)], node="n2")
    got = await store.pending_deliveries(node="n1", now=2000.0, limit=10)
    assert [d.delivery_id for d, _ in got] == [f"whd_{a.endpoint_id}_1",
                                               f"whd_{b.endpoint_id}_2",
                                               f"whd_{a.endpoint_id}_3"]
    assert got[0][1].url == "https://a.example.com/"
    first, second = got[0][0], got[1][0]
    # One delivered, one failed, and endpoint a rests until 3000.
    await store.record_attempts(
        [Attempt(seq=first.seq, ok=True, at=2001.0),
         Attempt(seq=second.seq, ok=False, at=2001.0, error="HTTP 500")],
        [EndpointState(endpoint_id=a.endpoint_id, failures=1, paused_until=3000.0,
                       began=2000.0, error="HTTP 500")])
    got = await store.pending_deliveries(node="n1", now=2500.0, limit=10)
    assert [d.delivery_id for d, _ in got] == [f"whd_{b.endpoint_id}_2"]
    assert got[0][0].attempts == 1 and got[0][0].last_error == "HTTP 500"
    got = await store.pending_deliveries(node="n1", now=3000.0, limit=10)
    assert len(got) == 2
    [done] = await store.list_deliveries(status=DELIVERED)
    assert done.delivery_id == first.delivery_id and done.delivered_at == 2001.0
    # A disabled endpoint's deliveries wait; they are not dropped.
    [stored] = await store.record_attempts([], [EndpointState(
        endpoint_id=b.endpoint_id, failures=100, paused_until=0.0, began=2000.0,
        error="HTTP 500")], disable_after=100)
    assert stored.disabled_now and not stored.enabled
    got = await store.pending_deliveries(node="n1", now=3000.0, limit=10)
    assert [d.endpoint_id for d, _ in got] == [a.endpoint_id]
    assert len(await store.list_deliveries(status=PENDING)) == 3
    disabled = await store.get_webhook(b.endpoint_id)
    assert disabled is not None and not disabled.enabled
    assert disabled.disabled_reason == "100 failed attempts in a row; the last: HTTP 500"


async def test_redeliver_sends_the_same_delivery_again_and_purge_keeps_pending(
    store: SqlStore,
) -> None:
    app = await store.create_app("acme")
    a = await store.add_webhook(app.app_id, "https://a.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    await store.add_deliveries([_new(a.endpoint_id, 1), _new(a.endpoint_id, 2)], node="n1")
    [(d1, _), (d2, _)] = await store.pending_deliveries(node="n1", now=2000.0, limit=10)
    await store.record_attempts([Attempt(seq=d1.seq, ok=True, at=2000.0)], [])
    again = await store.redeliver(d1.delivery_id, node="n2")
    assert again.status == PENDING and again.delivery_id == d1.delivery_id
    assert again.body == d1.body
    assert [d.delivery_id for d, _ in await store.pending_deliveries(
        node="n2", now=2000.0, limit=10)] == [d1.delivery_id]
    await store.record_attempts([Attempt(seq=d1.seq, ok=True, at=2100.0)], [])
    assert await store.purge_deliveries(delivered_before=3000.0) == 1
    assert [d.delivery_id for d in await store.list_deliveries()] == [d2.delivery_id]
    assert [d.delivery_id for d in await store.list_deliveries(
        app_id=app.app_id, endpoint_id=a.endpoint_id, status=PENDING)] == [d2.delivery_id]
    assert await store.list_deliveries(app_id="other") == []


async def test_a_large_batch_is_numbered_in_order_and_its_successes_keep_their_times(
    db_url: str,
) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        await _large_batch(store)
    finally:
        await store.close()


async def _large_batch(store: SqlStore) -> None:
    # More rows than one INSERT takes on SQLite, after a row already there.
    app = await store.create_app("acme")
    a = await store.add_webhook(app.app_id, "https://a.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    first = await store.add_deliveries([_new(a.endpoint_id, 0)], node="n1")
    seqs = await store.add_deliveries([_new(a.endpoint_id, n) for n in range(1, 1201)],
                                      node="n1")
    assert seqs == list(range(first[0] + 1, first[0] + 1201))
    got = await store.pending_deliveries(node="n1", now=2000.0, limit=2000)
    assert [(d.seq, d.body, d.created_at) for d, _ in got] == [
        (s, f'{{"n":{n}}}', 1000.0 + n) for n, s in enumerate(first + seqs)]
    assert {(d.status, d.attempts, d.last_error) for d, _ in got} == {(PENDING, 0, "")}
    await store.record_attempts(
        [Attempt(seq=s, ok=True, at=3000.0 + n) for n, s in enumerate(seqs)]
        + [Attempt(seq=first[0], ok=False, at=2999.0, error="HTTP 500")], [])
    by_seq = {d.seq: d for d in await store.list_deliveries(limit=2000)}
    assert [(by_seq[s].status, by_seq[s].delivered_at, by_seq[s].attempts)
            for s in seqs] == [(DELIVERED, 3000.0 + n, 1) for n in range(1200)]
    assert (by_seq[first[0]].status, by_seq[first[0]].last_error) == (PENDING, "HTTP 500")


async def test_the_outbox_survives_reopening_the_database(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        app = await store.create_app("acme")
        a = await store.add_webhook(app.app_id, "https://a.example.com/", ("*",),
                                    secret=SECRET, now=1.0)
        await store.add_deliveries([_new(a.endpoint_id, n) for n in range(1, 4)], node="n1")
    finally:
        await store.close()
    store = await open_store(db_url, key=STORE_KEY)
    try:
        got = await store.pending_deliveries(node="n1", now=2000.0, limit=10)
        assert [d.body for d, _ in got] == ['{"n":1}', '{"n":2}', '{"n":3}']
        assert got[0][1].secret.reveal() == SECRET
    finally:
        await store.close()


async def test_attempts_of_a_webhook_removed_meanwhile_are_recorded_quietly(
    store: SqlStore,
) -> None:
    app = await store.create_app("acme")
    a = await store.add_webhook(app.app_id, "https://a.example.com/", ("*",), secret=SECRET,
                                now=1.0)
    await store.add_deliveries([_new(a.endpoint_id, 1)], node="n1")
    [(d, _)] = await store.pending_deliveries(node="n1", now=2000.0, limit=10)
    await store.remove_webhook(a.endpoint_id)  # while its last attempt was under way
    await store.record_attempts(
        [Attempt(seq=d.seq, ok=False, at=2001.0, error="HTTP 500")],
        [EndpointState(endpoint_id=a.endpoint_id, failures=100, paused_until=0.0,
                       began=2000.0, error="HTTP 500")], disable_after=100)
    assert await store.list_webhooks() == []


async def test_each_node_changes_the_endpoint_state_the_database_holds(db_url: str) -> None:
    """Two nodes' records of attempts on one database: failures add up, the longer
    rest stands, a success clears only the rest its node knew of, an enable is not
    undone by a failure begun before it, and the disable happens once."""
    st_a = await open_store(db_url, key=STORE_KEY)
    st_b = await open_store(db_url, key=STORE_KEY)
    try:
        app = await st_a.create_app("acme")
        e = await st_a.add_webhook(app.app_id, "https://a.example.com/", ("*",),
                                   secret=SECRET, now=1.0)
        eid = e.endpoint_id

        def failed(n: int, until: float, began: float = 2000.0) -> list[EndpointState]:
            return [EndpointState(endpoint_id=eid, failures=n, paused_until=until,
                                  began=began, error="HTTP 500")]

        [a] = await st_a.record_attempts([], failed(1, 5000.0), disable_after=5)
        [b] = await st_b.record_attempts([], failed(1, 3000.0), disable_after=5)
        assert (a.failures, a.paused_until) == (1, 5000.0)
        assert (b.failures, b.paused_until) == (2, 5000.0)  # not 1 and 3000
        # B's success began when B knew of its own rest only: A's longer one stands.
        [b] = await st_b.record_attempts([], [EndpointState(
            endpoint_id=eid, ok=True, seen_until=3000.0)], disable_after=5)
        assert (b.failures, b.paused_until) == (2, 5000.0)
        [a] = await st_a.record_attempts([], [EndpointState(
            endpoint_id=eid, ok=True, seen_until=5000.0)], disable_after=5)
        assert (a.failures, a.paused_until, a.enabled) == (0, 0.0, True)
        # Failures reach the limit from both nodes: disabled by the record that got
        # there, once.
        await st_a.record_attempts([], failed(3, 6000.0), disable_after=5)
        version = await st_a.config_version()
        [b] = await st_b.record_attempts([], failed(2, 6500.0), disable_after=5)
        assert b.disabled_now and not b.enabled and b.failures == 5
        assert b.disabled_reason == "5 failed attempts in a row; the last: HTTP 500"
        assert await st_a.config_version() > version  # every process stops queueing
        [a] = await st_a.record_attempts([], failed(1, 7000.0), disable_after=5)
        assert not a.disabled_now and not a.enabled and a.failures == 6
        # Enabled at 2500: a failure of an attempt begun before is not counted; one
        # begun after is.
        await st_a.enable_webhook(eid, now=2500.0)
        [b] = await st_b.record_attempts([], failed(4, 9000.0, began=2400.0),
                                         disable_after=5)
        assert (b.failures, b.paused_until, b.enabled) == (0, 0.0, True)
        [b] = await st_b.record_attempts([], failed(1, 9000.0, began=2600.0),
                                         disable_after=5)
        assert (b.failures, b.paused_until, b.enabled) == (1, 9000.0, True)
        assert await st_b.record_attempts([], []) == []
    finally:
        await st_b.close()
        await st_a.close()
