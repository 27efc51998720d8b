"""Two in-memory endpoints wired to each other, a fake clock and a lossy, reordering wire.

Imported by the transaction, endpoint and dialog tests; it holds no tests itself.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

from tongdai.sip.endpoint import Endpoint
from tongdai.sip.events import SipEvent
from tongdai.sip.message import Headers, Request, Response, make_response
from tongdai.sip.parser import parse_message
from tongdai.sip.peer import Peer

A_HOST, B_HOST = "192.0.2.1", "192.0.2.2"
Drop = Callable[[str, bytes], bool]  # (direction "a>b" / "b>a", datagram) → lose it?


class Net:
    """``a`` and ``b`` exchange datagrams; ``advance(t)`` runs timers and deliveries."""

    def __init__(
        self, transport: str = "udp", *, loss: float = 0.0, seed: int = 0,
        delay: tuple[float, float] = (0.0, 0.0), drop: Drop | None = None,
        **endpoint_kw: Any,
    ) -> None:
        self.now = 0.0
        self.a = Endpoint(host=A_HOST, port=5060, **endpoint_kw)
        self.b = Endpoint(host=B_HOST, port=5060, **endpoint_kw)
        self.pa = Peer(transport, A_HOST, 5060)  # a as b sees it
        self.pb = Peer(transport, B_HOST, 5060)
        self._src = {id(self.a): self.pa, id(self.b): self.pb}
        self._name = {id(self.a): "a", id(self.b): "b"}
        self._by_addr = {(A_HOST, 5060): self.a, (B_HOST, 5060): self.b}
        self.rng = random.Random(seed)
        self.loss = loss
        self.delay = delay
        self.drop = drop
        self._flight: list[tuple[float, int, Endpoint, bytes, Peer]] = []
        self._seq = itertools.count()
        self.log: list[tuple[float, str, bytes]] = []  # every datagram sent: (time, "a>b", data)
        self.elsewhere: list[tuple[bytes, Peer]] = []  # sent to an address that is not a or b
        self.events: dict[str, list[SipEvent]] = {"a": [], "b": []}
        self.tu: dict[str, Callable[[SipEvent], None]] = {}

    # Wiring ------------------------------------------------------------------

    def flush(self) -> None:
        """Move output to the wire, deliver what is due, drain events — until quiet."""
        while True:
            busy = False
            for ep in (self.a, self.b):
                name = self._name[id(ep)]
                for data, dest in ep.datagrams_to_send():
                    busy = True
                    other = "b" if name == "a" else "a"
                    self.log.append((self.now, f"{name}>{other}", data))
                    target = self._by_addr.get((dest.host, dest.port))
                    if target is None or target is ep:
                        self.elsewhere.append((data, dest))
                        continue
                    if self.drop is not None and self.drop(f"{name}>{other}", data):
                        continue
                    if self.loss and self.rng.random() < self.loss:
                        continue
                    lo, hi = self.delay
                    at = self.now + (self.rng.uniform(lo, hi) if hi else 0.0)
                    heapq.heappush(
                        self._flight, (at, next(self._seq), target, data, self._src[id(ep)]),
                    )
            while self._flight and self._flight[0][0] <= self.now:
                _, _, target, data, src = heapq.heappop(self._flight)
                target.receive(data, src, self.now)
                busy = True
            for ep in (self.a, self.b):
                name = self._name[id(ep)]
                ev = ep.next_event()
                while ev is not None:
                    busy = True
                    self.events[name].append(ev)
                    if name in self.tu:
                        self.tu[name](ev)
                    ev = ep.next_event()
            if not busy:
                return

    def advance(self, until: float) -> None:
        """Run the clock to ``until``, firing timers and deliveries in time order."""
        self.flush()
        while True:
            times = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            if self._flight:
                times.append(self._flight[0][0])
            if not times or min(times) > until:
                break
            self.now = max(self.now, min(times))
            self.a.handle_timer(self.now)
            self.b.handle_timer(self.now)
            self.flush()
        self.now = max(self.now, until)

    # Inspection --------------------------------------------------------------

    def sent(self, direction: str, start: str) -> list[tuple[float, bytes]]:
        """Datagrams sent in ``direction`` whose first line starts with ``start``."""
        return [(t, d) for t, dirn, d in self.log if dirn == direction
                and d.startswith(start.encode())]

    def take(self, name: str, kind: type) -> list[Any]:
        """Remove and return ``name``'s events of class ``kind``."""
        evs = self.events[name]
        hit = [e for e in evs if isinstance(e, kind)]
        self.events[name] = [e for e in evs if not isinstance(e, kind)]
        return hit


def request(
    method: str, *, uri: str = f"sip:bob@{B_HOST}", call_id: str = "call-1", cseq: int = 1,
    to_tag: str | None = None, contact: str | None = f"<sip:alice@{A_HOST}:5060>",
    extra: tuple[tuple[str, str], ...] = (), body: bytes = b"",
) -> Request:
    """A request from alice (a) to bob (b), without Via: the endpoint adds it."""
    to = f"<sip:bob@{B_HOST}>" + (f";tag={to_tag}" if to_tag else "")
    h = Headers.of(
        ("from", f"\"Alice\" <sip:alice@{A_HOST}>;tag=from-a"), ("to", to),
        ("call-id", call_id), ("cseq", f"{cseq} {method}"),
    )
    if contact is not None:
        h.add("contact", contact)
    for k, v in extra:
        h.add(k, v)
    return Request(method=method, uri=uri, headers=h, body=body)


def answer(req: Request, status: int, *, tag: str = "to-b", contact: bool = True) -> Response:
    resp = make_response(req, status, to_tag=tag if status > 100 else None)
    if contact and 100 < status < 300:
        resp.headers.add("contact", f"<sip:bob@{B_HOST}:5060>")
    return resp


def parse(data: bytes) -> Request | Response:
    return parse_message(data)
