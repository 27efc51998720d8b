"""The metrics a running tongdai counts as things happen (served at ``/metrics``).

Everything here is incremented where the event happens and costs a dictionary lookup
and an addition; what is cheaper to read than to count (bindings, calls in progress,
blocks, the webhook backlog) is read at scrape time by ``ops.collector``. The
registry is this object's own, not prometheus_client's global one: two servers in
one process (tests) keep their figures apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from tongdai.bus.events import Event

# The CDR statuses (pbx/cdr.py, the seed's ``status_detail``): each is a series from
# the start, so a rate over a status that has not happened yet is 0, not absent.
STATUSES = ("SUCCESS", "BUSY", "CANCELLED", "IVR", "ERROR")
# From the INVITE to the caller hearing ringing or being answered: ringing comes in
# well under a second, an answer takes as long as a person needs to pick up.
SETUP_BUCKETS = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The event-driven instruments and the registry that ``/metrics`` renders."""

    def __init__(self) -> None:
        # No ``*_created`` series beside every counter and histogram: Prometheus does
        # not need them, and they would double what a scrape carries. (A switch of the
        # library, for the whole process: tongdai owns the process.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "tongdai_calls", "Calls ended on this node, by CDR status (status_detail).",
            ["status"], registry=self.registry)
        self._by_status = {s: self.calls.labels(status=s) for s in STATUSES}
        self.setup = Histogram(
            "tongdai_call_setup_seconds",
            "From the call's INVITE (authenticated and routed) to its first ringing "
            "(stage=ringing) and to the answer the caller gets (stage=answer).",
            ["stage"], buckets=SETUP_BUCKETS, registry=self.registry)
        self._ringing = self.setup.labels(stage="ringing")
        self._answer = self.setup.labels(stage="answer")
        self.bus_lag = Histogram(
            "tongdai_bus_lag_seconds",
            "From an event's time to its arrival at this node's bus subscribers.",
            buckets=LAG_BUCKETS, registry=self.registry)
        self.http = Counter(
            "tongdai_http_requests", "HTTP requests and websocket sessions, by route "
            "template, method (WS: websocket) and status (0: the client left first).",
            ["route", "method", "status"], registry=self.registry)

    def call_event(self, event: Event) -> None:
        """Count a call event as the call layer publishes it (``ObservedBus``)."""
        match event.type:
            case "call.ringing":
                # The core publishes ringing once per call, at the first 180/183.
                self._since_start(self._ringing, event)
            case "call.answered":
                # Published when the caller is sent its 200 (the answer made durable).
                self._since_start(self._answer, event)
            case "call.ended":
                status = event.data.get("status_detail")
                child = self._by_status.get(status) if isinstance(status, str) else None
                (child or self.calls.labels(status="other")).inc()
            case _:
                pass

    @staticmethod
    def _since_start(histogram: Histogram, event: Event) -> None:
        started = event.data.get("started_at")
        if isinstance(started, int | float) and not isinstance(started, bool):
            histogram.observe(max(0.0, event.ts - started))

    def http_request(self, route: str, method: str, status: int) -> None:
        # Methods and paths come from the client: only known ones become labels.
        self.http.labels(route=route, method=method if method in METHODS or method == "WS"
                         else "other", status=str(status)).inc()
