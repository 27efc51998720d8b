"""Queue status: the store's queues and paused agents with the running ACD's state."""

from __future__ import annotations

import time

from tongdai.admin.live import AcdProbe
from tongdai.admin.service import AdminService, Principal
from tongdai.flows.store import QueueRec
from tongdai.pbx.flow.acd import Acd
from tongdai.settings import Settings
from tongdai.store.errors import NotFound
from tongdai.store.sql import SqlStore


async def test_waiting_callers_and_agent_states(store: SqlStore) -> None:
    acd = Acd(clock=time.time, registered=lambda u: u != "carol", in_call=lambda: {"bob"})
    svc = AdminService(store=store, settings=Settings(), principal=Principal(actor="t"),
                       queues=AcdProbe(acd))
    app = (await svc.create_app("Shop"))["app_id"]
    other = (await svc.create_app("Other"))["app_id"]
    for user in ("alice", "bob", "carol", "dan"):
        await svc.add_device(app, user, f"{user}-secret")
    await svc.flows.add_queue(app, "sales", ["alice", "bob", "carol", "dan"])
    await svc.flows.pause_agent(app, "dan", True)
    acd.join(QueueRec(app_id=app, name="sales", agents=()), "call-1")
    acd.join(QueueRec(app_id=app, name="sales", agents=()), "call-2")
    [q] = await svc.flows.queue_status(app)
    assert q["waiting"] == 2
    assert {a["sip_user"]: a["state"] for a in q["agents"]} == {
        "alice": "available", "bob": "busy", "carol": "offline", "dan": "paused"}
    # Without a server in this process (the CLI): no waiting count, paused still known.
    cli = AdminService(store=store, settings=Settings(), principal=Principal(actor="t"))
    [q] = await cli.flows.queue_status(app)
    assert q["waiting"] is None and q["agents"][3] == {"sip_user": "dan", "state": "paused"}
    tenant = AdminService(store=store, settings=Settings(),
                          principal=Principal(actor="t", app_id=other))
    try:
        await tenant.flows.queue_status(app)
    except NotFound:
        pass
    else:
        raise AssertionError("another tenant's queues were shown")
