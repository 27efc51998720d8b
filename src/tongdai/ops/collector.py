"""What ``/metrics`` reads at scrape time rather than counting as it happens.

Each figure here is already kept by the service that owns it (the location
service's bindings, the call core's table, the gates' and throttles' counters, the
relay's ports, the bus's queue): reading it when Prometheus asks costs the hot path
nothing. The webhook backlog is a query, so it is read by ``refresh`` (async, with
a timeout) just before the scrape renders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tongdai import logs

log = logging.getLogger("tongdai.ops")

# A scrape must not hang on a slow database: the backlog is left out instead.
BACKLOG_TIMEOUT = 1.0


class Bindings(Protocol):
    def count(self) -> int: ...


class LiveCall(Protocol):
    @property
    def finished(self) -> bool: ...
    @property
    def answered_at(self) -> float | None: ...


class CallTable(Protocol):
    @property
    def calls(self) -> Mapping[str, LiveCall]: ...


class GateStats(Protocol):
    @property
    def stats(self) -> Mapping[str, int]: ...


class ThrottleStats(Protocol):
    @property
    def scope(self) -> str: ...
    @property
    def failures(self) -> int: ...
    @property
    def blocks(self) -> Mapping[str, int]: ...
    @property
    def refusals(self) -> int: ...
    def active_blocks(self, now: float) -> int: ...


class MediaGauges(Protocol):
    @property
    def sessions(self) -> int: ...


class WebhookStats(Protocol):
    async def backlog(self) -> tuple[int, float | None]: ...
    @property
    def delivered(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """Where the scrape-time figures come from (wired by the server)."""

    bindings: Bindings
    calls: CallTable
    register: GateStats
    invite: GateStats
    throttles: Sequence[ThrottleStats]
    media: MediaGauges | None
    bus: object  # a shared bus tells ``connected``, ``pending`` and ``dropped``
    webhooks: WebhookStats | None = None


class PbxCollector(Collector):
    def __init__(self, sources: Sources, *, wall_clock: Callable[[], float]) -> None:
        self.sources = sources
        self.wall = wall_clock
        self._backlog: tuple[int, float | None] | None = None

    async def refresh(self) -> None:
        """Read what needs I/O (the webhook backlog); a failure leaves it out."""
        webhooks = self.sources.webhooks
        self._backlog = None
        if webhooks is None:
            return
        try:
            self._backlog = await asyncio.wait_for(webhooks.backlog(), BACKLOG_TIMEOUT)
        except Exception as exc:
            logs.event(log, "metrics.backlog_failed", level=logging.WARNING,
                       error=type(exc).__name__)

    def describe(self) -> list[Metric]:
        return []  # names are fixed below; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        s, now = self.sources, self.wall()
        yield _gauge("tongdai_registrations",
                     "Bindings (registered contacts) this node holds.", s.bindings.count())
        yield _counter("tongdai_register_requests", "REGISTER requests by outcome: ok "
                       "(bound), challenged (401), failed (wrong credentials), blocked "
                       "(refused by the brute-force throttle).", "outcome",
                       {"ok": 0, "challenged": 0, "failed": 0, "blocked": 0,
                        **s.register.stats})
        yield _counter("tongdai_invite_auth", "Devices' INVITE authentication by outcome "
                       "(challenged: 407).", "outcome", s.invite.stats)
        setup = answered = 0
        for call in s.calls.calls.values():
            if call.finished:
                continue
            if call.answered_at is None:
                setup += 1
            else:
                answered += 1
        active = GaugeMetricFamily("tongdai_calls_active", "Calls in progress on this node: "
                                   "ringing or being set up (setup), or answered.",
                                   labels=["state"])
        active.add_metric(["setup"], setup)
        active.add_metric(["answered"], answered)
        yield active
        yield from self._auth(now)
        if s.media is not None:
            yield _gauge("tongdai_media_sessions", "Calls whose media this node relays.",
                         s.media.sessions)
            # Only the built-in relay owns a port range (rtpengine has its own).
            free = getattr(s.media, "free_port_pairs", None)
            if isinstance(free, int):
                yield _gauge("tongdai_rtp_free_port_pairs",
                             "RTP/RTCP port pairs left in TONGDAI_RTP_PORTS.", free)
            # The built-in relay counts what it forwards; another engine may not.
            relayed = getattr(s.media, "packets_relayed", None)
            if isinstance(relayed, int):
                yield CounterMetricFamily("tongdai_rtp_packets_relayed",
                                          "RTP packets relayed between call legs.",
                                          value=relayed)
        yield from self._bus()
        if s.webhooks is not None:
            yield CounterMetricFamily("tongdai_webhook_deliveries",
                                      "Webhook deliveries answered 2xx by this node.",
                                      value=s.webhooks.delivered)
        if self._backlog is not None:
            count, oldest = self._backlog
            yield _gauge("tongdai_webhook_backlog",
                         "Webhook deliveries of this node waiting to be sent.", count)
            yield _gauge("tongdai_webhook_backlog_age_seconds",
                         "Age of the oldest waiting webhook delivery (0: none).",
                         max(0.0, now - oldest) if oldest is not None else 0.0)

    def _auth(self, now: float) -> Iterator[Metric]:
        failures = CounterMetricFamily("tongdai_auth_failures", "Failed authentications "
                                       "(SIP digest, Open API credentials).", labels=["scope"])
        blocks = CounterMetricFamily("tongdai_auth_blocks", "Blocks imposed by the brute-"
                                     "force throttle, by key: address, address_user, user "
                                     "(a user under a distributed attack).",
                                     labels=["scope", "key"])
        refusals = CounterMetricFamily("tongdai_auth_refusals",
                                       "Requests refused while blocked.", labels=["scope"])
        blocked = GaugeMetricFamily("tongdai_auth_blocked", "Blocks in force.",
                                    labels=["scope"])
        for t in self.sources.throttles:
            failures.add_metric([t.scope], t.failures)
            for key, n in t.blocks.items():
                blocks.add_metric([t.scope, key], n)
            refusals.add_metric([t.scope], t.refusals)
            blocked.add_metric([t.scope], t.active_blocks(now))
        yield from (failures, blocks, refusals, blocked)

    def _bus(self) -> Iterator[Metric]:
        # The in-process bus is always connected and never queues or drops.
        bus = self.sources.bus
        yield _gauge("tongdai_bus_connected", "1 while the event bus is connected.",
                     1 if getattr(bus, "connected", True) else 0)
        yield _gauge("tongdai_bus_pending_events",
                     "Events published here and not yet handed to the shared bus.",
                     int(getattr(bus, "pending", 0)))
        yield CounterMetricFamily("tongdai_bus_dropped_events",
                                  "Events the shared bus dropped (unreachable too long).",
                                  value=int(getattr(bus, "dropped", 0)))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in values.items():
        family.add_metric([key], n)
    return family
