"""Call control over the Open API: the app's live calls, hang up, hold, resume,
recording pause, transfer — authenticated by the app's hash, a call of another app
not found, bad bodies 400 with a code. Behind the API is the real call core on the
in-memory network (``tests/pbx/b2bua``), with one call between alice and bob."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from tests.pbx.b2bua.harness import Phone, Wire, answer_after, device, plan
from tests.pbx.b2bua.harness_control import CAROL, ControlNode, direction

from tongdai.pbx.b2bua import control
from tongdai.pbx.b2bua.routing import QUEUE, QUEUE_PREFIX
from tongdai.pbx.b2bua.transfer import TransferTo
from tongdai.pbx.protocol import CallRefused, ControlOp, InvalidNumber, Side

from .support import FakeCalls, Tenants, sqlite_only

pytestmark = sqlite_only  # the subject is the API and the call core, not the store
CALLS = "/oapi/v1/calls"
SALES = {"queue": "sales", "type": "queue"}


class CoreCalls(FakeCalls):
    """Click-to-call as the fake does; call control from a real core with one call."""

    def __init__(self) -> None:
        super().__init__()
        self.wire = Wire()
        self.node = ControlNode(self.wire)
        self.alice = Phone(self.wire, "192.0.2.1", user="alice")
        self.bob = Phone(self.wire, "192.0.2.2", user="bob",
                         script=answer_after(ring=0.1, answer=1.0))
        self.carol = Phone(self.wire, "192.0.2.3", user="carol",
                           script=answer_after(ring=0.1, answer=1.0))

    def start(self, app_id: str, *, record: bool = True) -> None:
        self.node.new_call(dataclasses.replace(plan(), app_id=app_id), device(self.bob),
                           record=record)
        self.alice.call("102")
        self.wire.run(2)

    def live_calls(self, app_id: str) -> list[dict[str, Any]]:
        return [control.snapshot(c) for c in self.node.core.calls.values()
                if c.app_id == app_id and not c.finished]

    def _check(self, app_id: str, call_id: str, op: Any) -> None:
        if (refusal := control.refusal(self.node.core, app_id, call_id, op)) is not None:
            raise CallRefused(refusal)

    def control(self, *, app_id: str, call_id: str, op: ControlOp,
                party: Side | None = None) -> dict[str, Any]:
        self._check(app_id, call_id, op)
        self.node.feed(control.Control(call_id=call_id, op=op, party=party))
        self.wire.run(2)
        return control.snapshot(self.node.core.calls[call_id])

    async def transfer(self, *, app_id: str, call_id: str, to: str,
                       replace: Side | None = None) -> dict[str, Any]:
        self._check(app_id, call_id, "transfer")
        if to.lower().startswith(QUEUE_PREFIX):  # as the driver does
            if to[len(QUEUE_PREFIX):] != "sales":
                raise InvalidNumber(to)
            self.node.feed(TransferTo(call_id=call_id, target=QUEUE, party=SALES,
                                      replace=replace, queue="sales"))
        elif to != "carol":
            raise InvalidNumber(to)
        else:
            self.node.feed(TransferTo(call_id=call_id,
                                      target=device(self.carol, sip_user="carol"),
                                      party=CAROL, devices=("carol",), replace=replace))
        snap = control.snapshot(self.node.core.calls[call_id])
        self.wire.run(2)
        return snap


@pytest.fixture
def calls() -> CoreCalls:
    return CoreCalls()


async def test_live_calls_are_listed_for_their_app_only(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.get(CALLS, headers=tenants.a.headers())
    assert r.status_code == 200
    [call] = r.json()["data"]
    assert (call["call_id"], call["state"], call["held"], call["recording"]) == (
        "c1", "talking", None, True)
    assert call["caller"]["username"] == "alice" and call["devices"] == ["alice", "bob"]
    r = await client.get(CALLS, headers=tenants.b.headers())
    assert r.status_code == 200 and r.json() == {"data": []}
    r = await client.get(CALLS, headers=tenants.a.headers(hash_="0" * 64))
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


async def test_another_apps_call_and_an_unknown_call_are_404(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    for path in ("hangup", "hold", "resume", "recording/pause", "recording/resume"):
        r = await client.post(f"{CALLS}/c1/{path}", headers=tenants.b.headers())
        assert r.status_code == 404, path
        assert r.json()["code"] == "call_not_found"
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.b.headers(),
                          json={"to": "carol"})
    assert r.status_code == 404 and r.json()["code"] == "call_not_found"
    r = await client.post(f"{CALLS}/nope/hangup", headers=tenants.a.headers())
    assert r.status_code == 404 and r.json()["code"] == "call_not_found"
    assert not calls.bob.got("BYE") and not calls.bob.got("INVITE")[1:]


async def test_hold_and_resume_reinvite_the_callee(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.post(f"{CALLS}/c1/hold", headers=tenants.a.headers())
    assert r.status_code == 200 and r.json()["held"] == "callee"
    assert direction(calls.bob.got("INVITE")[-1]) == "inactive"
    r = await client.post(f"{CALLS}/c1/resume", headers=tenants.a.headers(),
                          json={"party": "callee"})
    assert r.status_code == 200 and r.json()["held"] is None
    assert direction(calls.bob.got("INVITE")[-1]) == "sendrecv"


@pytest.mark.parametrize(("path", "body", "message"), [
    ("hold", '{"party": "boss"}', "party must be"),
    ("hold", '{"who": "caller"}', "Unknown field who"),
    ("hold", "[1]", "must be a JSON object"),
    ("hold", "{not json", "not valid JSON"),
    ("transfer", "", "body is required"),
    ("transfer", '{"to": ""}', "to is required"),
    ("transfer", '{"to": ["alice"]}', "to is required"),
    ("transfer", '{"to": "carol", "replace": "both"}', "replace must be"),
    ("transfer", '{"to": "' + "1" * 65 + '"}', "at most 64"),
])
async def test_bad_bodies_are_400_with_a_code(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls, path: str, body: str,
    message: str,
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.post(f"{CALLS}/c1/{path}", headers={
        **tenants.a.headers(), "content-type": "application/json"}, content=body)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_parameter" and message in r.json()["message"]


async def test_transfer_rings_the_target_and_a_bad_target_is_400(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.a.headers(),
                          json={"to": "nobody"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_number"
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.a.headers(),
                          json={"to": "carol", "replace": "callee"})
    assert r.status_code == 200 and r.json()["transferring"]
    assert len(calls.bob.got("BYE")) == 1 and calls.carol.got("INVITE")
    [call] = (await client.get(CALLS, headers=tenants.a.headers())).json()["data"]
    assert call["callee"] == CAROL and not call["transferring"]


async def test_a_transfer_to_a_queue_queues_the_caller_and_the_callee_leaves(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.a.headers(),
                          json={"to": "queue:nope", "replace": "callee"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_number"
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.a.headers(),
                          json={"to": "queue:sales", "replace": "callee"})
    assert r.status_code == 200
    assert len(calls.bob.got("BYE")) == 1 and not calls.alice.got("BYE")
    [call] = (await client.get(CALLS, headers=tenants.a.headers())).json()["data"]
    # Waiting in the queue: ringing until an agent answers, the queue as callee.
    assert call["state"] == "ringing" and call["callee"] == SALES
    assert not call["transferring"] and call["devices"] == ["alice"]


async def test_a_transfer_to_a_queue_that_lets_the_caller_go_queues_the_callee(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)  # alice's call: by default alice (the caller) leaves
    r = await client.post(f"{CALLS}/c1/transfer", headers=tenants.a.headers(),
                          json={"to": "queue:sales"})
    assert r.status_code == 200
    # alice leaves; bob is re-INVITEd onto the flow's media and waits there.
    assert len(calls.alice.got("BYE")) == 1 and not calls.bob.got("BYE")
    assert len(calls.bob.got("INVITE")) == 2
    [call] = (await client.get(CALLS, headers=tenants.a.headers())).json()["data"]
    assert call["state"] == "ringing" and call["caller"] == SALES
    assert call["callee"]["username"] == "bob" and call["devices"] == ["bob"]
    assert not calls.carol.got("INVITE") and not calls.bob.got("BYE")


async def test_states_that_refuse_a_command_are_409(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.bob.script = answer_after(ring=0.1, answer=None)  # it rings on
    calls.start(tenants.a.app_id, record=False)
    r = await client.post(f"{CALLS}/c1/hold", headers=tenants.a.headers())
    assert r.status_code == 409 and r.json()["code"] == "call_not_answered"
    r = await client.post(f"{CALLS}/c1/recording/pause", headers=tenants.a.headers())
    assert r.status_code == 409 and r.json()["code"] == "not_recording"
    r = await client.post(f"{CALLS}/c1/hangup", headers=tenants.a.headers())
    assert r.status_code == 200 and r.json()["state"] == "ended"
    assert calls.bob.got("CANCEL") and calls.alice.finals() == [487]
    assert calls.node.cdrs[0].hangup_by == "api"
    r = await client.post(f"{CALLS}/c1/hangup", headers=tenants.a.headers())
    assert r.status_code == 404


async def test_recording_pause_and_resume(
    client: httpx.AsyncClient, tenants: Tenants, calls: CoreCalls
) -> None:
    calls.start(tenants.a.app_id)
    r = await client.post(f"{CALLS}/c1/recording/pause", headers=tenants.a.headers())
    assert r.status_code == 200 and r.json()["recording_paused"] is True
    r = await client.post(f"{CALLS}/c1/recording/resume", headers=tenants.a.headers())
    assert r.status_code == 200 and r.json()["recording_paused"] is False

