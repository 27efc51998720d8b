"""Readiness and bus metrics with the bus shared over Redis (through a proxy that can
cut it off)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.bus.conftest import REDIS_URL, require_redis
from tests.bus.proxy import RedisProxy

from tongdai.bus.events import Event
from tongdai.server import build, shutdown
from tongdai.settings import load_settings

from .test_operations import client, sample


async def test_readyz_names_the_bus_while_redis_is_cut_off(tmp_path: Path) -> None:
    await require_redis()
    target = urlsplit(REDIS_URL)
    proxy = RedisProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    prefix = f"tongdai-ops-{secrets.token_hex(4)}"
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42700-42799",
                                    bus_url=f"{proxy.url}?prefix={prefix}"))
    try:
        async with client(pbx) as c:
            assert (await c.get("/readyz")).status_code == 200
            # An event that went through Redis and back: its lag is measured.
            await pbx.bus.publish(Event(type="device.registered", app_id="a",
                                        sip_users=("alice",), ts=time.time() - 0.5))
            for _ in range(100):
                text = (await c.get("/metrics")).text
                if sample(text, "tongdai_bus_lag_seconds_count") == 1:
                    break
                await asyncio.sleep(0.02)
            assert sample(text, "tongdai_bus_lag_seconds_count") == 1
            lag = sample(text, "tongdai_bus_lag_seconds_sum")
            assert lag is not None and 0.5 <= lag < 5
            assert sample(text, "tongdai_bus_connected") == 1

            await proxy.sever()
            for _ in range(100):
                r = await c.get("/readyz")
                if r.status_code == 503:
                    break
                await asyncio.sleep(0.05)
            assert r.status_code == 503
            assert r.json()["not_ready"] == ["bus"]
            assert r.json()["checks"]["bus"] == "not connected"
            assert sample((await c.get("/metrics")).text, "tongdai_bus_connected") == 0

            await proxy.restore()
            for _ in range(100):
                if (await c.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (await c.get("/readyz")).status_code == 200
    finally:
        await shutdown(pbx)
        await proxy.sever()
