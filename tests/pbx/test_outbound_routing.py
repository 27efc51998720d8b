"""Click-to-call and outbound trunks in-process, over real UDP sockets: the number is
checked before anyone rings, and a trunk that fails as a trunk hands the call to the
next one (a fresh INVITE, one CDR), but not after the callee's phone rang."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.pbx.peers import Message, UdpPeer, register

from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.protocol import InvalidNumber, NoRoute
from tongdai.server import Pbx
from tongdai.sip.message import Request
from tongdai.store.records import Cdr

SDP = (b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\n")

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _is_invite(m: Message) -> bool:
    return isinstance(m, Request) and m.method == "INVITE"


async def _cdrs(pbx: Pbx, app_id: str) -> list[Cdr]:
    _, rows = await pbx.store.list_cdrs(app_id, 0, time.time() + 60, limit=20, offset=0)
    return list(rows)


async def _app_with_agent(pbx: Pbx) -> str:
    app = await pbx.store.create_app("routing")
    await pbx.store.add_device(app.app_id, "agent",
                               digest_keys("agent", pbx.settings.domain, "agent-secret"))
    return app.app_id


async def _answered_agent(pbx: Pbx, app_id: str, number: str) -> UdpPeer:
    agent = UdpPeer(pbx.sip_port)
    await register(agent, "agent", "agent-secret")
    await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number=number)
    ring = await agent.recv(_is_invite)
    assert isinstance(ring, Request)
    await agent.answer(ring, 200, to_tag="ag1", contact=f"<sip:agent@127.0.0.1:{agent.port}>",
                       body=SDP)
    return agent


async def _wait_cdr(pbx: Pbx, app_id: str) -> Cdr:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        rows = await _cdrs(pbx, app_id)
        if rows:
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no CDR")


@sqlite_only
async def test_click_to_call_refuses_before_the_agent_rings(pbx: Pbx) -> None:
    app_id = await _app_with_agent(pbx)
    await pbx.store.add_trunk(app_id, "hcmc", host="127.0.0.1", port=9, routes="028")
    await pbx.directory.check()
    agent = UdpPeer(pbx.sip_port)
    try:
        await register(agent, "agent", "agent-secret")
        for bad in ("12", "0912", "09123456789", "nobody"):
            with pytest.raises(InvalidNumber):
                await pbx.calls.click_to_call(app_id=app_id, sip_user="agent", number=bad)
        with pytest.raises(NoRoute):  # a good mobile, but the only trunk serves 028
            await pbx.calls.click_to_call(app_id=app_id, sip_user="agent",
                                          number="0901234567")
        assert not [m for m in await agent.collect(0.5) if _is_invite(m)]
        assert await _cdrs(pbx, app_id) == []
    finally:
        agent.close()


@sqlite_only
async def test_each_trunk_gets_a_fresh_invite_and_the_call_one_cdr(pbx: Pbx) -> None:
    app_id = await _app_with_agent(pbx)
    down, up = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    await pbx.store.add_trunk(app_id, "down", host="127.0.0.1", port=down.port)
    await pbx.store.add_trunk(app_id, "up", host="127.0.0.1", port=up.port, priority=1)
    await pbx.directory.check()
    agent = await _answered_agent(pbx, app_id, "0901234567")
    try:
        first = await down.recv(_is_invite)
        assert isinstance(first, Request)
        await down.answer(first, 503, to_tag="d1")
        second = await up.recv(_is_invite)
        assert isinstance(second, Request)
        assert second.call_id != first.call_id  # a new leg, not a retransmission
        assert second.uri.startswith("sip:0901234567@")
        await up.answer(second, 502, to_tag="u1")  # the last trunk fails too
        cdr = await _wait_cdr(pbx, app_id)
        assert (cdr.status_detail, cdr.sip_code, cdr.klass) == ("ERROR", 502, "trunking")
        assert len(await _cdrs(pbx, app_id)) == 1
        # Nothing more goes to either carrier (each got its ACK only).
        assert not [m for m in await down.collect(0.3) + await up.collect(0.3) if _is_invite(m)]
    finally:
        for p in (agent, down, up):
            p.close()


@sqlite_only
@pytest.mark.parametrize(("provisional", "final"), [(180, 503), (None, 486), (None, 404)])
async def test_no_failover_once_it_rang_or_for_the_numbers_own_answer(
    pbx: Pbx, provisional: int | None, final: int
) -> None:
    app_id = await _app_with_agent(pbx)
    down, up = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    await pbx.store.add_trunk(app_id, "down", host="127.0.0.1", port=down.port)
    await pbx.store.add_trunk(app_id, "up", host="127.0.0.1", port=up.port, priority=1)
    await pbx.directory.check()
    agent = await _answered_agent(pbx, app_id, "0901234567")
    try:
        first = await down.recv(_is_invite)
        assert isinstance(first, Request)
        if provisional is not None:
            await down.answer(first, provisional, to_tag="d1")
        await down.answer(first, final, to_tag="d1")
        cdr = await _wait_cdr(pbx, app_id)
        assert cdr.sip_code == final
        assert not [m for m in await up.collect(0.5) if _is_invite(m)]
    finally:
        for p in (agent, down, up):
            p.close()
