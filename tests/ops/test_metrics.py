"""The event-driven metrics and the scrape-time collector, on real objects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from tests.media._rtp import frames, free_range, open_phone, tone_codes

from tongdai.bus import InProcessBus
from tongdai.bus.events import Event
from tongdai.media import RelayEngine
from tongdai.ops import BusLag, Metrics, ObservedBus, PbxCollector, Sources
from tongdai.throttle import AuthThrottle

from .test_operations import sample


def event(kind: str, ts: float, **data: object) -> Event:
    return Event(type=kind, app_id="app", sip_users=("alice",), ts=ts, data=data)


def text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


async def test_call_events_count_status_and_setup_time() -> None:
    metrics, inner = Metrics(), InProcessBus()
    bus = ObservedBus(inner, metrics.call_event)
    heard = inner.subscribe()
    await bus.publish(event("call.ringing", 100.4, call_id="c1", started_at=100.0))
    await bus.publish(event("call.answered", 103.0, call_id="c1", started_at=100.0))
    await bus.publish(event("call.ended", 110.0, call_id="c1", status_detail="SUCCESS"))
    await bus.publish(event("call.ended", 111.0, call_id="c2", status_detail="BUSY"))
    await bus.publish(event("call.ended", 112.0, call_id="c3", status_detail="???"))
    out = text(metrics)
    assert sample(out, "tongdai_calls_total", status="SUCCESS") == 1
    assert sample(out, "tongdai_calls_total", status="BUSY") == 1
    assert sample(out, "tongdai_calls_total", status="CANCELLED") == 0
    assert sample(out, "tongdai_calls_total", status="other") == 1
    ringing = sample(out, "tongdai_call_setup_seconds_sum", stage="ringing")
    assert ringing is not None and abs(ringing - 0.4) < 1e-6
    assert sample(out, "tongdai_call_setup_seconds_sum", stage="answer") == 3.0
    assert sample(out, "tongdai_call_setup_seconds_bucket", stage="answer", le="2.0") == 0
    assert sample(out, "tongdai_call_setup_seconds_bucket", stage="answer", le="3.0") == 1
    # Every event still reached the bus, in order.
    got = [heard.get_nowait() for _ in range(5)]
    assert [e.type for e in got if e] == ["call.ringing", "call.answered", "call.ended",
                                          "call.ended", "call.ended"]


async def test_an_event_metrics_cannot_read_still_reaches_the_bus() -> None:
    metrics, inner = Metrics(), InProcessBus()
    heard = inner.subscribe()
    await ObservedBus(inner, metrics.call_event).publish(
        event("call.answered", 5.0, started_at="yesterday"))
    assert heard.get_nowait() is not None
    assert sample(text(metrics), "tongdai_call_setup_seconds_count", stage="answer") == 0


async def test_bus_lag_is_the_time_from_an_event_to_its_subscribers() -> None:
    metrics, bus = Metrics(), InProcessBus()
    lag = BusLag(bus=bus, histogram=metrics.bus_lag, wall_clock=lambda: 1000.0)
    lag.start()
    try:
        await bus.publish(event("device.registered", 999.75))
        await bus.publish(event("device.registered", 1000.5))  # a clock ahead of ours: 0
        for _ in range(50):
            if sample(text(metrics), "tongdai_bus_lag_seconds_count") == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await lag.stop()
    out = text(metrics)
    assert sample(out, "tongdai_bus_lag_seconds_count") == 2
    assert sample(out, "tongdai_bus_lag_seconds_sum") == 0.25


class _Calls:
    class _Call:
        def __init__(self, finished: bool, answered_at: float | None) -> None:
            self.finished, self.answered_at = finished, answered_at

    def __init__(self) -> None:
        self.calls = {"a": self._Call(False, None), "b": self._Call(False, 5.0),
                      "c": self._Call(True, 5.0)}


class _Count:
    def count(self) -> int:
        return 7


class _Stats:
    def __init__(self, **stats: int) -> None:
        self.stats = stats


async def test_the_collector_reads_throttles_calls_and_bindings_at_scrape_time() -> None:
    sip = AuthThrottle(scope="sip", address_limit=3, limit=2, window=60, block=300)
    now = time.time()
    sip.failure("192.0.2.1", "alice", now)
    sip.failure("192.0.2.1", "alice", now)  # the (address, user) pair is blocked
    assert sip.retry_after("192.0.2.1", "alice", now) > 0
    collector = PbxCollector(Sources(
        bindings=_Count(), calls=_Calls(), register=_Stats(ok=4, challenged=5),
        invite=_Stats(challenged=1, failed=0, blocked=0), throttles=(sip,), media=None,
        bus=InProcessBus()), wall_clock=lambda: now)
    registry = CollectorRegistry()
    registry.register(collector)
    await collector.refresh()
    out = generate_latest(registry).decode()
    assert sample(out, "tongdai_registrations") == 7
    assert sample(out, "tongdai_calls_active", state="setup") == 1
    assert sample(out, "tongdai_calls_active", state="answered") == 1
    assert sample(out, "tongdai_register_requests_total", outcome="ok") == 4
    assert sample(out, "tongdai_register_requests_total", outcome="failed") == 0
    assert sample(out, "tongdai_auth_failures_total", scope="sip") == 2
    assert sample(out, "tongdai_auth_blocks_total", scope="sip", key="address_user") == 1
    assert sample(out, "tongdai_auth_blocks_total", scope="sip", key="address") == 0
    assert sample(out, "tongdai_auth_refusals_total", scope="sip") == 1
    assert sample(out, "tongdai_auth_blocked", scope="sip") == 1
    assert sample(out, "tongdai_bus_connected") == 1
    assert "tongdai_webhook_backlog" not in out  # no webhooks given
    # A block that has run out is no longer in force, before anything expires it.
    collector.wall = lambda: now + 301
    assert sample(generate_latest(registry).decode(), "tongdai_auth_blocked", scope="sip") == 0


async def test_the_relay_counts_the_rtp_packets_it_relays(tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", free_range(16), tmp_path / "recordings")
    await engine.start()
    a, b = await open_phone(), await open_phone()
    try:
        s = await engine.create_session(call_id="c1", app_id="app1", record=False)
        s.set_remote("a", *a.address)
        s.set_remote("b", *b.address)
        to_b = frames(tone_codes(440, 0.2), ssrc=0xA)
        to_a = frames(tone_codes(1000, 0.1), ssrc=0xB)
        await asyncio.gather(a.stream(to_b, s.local_address("a")),
                             b.stream(to_a, s.local_address("b")))
        await b.wait_for(len(to_b))
        await a.wait_for(len(to_a))
        assert engine.packets_relayed == len(to_a) + len(to_b)
        await s.close()
        collector = PbxCollector(Sources(
            bindings=_Count(), calls=_Calls(), register=_Stats(), invite=_Stats(),
            throttles=(), media=engine, bus=InProcessBus()), wall_clock=time.time)
        registry = CollectorRegistry()
        registry.register(collector)
        out = generate_latest(registry).decode()
        # A closed session's packets still count.
        assert sample(out, "tongdai_rtp_packets_relayed_total") == len(to_a) + len(to_b)
        assert sample(out, "tongdai_media_sessions") == 0
    finally:
        a.close()
        b.close()
        await engine.stop()
