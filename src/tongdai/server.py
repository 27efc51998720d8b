"""The composition root: the only place where tongdai's objects are wired together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import uvicorn

from tongdai import __version__
from tongdai.api.app import create_api
from tongdai.bus import InProcessBus, RedisBus, open_bus
from tongdai.demo import demo_text, ensure_demo
from tongdai.keys import load_or_create_key
from tongdai.media.relay import RelayEngine
from tongdai.media.serve import recording_routes
from tongdai.media.urls import RecordingSigner, load_or_create_secret
from tongdai.pbx.calls import CallService
from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.pbx.directory import CachedStore, DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.pbx.registrar import Registrar
from tongdai.pbx.router import SipRouter
from tongdai.pbx.throttle import FailureThrottle
from tongdai.settings import Settings
from tongdai.sip.digest import DigestServer
from tongdai.sip.endpoint import Endpoint
from tongdai.store.protocol import Store
from tongdai.store.sql import open_store
from tongdai.transport.shell import SipShell

log = logging.getLogger("tongdai")

USER_AGENT = f"tongdai/{__version__}"


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Pbx:
    """A running tongdai: what tests and the CLI need to reach."""

    settings: Settings
    store: Store
    bus: InProcessBus | RedisBus
    shell: SipShell
    location: Location
    directory: DeviceDirectory
    registrar: Registrar
    calls: CallService
    cdrs: CdrWriter
    media: RelayEngine
    http: uvicorn.Server | None = None

    @property
    def sip_port(self) -> int:
        return self.shell.port

    def http_port(self) -> int:
        if self.http is not None and self.http.servers:
            for sock in self.http.servers[0].sockets:
                return int(sock.getsockname()[1])
        return self.settings.http_port


async def build(settings: Settings) -> Pbx:
    """Open storage and bind SIP and media; HTTP is served by ``serve``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url)
    bus = open_bus(settings.bus_url)
    await bus.start()
    wall: Callable[[], float] = time.time
    endpoint = Endpoint(host=settings.sip_host, port=settings.sip_port, user_agent=USER_AGENT)
    shell = SipShell(endpoint=endpoint, host=settings.sip_host, port=settings.sip_port)
    location = Location(store=store, bus=bus, wall_clock=wall)
    directory = DeviceDirectory(store=store)
    digest = DigestServer(
        realm=settings.domain, secret=load_or_create_key(settings.data_dir, "sip-nonce.key"),
        nonce_lifetime=settings.nonce_lifetime, algorithms=settings.digest_algorithm_list,
    )
    throttle = FailureThrottle(
        limit=settings.auth_fail_limit, window=settings.auth_fail_window,
        block=settings.auth_block_seconds,
    )
    registrar = Registrar(
        settings=settings, directory=directory, location=location, digest=digest,
        throttle=throttle, respond=shell.send_response, wall_clock=wall,
    )
    router = SipRouter(registrar=registrar, shell=shell, user_agent=USER_AGENT)
    media = RelayEngine(
        host=settings.sip_host, port_range=settings.rtp_port_range,
        recordings_dir=settings.recordings_dir,
    )
    cdrs = CdrWriter(store=store)
    calls = CallService(
        settings=settings, store=store, bus=bus, shell=shell, location=location,
        directory=directory, digest=digest, media=media, cdrs=cdrs, throttle=throttle,
        wall_clock=wall,
    )
    router.calls = calls
    shell.set_user(router)
    await location.restore()
    await directory.start()
    await shell.start()
    # With port 0 the OS picked the SIP port: tell the endpoint so Via/Contact are right.
    endpoint.port = shell.port
    calls.set_local_port(shell.port)
    await media.start()
    await location.start()
    await cdrs.start()
    await calls.start()
    return Pbx(settings=settings, store=store, bus=bus, shell=shell, location=location,
               directory=directory,
               registrar=registrar, calls=calls, cdrs=cdrs, media=media)


def http_app(pbx: Pbx) -> object:
    s = pbx.settings
    signer = RecordingSigner(
        load_or_create_secret(s.data_dir), s.base_url, s.recording_url_ttl
    )
    return create_api(
        settings=s, store=cast(Store, CachedStore(pbx.directory)), bus=pbx.bus,
        calls=pbx.calls, recordings=signer,
        extra_routes=recording_routes(signer, s.recordings_dir),
    )


async def shutdown(pbx: Pbx) -> None:
    await pbx.calls.stop()
    await pbx.cdrs.stop()
    await pbx.location.stop()
    await pbx.directory.stop()
    await pbx.shell.stop()
    await pbx.media.stop()
    await pbx.bus.close()
    await pbx.store.close()


async def serve(
    settings: Settings, *, demo: bool = False, on_ready: Callable[[Pbx], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    pbx = await build(settings)
    info = await ensure_demo(pbx.store, settings) if demo else None
    _tune_gc()
    config = uvicorn.Config(
        http_app(pbx), host=settings.http_host, port=settings.http_port,  # type: ignore[arg-type]
        log_level="warning", lifespan="on", ws_ping_interval=settings.ws_ping_interval,
    )
    server = _HttpServer(config)
    pbx.http = server
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    http_task = asyncio.create_task(server.serve(), name="http")
    try:
        while not server.started:
            if http_task.done():
                await http_task
                raise SystemExit(1)
            await asyncio.sleep(0.02)
        _print_banner(pbx, info)
        if on_ready is not None:
            on_ready(pbx)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, http_task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(http_task, 10)
        await shutdown(pbx)
        print("tongdai stopped", flush=True)


def _tune_gc() -> None:
    """Keep the garbage collector off the signalling path.

    Everything loaded at start-up (SQLAlchemy, FastAPI, pydantic: hundreds of thousands
    of objects) lives as long as the process: freezing it keeps full collections from
    walking it again and again, and a larger first generation makes young collections
    rarer under a flood of short-lived SIP messages.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _print_banner(pbx: Pbx, info: dict[str, object] | None) -> None:
    s = pbx.settings
    db = "PostgreSQL" if "postgresql" in s.db_url else "SQLite"
    lines = [
        f"tongdai {__version__} is running",
        f"  SIP       udp+tcp {s.sip_host}:{pbx.sip_port}  (domain/realm {s.domain})",
        f"  Open API  http://{s.http_host}:{pbx.http_port()}  (docs: /docs)",
        f"  RTP       {s.sip_host} ports {s.rtp_ports}",
        f"  data      {s.data_dir.resolve()}  ({db})",
        "  stop with Ctrl-C",
    ]
    print("\n".join(lines), flush=True)
    if info is not None:
        print(demo_text(info, s), flush=True)


def main(settings: Settings, *, demo: bool = False) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Migration chatter is for `tongdai db upgrade`, not for every start.
    if settings.log_level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # uvloop is optional; asyncio's loop works, slower
        runner = asyncio.run
    try:
        runner(serve(settings, demo=demo))
    except OSError as exc:
        print(f"tongdai: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
