"""The in-memory harness with call control: a node that routes transfers, a third
phone (carol) to transfer to, and a phone's REFER. Imported by the control and
transfer tests; it holds no tests itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.pbx.b2bua.harness import (
    PBX_HOST,
    Phone,
    RoutingNode,
    Script,
    Wire,
    answer_after,
    device,
    plan,
)

from tongdai.pbx.b2bua.actions import Action, RouteTransfer
from tongdai.pbx.b2bua.control import Control
from tongdai.pbx.b2bua.events import Party, Target
from tongdai.pbx.b2bua.transfer import TransferTo
from tongdai.sip.message import Request
from tongdai.sip.peer import Peer

CAROL: Party = {"number": "103", "type": "user", "username": "carol"}


@dataclass
class ControlNode(RoutingNode):
    """A node whose REFERs are routed as the driver would: ``transfers[to]``."""

    transfers: dict[str, tuple[Target, Party, tuple[str, ...]]] = field(default_factory=dict)

    def do(self, action: Action) -> None:
        if isinstance(action, RouteTransfer):
            target, party, devices = self.transfers[action.to]
            self.wire.at(0, lambda: self.feed(TransferTo(  # type: ignore[arg-type]
                call_id=action.call_id, target=target, party=party, devices=devices,
                by="refer", queue=party.get("queue") if party.get("type") == "queue"
                else None)))
            return
        super().do(action)

    def control(self, op: Any, call_id: str = "c1", party: Any = None) -> None:
        self.feed(Control(call_id=call_id, op=op, party=party))  # type: ignore[arg-type]

    def transfer(self, target: Target, *, replace: Any = None, party: Party = CAROL,
                 call_id: str = "c1", queue: str | None = None) -> None:
        self.feed(TransferTo(call_id=call_id, target=target, party=party,  # type: ignore[arg-type]
                             devices=(str(party.get("username")),), replace=replace,
                             queue=queue))


@dataclass
class Trio:
    wire: Wire
    node: ControlNode
    alice: Phone
    bob: Phone
    carol: Phone


def trio(carol: Script | None = None, bob: Script | None = None, **node_kw: Any) -> Trio:
    """alice (192.0.2.1) calls bob (192.0.2.2) and they talk; carol (192.0.2.3) is
    there to be transferred to (``transfers['carol']``)."""
    wire = Wire()
    node = ControlNode(wire, **node_kw)
    alice = Phone(wire, "192.0.2.1", user="alice")
    b = Phone(wire, "192.0.2.2", user="bob", script=bob or answer_after(ring=0.1, answer=1.0))
    c = Phone(wire, "192.0.2.3", user="carol",
              script=carol or answer_after(ring=0.1, answer=1.0))
    node.new_call(plan(), device(b))
    node.transfers["carol"] = (device(c, sip_user="carol"), CAROL, ("carol",))
    alice.call("102")
    wire.run(2)
    assert alice.finals() == [200]
    return Trio(wire, node, alice, b, c)


def refer(phone: Phone, target: str, *, extra: list[tuple[str, str | int]] | None = None,
          refer_to: bool = True) -> str:
    """``phone`` sends a REFER in its dialog (RFC 3515) to ``target``'s URI."""
    assert phone.dialog is not None
    headers: list[tuple[str, str | int]] = [("referred-by", f"<sip:{phone.user}@pbx.test>")]
    if refer_to:
        headers.append(("refer-to", f"<{target}>"))
    req = phone.dialog.create_request("REFER", headers=headers + (extra or []))
    return phone.ep.send_request(req, Peer("udp", PBX_HOST, 5060), phone.wire.now)


def sipfrags(phone: Phone) -> list[tuple[str, str]]:
    """The NOTIFYs ``phone`` got: (sipfrag status line, Subscription-State)."""
    return [(n.body.decode().strip(), n.headers.get("subscription-state") or "")
            for n in phone.got("NOTIFY")]


def answers(wire: Wire, src: str, dst: str, method: str) -> list[int]:
    """Statuses of the responses ``src`` sent ``dst`` to its ``method`` requests."""
    out = []
    for _, s, t, data in wire.log:
        if s == src and t == dst and data.startswith(b"SIP/2.0 ") and \
                f" {method}\r\n".encode() in data.split(b"CSeq:", 1)[-1][:40]:
            out.append(int(data[8:11]))
    return out


def direction(req: Request) -> str:
    for d in ("inactive", "sendonly", "recvonly", "sendrecv"):
        if f"a={d}".encode() in req.body:
            return d
    return "sendrecv"
