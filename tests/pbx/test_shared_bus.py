"""With TONGDAI_BUS_URL on Redis, another process sees the PBX's events."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest
from tests.pbx.conftest import UdpClient
from tests.pbx.test_registrar import Phone

from tongdai.bus import open_bus
from tongdai.pbx.credentials import digest_keys
from tongdai.server import build, shutdown
from tongdai.settings import load_settings


async def test_registration_event_reaches_another_process(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:6379/0?prefix=t{secrets.token_hex(6)}"
    watcher = open_bus(url)
    await watcher.start()
    if not getattr(watcher, "connected", True):
        await watcher.close()
        if os.environ.get("CI"):
            pytest.fail("Redis at 127.0.0.1:6379 is required in CI")
        pytest.skip("no Redis at 127.0.0.1:6379")
    sub = watcher.subscribe()
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="44000-44099",
                                    bus_url=url))
    client = UdpClient(pbx.sip_port)
    try:
        app = await pbx.store.create_app("b")
        await pbx.store.add_device(app.app_id, "alice",
                                   digest_keys("alice", pbx.settings.domain, "alice-secret"))
        assert (await Phone(client, "alice", "alice-secret").register()).status == 200
        ev = await asyncio.wait_for(sub.__anext__(), 5)
        assert ev.type == "device.registered"
        assert ev.app_id == app.app_id and ev.sip_users == ("alice",)
    finally:
        client.close()
        sub.close()
        await shutdown(pbx)
        await watcher.close()
