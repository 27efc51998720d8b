"""The B2BUA on an in-memory network with a fake clock: the pure core behind a real
SIP ``Endpoint``, and phones and carriers that are real ``Endpoint``s too.

``Wire`` carries datagrams between any number of endpoints (optionally losing some),
runs every endpoint's timers and the scheduled steps of the test in time order.
``Node`` is tongdai: it performs the core's actions synchronously — storage and media
complete at once unless told otherwise. ``Phone`` is a user agent scripted by the
test. Imported by the b2bua tests; it holds no tests itself.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tongdai.pbx.b2bua import B2bua, Limits, Messages
from tongdai.pbx.b2bua.actions import (
    Action,
    CancelLeg,
    CancelTimer,
    Checkpoint,
    Log,
    Lookup,
    Publish,
    Respond,
    SendAck,
    SendRequest,
    SetTimer,
    StartMedia,
    StartRecording,
    StopMedia,
    WriteCdr,
)
from tongdai.pbx.b2bua.events import (
    Anchor,
    Binding,
    ClickToCall,
    ClientResponse,
    ClientTimeout,
    ClientUnreachable,
    DialDevice,
    DialTrunk,
    Event,
    MediaStopped,
    NewCall,
    Plan,
    Routed,
    ServerTimeout,
    Stored,
    Target,
    TimerFired,
)
from tongdai.sip.dialog import Dialog
from tongdai.sip.endpoint import Endpoint
from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    StrayResponse,
    TransactionTimeout,
    TransportError,
)
from tongdai.sip.message import Headers, Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.store.records import CallCheckpoint, Cdr, TrunkRec
from tongdai.store.sealing import Sealed, SecretBox

PBX_HOST = "192.0.2.10"
T1 = 0.5
Drop = Callable[[str, str, bytes], bool]  # (from host, to host, datagram) → lose it?


def sdp(host: str, port: int, direction: str = "sendrecv") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            f"a={direction}\r\n").encode()


class Wire:
    def __init__(self, *, loss: float = 0.0, seed: int = 0, drop: Drop | None = None,
                 latency: float = 0.0) -> None:
        self.now = 0.0
        self.latency = latency
        self.nodes: dict[str, tuple[Endpoint, Callable[[SipEvent], None]]] = {}
        self.rng = random.Random(seed)
        self.loss = loss
        self.drop = drop
        self._seq = itertools.count()
        self._flight: list[tuple[float, int, str, bytes, Peer]] = []
        self._steps: list[tuple[float, int, Callable[[], None]]] = []
        self.log: list[tuple[float, str, str, bytes]] = []  # (time, from, to, datagram)

    def attach(self, ep: Endpoint, on_event: Callable[[SipEvent], None]) -> None:
        self.nodes[ep.host] = (ep, on_event)

    def at(self, delay: float, step: Callable[[], None]) -> None:
        """Run ``step`` ``delay`` seconds from now (on the fake clock)."""
        heapq.heappush(self._steps, (self.now + delay, next(self._seq), step))

    def flush(self) -> None:
        while True:
            busy = False
            for host, (ep, _) in list(self.nodes.items()):
                for data, dest in ep.datagrams_to_send():
                    busy = True
                    self.log.append((self.now, host, dest.host, data))
                    if dest.host not in self.nodes:
                        continue
                    if self.drop is not None and self.drop(host, dest.host, data):
                        continue
                    if self.loss and self.rng.random() < self.loss:
                        continue
                    heapq.heappush(self._flight, (self.now + self.latency, next(self._seq),
                                                  dest.host, data,
                                                  Peer("udp", host, 5060)))
            while self._flight and self._flight[0][0] <= self.now:
                _, _, dest_host, data, src = heapq.heappop(self._flight)
                self.nodes[dest_host][0].receive(data, src, self.now)
                busy = True
            for ep, on_event in list(self.nodes.values()):
                ev = ep.next_event()
                while ev is not None:
                    busy = True
                    on_event(ev)
                    ev = ep.next_event()
            while self._steps and self._steps[0][0] <= self.now:
                busy = True
                heapq.heappop(self._steps)[2]()
            if not busy:
                return

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass, firing timers, deliveries and steps in time order."""
        until = self.now + seconds
        self.flush()
        while True:
            times = [t for ep, _ in self.nodes.values() if (t := ep.get_timer()) is not None]
            if self._flight:
                times.append(self._flight[0][0])
            if self._steps:
                times.append(self._steps[0][0])
            if not times or min(times) > until:
                break
            self.now = max(self.now, min(times))
            for ep, _ in self.nodes.values():
                ep.handle_timer(self.now)
            self.flush()
        self.now = until

    def sent(self, src: str, dst: str, start: str) -> list[bytes]:
        return [d for _, s, t, d in self.log if s == src and t == dst
                and d.startswith(start.encode())]


class CountingIds:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def _next(self, kind: str) -> str:
        return f"{kind}{next(self._n)}"

    def call_id(self) -> str:
        return self._next("call")

    def sip_call_id(self) -> str:
        return self._next("cid")

    def tag(self) -> str:
        return self._next("tag")

    def ref(self) -> str:
        return self._next("ref")

    def cnonce(self) -> str:
        return self._next("cnonce")


@dataclass
class Scene:
    """tongdai between a caller and a callee (``call``)."""

    wire: Wire
    node: Node
    alice: Phone
    bob: Phone


def call_scene(script: Script | None = None, *, latency: float = 0.0,
               **node_kw: Any) -> Scene:
    """alice (192.0.2.1) calls bob (192.0.2.2), one device with one binding."""
    wire = Wire(latency=latency)
    node = RoutingNode(wire, **node_kw)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob",
                script=script or answer_after(ring=0.1, answer=1.0))
    node.new_call(plan(), device(bob))
    return Scene(wire, node, alice, bob)


@dataclass
class Node:
    """tongdai: the core behind a real endpoint; actions done at once, in order."""

    wire: Wire
    limits: Limits = field(default_factory=lambda: Limits(
        ring_timeout=60, max_call_duration=3600, media_timeout=60))
    store_delay: float | None = 0.0  # None: storage never answers (a stuck database)
    routes: dict[str, Target] = field(default_factory=dict)  # click-to-call lookups

    def __post_init__(self) -> None:
        self.ids = CountingIds()
        self.ep = Endpoint(host=PBX_HOST, port=5060)
        self.core = B2bua(messages=Messages(domain="pbx.test", host=PBX_HOST, port=5060),
                          limits=self.limits, ids=self.ids)
        self.wire.attach(self.ep, self.on_sip)
        self.refs: dict[str, str] = {}
        self.txns: dict[str, str] = {}
        self.timers: dict[tuple[str, str], int] = {}
        self.cdrs: list[Cdr] = []
        self.checkpoints: list[CallCheckpoint] = []
        self.published: list[Publish] = []
        self.logs: list[Log] = []
        self.media: list[Action] = []
        self.actions: list[Action] = []
        self.stopped: list[str] = []  # calls whose media was closed

    # Input ---------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        for action in self.core.handle(event, self.wire.now):
            self.actions.append(action)
            self.do(action)

    def on_sip(self, ev: SipEvent) -> None:
        match ev:
            case RequestReceived() | CancelReceived() | StrayResponse():
                self.feed(ev)
            case ResponseReceived(response=resp, txn=txn, retransmission=again):
                if (ref := self.refs.get(txn)) is not None:
                    self.feed(ClientResponse(ref=ref, response=resp, retransmission=again))
            case TransactionTimeout(txn=txn):
                ref = self.refs.get(txn)
                self.feed(ClientTimeout(ref=ref) if ref else ServerTimeout(txn=txn))
            case TransportError(txn=txn) if txn is not None:
                if (ref := self.refs.get(txn)) is not None:
                    self.feed(ClientUnreachable(ref=ref))
            case _:
                pass

    def new_call(self, plan: Plan, target: Target, *, record: bool = True) -> None:
        """Route the next INVITE that arrives (the routing the driver would do)."""
        self._plan = (plan, target, record)

    def click_to_call(self, plan: Plan, agent: Binding, number: str,
                      device: str | None = None, record: bool = True) -> None:
        self.feed(ClickToCall(plan=plan, agent=agent, number=number, device=device,
                              media=_anchor(record)))

    # Output --------------------------------------------------------------------

    def do(self, action: Action) -> None:
        now = self.wire.now
        match action:
            case SendRequest(ref=ref, request=req, peer=peer):
                txn = self.ep.send_request(req, peer, now)
                self.refs[txn] = ref
                self.txns[ref] = txn
            case Respond(txn=txn, response=resp):
                self.ep.send_response(txn, resp, now)
            case SendAck(ack=ack, peer=peer):
                self.ep.send_stateless(ack, peer)
            case CancelLeg(ref=ref):
                self.ep.cancel(self.txns[ref], now)
            case StartMedia() | StartRecording():
                self.media.append(action)
            case StopMedia(call_id=call_id):
                self.stopped.append(call_id)
                call = self.core.calls.get(call_id)
                rec = f"{call_id}.mp3" if call is not None and call.answered_at is not None \
                    and call.media and call.media.record else ""
                self.wire.at(0, lambda: self.feed(MediaStopped(call_id=call_id, recording=rec)))
            case Publish():
                self.published.append(action)
            case WriteCdr(cdr=cdr, purpose=purpose):
                self._store(cdr.call_id, purpose, lambda: self.cdrs.append(cdr))
            case Checkpoint(checkpoint=cp, purpose=purpose):
                self._store(cp.call_id, purpose, lambda: self.checkpoints.append(cp))
            case SetTimer(call_id=call_id, name=name, delay=delay):
                gen = next(self.ids._n)
                self.timers[(call_id, name)] = gen
                self.wire.at(delay, lambda: self._fire(call_id, name, gen))
            case CancelTimer(call_id=call_id, name=name):
                self.timers.pop((call_id, name), None)
            case Lookup(call_id=call_id, number=number):
                target = self.routes[number]
                self.wire.at(0, lambda: self.feed(Routed(call_id=call_id, target=target)))
            case Log():
                self.logs.append(action)

    def _store(self, call_id: str, purpose: Any, write: Callable[[], None]) -> None:
        if self.store_delay is None:
            return

        def done() -> None:
            write()
            self.feed(Stored(call_id=call_id, purpose=purpose))
        self.wire.at(self.store_delay, done)

    def _fire(self, call_id: str, name: str, gen: int) -> None:
        if self.timers.get((call_id, name)) == gen:
            del self.timers[(call_id, name)]
            self.feed(TimerFired(call_id=call_id, name=name))

    def route_invite(self, req: Request, peer: Peer, txn: str) -> None:
        plan, target, record = self._plan
        self.feed(NewCall(plan=plan, request=req, peer=peer, txn=txn, target=target,
                          media=_anchor(record)))

    # Inspection ----------------------------------------------------------------

    def events(self, kind: str) -> list[Publish]:
        return [p for p in self.published if p.kind == kind]

    def logged(self, name: str) -> list[Log]:
        return [entry for entry in self.logs if entry.name == name]


def _anchor(record: bool) -> Anchor:
    return Anchor(a=(PBX_HOST, 40000), b=(PBX_HOST, 40002), record=record)


class RoutingNode(Node):
    """A node whose new INVITEs go through ``route_invite`` (as the driver's routing)."""

    def on_sip(self, ev: SipEvent) -> None:
        if isinstance(ev, RequestReceived) and ev.request.method == "INVITE" \
                and not ev.request.to_tag and ev.txn is not None:
            self.route_invite(ev.request, ev.peer, ev.txn)
            return
        super().on_sip(ev)


Script = Callable[["Phone", Request, str], None]


class Phone:
    """A user agent at ``host``: calls out, and answers INVITEs as ``script`` says."""

    def __init__(self, wire: Wire, host: str, *, script: Script | None = None,
                 user: str = "phone") -> None:
        self.wire = wire
        self.host = host
        self.user = user
        self.ep = Endpoint(host=host, port=5060)
        self.script = script
        self.requests: list[Request] = []  # every request received, ACKs included
        self.responses: list[Response] = []  # every response to our INVITE
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_txn: str | None = None  # ours (as UAC) or theirs (as UAS)
        self.auto_ack = True
        self.timeouts: list[str] = []
        self.silent = False  # answers no in-dialog request (a peer that vanished)
        self.reply_status = 200  # the answer to in-dialog requests
        self.reply_headers: list[tuple[str, str | int]] = []  # added to those answers
        wire.attach(self.ep, self.on_event)

    @property
    def peer(self) -> Peer:
        return Peer("udp", self.host, 5060)

    # As the caller ------------------------------------------------------------

    def call(self, number: str, body: bytes | None = None,
             headers: list[tuple[str, str | int]] | None = None) -> None:
        h = Headers.of(*(headers or []))
        h.add("from", f'"Caller" <sip:{self.user}@pbx.test>;tag={self.user}-tag')
        h.add("to", f"<sip:{number}@pbx.test>")
        h.add("call-id", f"{self.user}-call@{self.host}")
        h.add("cseq", "1 INVITE")
        h.add("contact", f"<sip:{self.user}@{self.host}:5060>")
        h.add("max-forwards", 70)
        body = sdp(self.host, 30000) if body is None else body
        if body:
            h.add("content-type", "application/sdp")
        self.invite = Request(method="INVITE", uri=f"sip:{number}@pbx.test", headers=h,
                              body=body)
        self.invite_txn = self.ep.send_request(self.invite, Peer("udp", PBX_HOST, 5060),
                                               self.wire.now)

    def cancel(self) -> None:
        assert self.invite_txn is not None
        self.ep.cancel(self.invite_txn, self.wire.now)

    def ack(self, body: bytes = b"") -> None:
        assert self.dialog is not None and self.invite is not None
        ack = self.dialog.create_ack(self.invite.cseq[0], body=body,
                                     content_type="application/sdp" if body else None)
        self.ep.send_stateless(ack, Peer("udp", PBX_HOST, 5060))

    def send_in_dialog(self, method: str, body: bytes = b"") -> str:
        assert self.dialog is not None
        req = self.dialog.create_request(method, body=body,
                                         content_type="application/sdp" if body else None)
        return self.ep.send_request(req, Peer("udp", PBX_HOST, 5060), self.wire.now)

    def bye(self) -> str:
        return self.send_in_dialog("BYE")

    # As the callee -------------------------------------------------------------

    def respond(self, status: int, body: bytes = b"", reason: str = "",
                headers: list[tuple[str, str | int]] | None = None) -> None:
        assert self.invite is not None and self.invite_txn is not None
        resp = make_response(self.invite, status, reason, to_tag=f"{self.user}-tag",
                             body=body, content_type="application/sdp" if body else None,
                             headers=headers)
        if 100 < status < 300:
            resp.headers.add("contact", f"<sip:{self.user}@{self.host}:5060>")
        if 200 <= status < 300:
            self.dialog = Dialog.from_uas(self.invite, resp,
                                          local_contact=f"<sip:{self.user}@{self.host}>")
        # Already answered: a 487 to a CANCEL that came first.
        with contextlib.suppress(LocalProtocolError):
            self.ep.send_response(self.invite_txn, resp, self.wire.now)

    # Events ---------------------------------------------------------------------

    def on_event(self, ev: SipEvent) -> None:
        match ev:
            case RequestReceived(request=req, txn=txn):
                self.requests.append(req)
                if req.method == "INVITE" and not req.to_tag and txn is not None:
                    self.invite, self.invite_txn = req, txn
                    if self.script is not None:
                        self.script(self, req, txn)
                elif req.method in ("BYE", "INFO", "UPDATE", "INVITE", "PRACK") \
                        and txn is not None:
                    if self.silent:
                        return
                    if self.dialog is not None:
                        self.dialog.receive_request(req)
                    status = 200 if req.method in ("BYE", "PRACK") else self.reply_status
                    body = sdp(self.host, 30002) if req.method == "INVITE" and status < 300 \
                        else b""
                    extra = self.reply_headers if req.method not in ("BYE", "PRACK") else []
                    self.ep.send_response(txn, make_response(
                        req, status, body=body, content_type="application/sdp" if body else None,
                        headers=extra), self.wire.now)
            case CancelReceived(request=req, invite_txn=txn):
                self.requests.append(req)
                assert self.invite is not None
                self.ep.send_response(txn, make_response(self.invite, 487,
                                                         to_tag=f"{self.user}-tag"),
                                      self.wire.now)
            case ResponseReceived(response=resp, retransmission=again):
                if resp.cseq[1] != "INVITE" or resp.cseq[0] != 1 or again:
                    return
                self.responses.append(resp)
                if 200 <= resp.status < 300 and self.invite is not None:
                    self.dialog = Dialog.from_uac(self.invite, resp)
                    if self.auto_ack:
                        self.ack()
            case TransactionTimeout(request=req):
                self.timeouts.append(req.method)
            case _:
                pass

    def got(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def finals(self) -> list[int]:
        return [r.status for r in self.responses if r.status >= 200]


def answer_after(ring: float | None, answer: float | None, status: int = 200,
                 body: bytes | None = None) -> Script:
    """A callee that rings after ``ring`` s and gives ``status`` after ``answer`` s."""
    def script(phone: Phone, req: Request, txn: str) -> None:
        if ring is not None:
            phone.wire.at(ring, lambda: phone.respond(180))
        if answer is not None:
            # A 2xx carries SDP (the answer, or the offer for a late offer).
            sdp_body = (sdp(phone.host, 31000) if body is None else body) \
                if status < 300 else b""
            phone.wire.at(answer, lambda: phone.respond(status, sdp_body))
    return script


def device(*phones: Phone, sip_user: str = "bob") -> DialDevice:
    return DialDevice(sip_user=sip_user, bindings=tuple(
        Binding(contact=f"sip:{sip_user}@{p.host}:5060", peer=p.peer) for p in phones))


_BOX = SecretBox(b"k" * 32)


def trunk(name: str, phone: Phone, *, trunk_id: int = 1, username: str | None = None,
          password: str | None = None) -> TrunkRec:
    return TrunkRec(
        trunk_id=trunk_id, app_id="app", name=name, host=phone.host, port=5060,
        transport="udp", username=username,
        # A clear stored value opens as itself (from before encryption at rest).
        password=Sealed(stored=password, context="trunk", box=_BOX) if password else None,
    )


def via_trunks(number: str, *trunks: TrunkRec) -> DialTrunk:
    target: DialTrunk | None = None
    for t in reversed(trunks):
        target = DialTrunk(trunk=t, number=number, then=target)
    assert target is not None
    return target


def plan(call_id: str = "c1", *, direction: str = "from_ab",
         klass: str = "one_one") -> Plan:
    return Plan(call_id=call_id, app_id="app", direction=direction,  # type: ignore[arg-type]
                klass=klass,  # type: ignore[arg-type]
                caller={"number": "101", "type": "user", "username": "alice"},
                callee={"number": "102", "type": "user", "username": "bob"},
                devices=("alice", "bob"))
