"""The operations endpoints, in front of the Open API on the same port.

- ``/healthz``: 200 while the process serves HTTP (its event loop turns).
- ``/readyz``: 200 when the store, the SIP transports and the event bus are ready,
  else 503 naming what is not (``ops.readiness``).
- ``/metrics``: Prometheus text, only to clients in ``TONGDAI_METRICS_ALLOW``
  (loopback by default); 403 for anyone else.

Every request through this layer is counted by route template, method and status.
The probes and scrapes themselves are not in the access log: a load balancer asking
every few seconds would drown it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)

from tongdai.asgi import App, Receive, Scope, Send, call_noting_status
from tongdai.ops.collector import PbxCollector
from tongdai.ops.metrics import Metrics
from tongdai.ops.readiness import Readiness

HEALTH, READY, METRICS = "/healthz", "/readyz", "/metrics"
# The classic text format, which every Prometheus (2.x and 3.x) and agent reads; our
# names need none of the newer format's escaping.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


class Operations:
    """ASGI middleware serving the operations endpoints and counting requests."""

    def __init__(self, app: App, *, metrics: Metrics, readiness: Readiness,
                 collector: PbxCollector | None = None, allow: Sequence[str] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.readiness = readiness
        self.collector = collector
        self.allow = networks(allow)
        # What is read at scrape time: this server's state and the process's (CPU,
        # memory, descriptors, garbage collections), in a registry of this layer's own.
        self.scraped = CollectorRegistry()
        for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, collector):
            if c is not None:
                self.scraped.register(c)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] in (HEALTH, READY, METRICS):
            status = await self._operations(scope, send)
            self.metrics.http_request(scope["path"], str(scope.get("method", "")), status)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        def ended(status: int) -> None:
            # The route the router matched (set on the scope it was given); a path
            # nothing matched is not a label: scanners would make one per probe.
            route = getattr(scope.get("route"), "path", None)
            method = "WS" if kind == "websocket" else str(scope.get("method", ""))
            self.metrics.http_request(route if isinstance(route, str) else "unmatched",
                                      method, status)

        await call_noting_status(self.app, scope, receive, send, ended)

    async def _operations(self, scope: Scope, send: Send) -> int:
        path, method = scope["path"], scope.get("method", "")
        if method not in ("GET", "HEAD"):
            return await _json(send, 405, {
                "code": "method_not_allowed", "message": f"{path} answers GET only."},
                head=False, extra=[(b"allow", b"GET, HEAD")])
        head = method == "HEAD"
        if path == HEALTH:
            return await _json(send, 200, {"status": "ok"}, head=head)
        if path == READY:
            checks = await self.readiness.report()
            down = [name for name, result in checks.items() if result != "ok"]
            if not down:
                return await _json(send, 200, {"status": "ready", "checks": checks}, head=head)
            why = "; ".join(f"{name}: {checks[name]}" for name in down)
            return await _json(send, 503, {
                "code": "not_ready", "message": f"Not ready: {why}.", "not_ready": down,
                "checks": checks}, head=head)
        client = _client_ip(scope)
        if client is None or not any(client in net for net in self.allow):
            shown = str(client) if client is not None else "this client"
            return await _json(send, 403, {
                "code": "forbidden",
                "message": f"Metrics are not served to {shown}; list its address in "
                           "TONGDAI_METRICS_ALLOW."}, head=head)
        if self.collector is not None:
            await self.collector.refresh()
        body = generate_latest(self.metrics.registry) + generate_latest(self.scraped)
        await _send(send, 200, CONTENT_TYPE, b"" if head else body, len(body))
        return 200


def _client_ip(scope: Scope) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        ip = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    # An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


async def _json(send: Send, status: int, body: dict[str, Any], *, head: bool,
                extra: Sequence[tuple[bytes, bytes]] = ()) -> int:
    data = json.dumps(body, separators=(",", ":")).encode()
    await _send(send, status, b"application/json", b"" if head else data, len(data), extra)
    return status


async def _send(send: Send, status: int, content_type: bytes, body: bytes, length: int,
                extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(length).encode()),
        (b"cache-control", b"no-store"), *extra]})
    await send({"type": "http.response.body", "body": body})
