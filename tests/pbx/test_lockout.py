"""Nobody can lock an agent out by failing her password: over real UDP sockets, from
several loopback source addresses (127.0.0.x are all local)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pbx.conftest import UdpClient
from tests.pbx.test_registrar import Phone

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx, build, shutdown
from tongdai.settings import load_settings
from tongdai.sip import digest
from tongdai.sip.message import Response

ATTACKER, ALICE, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
WINDOW, BLOCK = 1, 4  # seconds: short, so a test sees a whole block go by

_n = itertools.count()

INVITE = """INVITE sip:0901234567@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {host}:@PORT@;branch=z9hG4bKlock{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=l{n}
To: <sip:0901234567@127.0.0.1>
Call-ID: lock-{n}
CSeq: 1 INVITE
Contact: <sip:alice@{host}:@PORT@>
{auth}Content-Length: 0

"""


@pytest.fixture
async def pbx(tmp_path: Path, db_url: str) -> AsyncIterator[Pbx]:
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, sip_port=0, rtp_ports="42400-42499",
        auth_fail_window=WINDOW, auth_block_seconds=BLOCK,
    )
    p = await build(settings)
    app = await p.store.create_app("t")
    await p.store.add_device(app.app_id, "alice",
                             digest_keys("alice", settings.domain, "alice-secret"))
    # Another tenant's devices: a registered source may send INVITEs (a stranger's are
    # refused before authentication, RFC 3261 §26.3.2.2).
    other = await p.store.create_app("o")
    await p.store.add_device(other.app_id, "mallory",
                             digest_keys("mallory", settings.domain, "mallory-pw"))
    await p.store.add_device(other.app_id, "carol",
                             digest_keys("carol", settings.domain, "carol-pw"))
    try:
        yield p
    finally:
        await shutdown(p)


@pytest.fixture
async def clients(pbx: Pbx) -> AsyncIterator[dict[str, UdpClient]]:
    cs = {h: UdpClient(pbx.sip_port, host=h) for h in (ATTACKER, ALICE, OTHER)}
    try:
        assert (await Phone(cs[ATTACKER], "mallory", "mallory-pw").register()).status == 200
        assert (await Phone(cs[OTHER], "carol", "carol-pw").register()).status == 200
        yield cs
    finally:
        for c in cs.values():
            c.close()


async def invite(client: UdpClient, host: str, password: str) -> Response:
    """An INVITE as alice from ``client``, answering the 407 with ``password``."""
    first = await client.request(INVITE.format(host=host, n=next(_n), auth=""))
    if first.status != 407:
        return first
    value = digest.authorization(
        first.headers.get("proxy-authenticate") or "", method="INVITE",
        uri="sip:0901234567@127.0.0.1", username="alice", password=password,
        cnonce=f"c{next(_n)}")
    return await client.request(
        INVITE.format(host=host, n=next(_n), auth=f"Proxy-Authorization: {value}\n"))


async def guess_ten_times(client: UdpClient) -> None:
    for i in range(10):
        assert (await Phone(client, "alice", f"guess{i}").register()).status == 403


async def test_wrong_passwords_from_a_stranger_do_not_lock_alice_out(
    pbx: Pbx, clients: dict[str, UdpClient]
) -> None:
    started = time.monotonic()
    await guess_ten_times(clients[ATTACKER])
    # Alice, with her password, from her own address: registered ...
    ok = await Phone(clients[ALICE], "alice", "alice-secret").register()
    assert ok.status == 200
    assert pbx.location.is_registered("alice")
    # ... and her calls pass authentication (the dial plan answers, not a 403).
    call = await invite(clients[ALICE], ALICE, "alice-secret")
    assert call.status not in (403, 407)
    # The attacker is refused even with the right password, by REGISTER or INVITE.
    assert (await Phone(clients[ATTACKER], "alice", "alice-secret").register()).status == 403
    assert (await invite(clients[ATTACKER], ATTACKER, "alice-secret")).status == 403
    assert time.monotonic() - started < BLOCK


async def test_the_attacker_stays_blocked_for_the_whole_period(
    pbx: Pbx, clients: dict[str, UdpClient]
) -> None:
    attacker = clients[ATTACKER]
    await guess_ten_times(attacker)
    blocked_at = time.monotonic()
    await asyncio.sleep(WINDOW + 0.2)  # the counting window is over; the block is not
    # Failed INVITEs for alice meanwhile, from the attacker and from another address,
    # reopen nothing early.
    assert (await invite(attacker, ATTACKER, "wrong")).status == 403
    assert (await invite(clients[OTHER], OTHER, "wrong")).status == 403
    assert (await Phone(attacker, "alice", "alice-secret").register()).status == 403
    await asyncio.sleep(max(0.0, blocked_at + BLOCK - 0.8 - time.monotonic()))
    assert (await Phone(attacker, "alice", "alice-secret").register()).status == 403
    # When the period is over the right password works again.
    await asyncio.sleep(max(0.0, blocked_at + BLOCK + 0.3 - time.monotonic()))
    assert (await Phone(attacker, "alice", "alice-secret").register()).status == 200
