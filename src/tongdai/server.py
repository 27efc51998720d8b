"""The composition root: the only place where tongdai's objects are wired together."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import resource
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tongdai import __version__, logs
from tongdai.admin.demo import console_login
from tongdai.admin.http import admin_routes
from tongdai.admin.live import live_calls, queue_probe
from tongdai.api.access_log import AccessLog
from tongdai.api.app import create_api
from tongdai.api.events_ws import app_event_routes
from tongdai.appstream.service import AppStream
from tongdai.bus import EventBus, open_bus
from tongdai.clock import Clock
from tongdai.demo import demo_text, start_demo
from tongdai.keys import load_or_create_key, store_key
from tongdai.media.prompts import PromptLibrary
from tongdai.media.relay import RelayEngine
from tongdai.media.rtpengine import RtpengineEngine
from tongdai.media.serve import recording_routes
from tongdai.media.urls import RecordingSigner, load_or_create_secret
from tongdai.ops import (
    BusLag,
    Metrics,
    ObservedBus,
    Operations,
    PbxCollector,
    Readiness,
    Sources,
    bus_check,
    sip_check,
    store_check,
)
from tongdai.pbx.b2bua import B2bua, Limits, Messages
from tongdai.pbx.b2bua.driver import CallDriver, RandomIds
from tongdai.pbx.b2bua.routing import Routing
from tongdai.pbx.capabilities import USER_AGENT
from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.pbx.dialplan import DialPlan
from tongdai.pbx.directory import CachedStore, DeviceDirectory
from tongdai.pbx.flow.acd import Acd
from tongdai.pbx.flow.directory import FlowDirectory
from tongdai.pbx.flow.runtime import FlowRuntime, devices_in_calls
from tongdai.pbx.flow.targets import Targets
from tongdai.pbx.invite_auth import InviteAuth
from tongdai.pbx.location import Location
from tongdai.pbx.recovery import node_id, recover
from tongdai.pbx.registrar import Registrar
from tongdai.pbx.router import SipRouter
from tongdai.settings import Settings
from tongdai.sip.digest import DigestServer
from tongdai.sip.endpoint import Endpoint
from tongdai.store.errors import SchemaAhead
from tongdai.store.protocol import Store
from tongdai.store.sealing import KeyMismatch
from tongdai.store.sql import open_store
from tongdai.throttle import AuthThrottle
from tongdai.transport.shell import SipShell
from tongdai.transport.tcp import TcpLimits
from tongdai.transport.ws import WsConfig
from tongdai.web import phone_routes
from tongdai.webhooks.service import WebhookService

log = logging.getLogger("tongdai")


class StartError(Exception):
    """tongdai cannot start; the message says why in one sentence, naming the setting."""


def _listen_error(exc: OSError, setting: str, host: str, port: int) -> StartError:
    """Name the setting to change: "[Errno 98] address already in use" does not."""
    host_setting = setting.replace("_PORT", "_HOST")
    # uvloop raises its own OSError, the system's error as the cause.
    cause = exc.__cause__
    if exc.errno is None and isinstance(cause, OSError):
        exc = cause
    if exc.errno == errno.EADDRINUSE:
        return StartError(
            f"{setting} {port} is in use on {host} (another tongdai, or another server, is "
            f"listening there); stop it or set {setting} to a free port")
    if exc.errno == errno.EACCES:
        return StartError(
            f"{setting} {port} needs privileges this process does not have; choose a port "
            "above 1023")
    reason = exc.strerror or str(exc)
    return StartError(f"cannot listen on {host} port {port} ({host_setting}, {setting}): "
                      f"{reason}")


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server certificate for wss, from TONGDAI_TLS_CERT and TONGDAI_TLS_KEY."""
    if not settings.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise StartError(
            f"cannot load TONGDAI_TLS_CERT {settings.tls_cert} with TONGDAI_TLS_KEY"
            f" ({reason}); give PEM files of a certificate and its private key") from None
    return ctx


def _websockets(settings: Settings, tls: ssl.SSLContext | None) -> list[WsConfig]:
    """The SIP over WebSocket listeners that are on (RFC 7118)."""
    origins = settings.sip_ws_origin_list
    out = []
    if settings.sip_ws_port:
        out.append(WsConfig(scheme="ws", host=settings.sip_host, port=settings.sip_ws_port,
                            origins=origins))
    if settings.sip_wss_port and tls is not None:
        out.append(WsConfig(scheme="wss", host=settings.sip_host, port=settings.sip_wss_port,
                            tls=tls, origins=origins))
    return out


def _http_socket(settings: Settings) -> socket.socket:
    """The Open API's listening socket, bound here so a failure names its setting."""
    host, port = settings.http_host, settings.http_port
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _listen_error(exc, "TONGDAI_HTTP_PORT", host, port) from None
    return sock


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
    bus: EventBus
    shell: SipShell
    location: Location
    directory: DeviceDirectory
    registrar: Registrar
    calls: CallDriver
    cdrs: CdrWriter
    media: RelayEngine | RtpengineEngine
    http: uvicorn.Server | None = None
    webhooks: WebhookService | None = None
    metrics: Metrics | None = None
    bus_lag: BusLag | None = None
    app_events: AppStream | None = None

    @property
    def sip_port(self) -> int:
        return self.shell.port

    def http_port(self) -> int:
        if self.http is not None and self.http.servers:
            for sock in self.http.servers[0].sockets:
                return int(sock.getsockname()[1])
        return self.settings.http_port


def _media_engine(settings: Settings) -> RelayEngine | RtpengineEngine:
    """The built-in relay, or rtpengine when TONGDAI_MEDIA_ENGINE names one."""
    rtpengine = settings.rtpengine_address
    if rtpengine is None:
        return RelayEngine(host=settings.sip_host, port_range=settings.rtp_port_range,
                           recordings_dir=settings.recordings_dir)
    log.warning("media through rtpengine at %s:%d: call flows (IVR, queues, voicemail) "
                "and WebRTC legs are not available", *rtpengine)
    spool = settings.rtpengine_recording_dir
    # Activity is polled from rtpengine: often enough for the media timeout, no more.
    return RtpengineEngine(host=rtpengine[0], port=rtpengine[1],
                           recordings_dir=settings.recordings_dir,
                           spool=Path(spool) if spool else None,
                           poll_interval=min(5.0, settings.media_timeout / 4))


async def build(settings: Settings) -> Pbx:
    """Open storage and bind SIP and media; HTTP is served by ``serve``."""
    tls = _tls_context(settings)
    # Owner-only: the database, the keys and the recordings live here.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = await open_store(settings.db_url, key=store_key(settings.data_dir))
    # Before serving: the calls a crash cut off get their CDRs first.
    node = node_id(settings)
    await recover(store=store, node=node, recordings_dir=settings.recordings_dir)
    bus = open_bus(settings.bus_url)
    await bus.start()
    wall: Clock = time.time
    # The PBX publishes through the webhooks' outbox: an event an endpoint wants is
    # in the database before it is on the bus.
    # Below the outbox, every event (webhook.disabled too) is numbered in its app's
    # stream, in publication order.
    app_events = AppStream.open(settings=settings, store=store)
    await app_events.start()
    webhooks = WebhookService(store=store, bus=app_events.wrap(bus), settings=settings,
                              node=node, wall_clock=wall)
    await webhooks.start()
    endpoint = Endpoint(host=settings.sip_host, port=settings.sip_port, user_agent=USER_AGENT)
    # On PostgreSQL several nodes may share the database: a device registered at
    # another node is looked up there (pbx/shared_location.py).
    location = Location(store=store, devices=store, bus=webhooks.bus, wall_clock=wall,
                        shared=store if store.dialect == "postgresql" else None, node=node,
                        edges=settings.sip_edge_addresses)
    shell = SipShell(
        endpoint=endpoint, host=settings.sip_host, port=settings.sip_port,
        tcp_limits=TcpLimits(
            read_timeout=settings.tcp_read_timeout, idle_timeout=settings.tcp_idle_timeout,
            max_connections=settings.tcp_max_connections,
            max_per_source=settings.tcp_max_per_source,
        ),
        # A phone registered over TCP gets its calls over that connection: keep it.
        in_use=lambda peer: location.known_source(peer.transport, peer.host, peer.port),
        websockets=_websockets(settings, tls),
        # A browser whose websocket closed cannot be called: it is offline at once.
        on_unreachable=lambda peer: location.drop_source(peer.transport, peer.host,
                                                         peer.port),
    )
    directory = DeviceDirectory(store=store, clock=wall)
    digest = DigestServer(
        realm=settings.domain, secret=load_or_create_key(settings.data_dir, "sip-nonce.key"),
        nonce_lifetime=settings.nonce_lifetime, algorithms=settings.digest_algorithm_list,
    )
    throttle = AuthThrottle(
        scope="sip", address_limit=settings.auth_fail_address_limit,
        limit=settings.auth_fail_limit, user_limit=settings.auth_fail_user_limit,
        window=settings.auth_fail_window, block=settings.auth_block_seconds,
    )
    registrar = Registrar(
        settings=settings, directory=directory, location=location, digest=digest,
        throttle=throttle, respond=shell.send_response, wall_clock=wall,
    )
    router = SipRouter(registrar=registrar, shell=shell, user_agent=USER_AGENT)
    media = _media_engine(settings)
    cdrs = CdrWriter(store=store, node=node)
    metrics = Metrics()
    # The call layer: the pure B2BUA core, the lookups that route its calls, and the
    # asyncio driver that performs what the core decides.
    ids = RandomIds()
    dialplan = DialPlan(directory=directory, location=location)
    acd = Acd(clock=wall, registered=location.is_registered, in_call=set)
    flows = FlowRuntime(
        prompts=PromptLibrary(settings.prompts_dir), acd=acd, timezone=settings.timezone,
        targets=Targets(dialplan=dialplan, directory=directory), wall=wall,
        flows=FlowDirectory(store=store, directory=directory))
    # Flows need tongdai on the media path (prompts, DTMF); rtpengine only relays, so
    # with it a DID's flow is not run and the DID rings its device (docs/scaling.md).
    with_flows = flows if isinstance(media, RelayEngine) else None
    calls = CallDriver(
        core=B2bua(
            messages=Messages(domain=settings.domain, host=settings.sip_host,
                              port=settings.sip_port),
            limits=Limits(ring_timeout=settings.ring_timeout,
                          max_call_duration=settings.max_call_duration,
                          media_timeout=settings.media_timeout,
                          session_expires=settings.session_expires),
            ids=ids,
        ),
        sip=shell,
        routing=Routing(
            dialplan=dialplan, directory=directory, location=location,
            flows=with_flows.flows if with_flows is not None else None,
            auth=InviteAuth(digest=digest, directory=directory, throttle=throttle,
                            respond=shell.send_response,
                            edges=settings.sip_edge_addresses),
            respond=shell.send_response, new_call_id=ids.call_id, new_tag=ids.tag,
            wall_clock=wall, domain=settings.domain,
            record_default=settings.record_calls_default,
        ),
        media=media, cdrs=cdrs, location=location, wall_clock=wall,
        # The calls' events pass the metrics on their way to the bus (ops/observed.py).
        bus=ObservedBus(webhooks.bus, metrics.call_event),
        checkpoint_interval=settings.checkpoint_interval, media_timeout=settings.media_timeout,
        flows=with_flows,
    )
    acd.in_call = lambda: devices_in_calls(calls.core.calls.values())
    router.calls = calls
    shell.set_user(router)
    await location.restore()
    await directory.start()
    try:
        await shell.start()
    except OSError as exc:
        await shell.stop()
        await directory.stop()
        await webhooks.stop()
        await app_events.stop()
        await bus.close()
        await store.close()
        setting, port = {
            "ws": ("TONGDAI_SIP_WS_PORT", settings.sip_ws_port),
            "wss": ("TONGDAI_SIP_WSS_PORT", settings.sip_wss_port),
        }.get(shell.starting, ("TONGDAI_SIP_PORT", settings.sip_port))
        raise _listen_error(exc, setting, settings.sip_host, port) from None
    # With port 0 the OS picked the SIP port: tell the endpoint so Via/Contact are right.
    endpoint.port = shell.port
    calls.set_local_port(shell.port)
    await media.start()
    await location.start()
    await cdrs.start()
    await calls.start()
    lag = BusLag(bus=bus, histogram=metrics.bus_lag, wall_clock=wall)
    lag.start()
    return Pbx(settings=settings, store=store, bus=bus, shell=shell, location=location,
               directory=directory,
               registrar=registrar, calls=calls, cdrs=cdrs, media=media, webhooks=webhooks,
               metrics=metrics, bus_lag=lag,
               app_events=app_events)


def http_app(pbx: Pbx) -> object:
    s = pbx.settings
    signer = RecordingSigner(
        load_or_create_secret(s.data_dir), s.base_url, s.recording_url_ttl
    )
    # Made here, not by the Open API, so that its counters reach /metrics.
    throttle = AuthThrottle(
        scope="http", address_limit=s.api_auth_fail_limit, window=s.api_auth_fail_window,
        block=s.api_auth_block_seconds,
    )
    config = CachedStore(pbx.directory)
    routes = list(recording_routes(signer, s.recordings_dir))
    routes += phone_routes(domain=s.domain, ws_port=pbx.shell.ws_port("ws"),
                           wss_port=pbx.shell.ws_port("wss"))
    if pbx.app_events is not None:
        routes += app_event_routes(config=config, hub=pbx.app_events.hub, throttle=throttle,
                                   clock=time.time, ping_interval=s.ws_ping_interval)
    routes += admin_routes(store=pbx.store, settings=s, bus=pbx.bus, throttle=throttle,
                           live_calls=live_calls(pbx.calls.core), recordings=signer,
                           queues=queue_probe(pbx.calls.flows))
    api = AccessLog(create_api(
        settings=s, store=pbx.store, config=config, bus=pbx.bus,
        calls=pbx.calls, recordings=signer, throttle=throttle, extra_routes=routes,
    ))
    return _operations(pbx, api, throttle)


def _operations(pbx: Pbx, api: AccessLog, http_throttle: AuthThrottle) -> object:
    """/healthz, /readyz and /metrics in front of the Open API (ops/http.py)."""
    s = pbx.settings
    collector = PbxCollector(Sources(
        bindings=pbx.location, calls=pbx.calls.core, register=pbx.registrar,
        invite=pbx.calls.routing.auth, throttles=(pbx.registrar.throttle, http_throttle),
        media=pbx.media, bus=pbx.bus, webhooks=pbx.webhooks,
    ), wall_clock=time.time)
    ops = Operations(
        api, metrics=pbx.metrics or Metrics(), collector=collector,
        allow=s.metrics_allow_list,
        readiness=Readiness({"store": store_check(pbx.store), "sip": sip_check(pbx.shell),
                             "bus": bus_check(pbx.bus)}),
    )
    if s.trusted_proxy_list:
        # /metrics is allowed by client address, found by the Open API's rule: a
        # reverse proxy on loopback must not make every client look local.
        return ProxyHeadersMiddleware(ops, trusted_hosts=s.trusted_proxy_list)  # type: ignore[arg-type]
    return ops


async def shutdown(pbx: Pbx) -> None:
    await pbx.calls.stop()
    await pbx.cdrs.stop()
    await pbx.location.stop()
    await pbx.directory.stop()
    await pbx.shell.stop()
    await pbx.media.stop()
    if pbx.bus_lag is not None:
        await pbx.bus_lag.stop()
    if pbx.webhooks is not None:  # after everything that publishes
        await pbx.webhooks.stop()
    if pbx.app_events is not None:  # after the webhooks, which publish as they stop
        await pbx.app_events.stop()
    await pbx.bus.close()
    await pbx.store.close()


async def serve(
    settings: Settings, *, demo: bool = False, on_ready: Callable[[Pbx], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    http_sock = _http_socket(settings)
    try:
        pbx = await build(settings)
    except BaseException:
        http_sock.close()
        raise
    info = await start_demo(pbx.store, settings) if demo else None
    console = await console_login(pbx.store, settings) if info is not None else None
    _tune_gc()
    config = uvicorn.Config(
        http_app(pbx), host=settings.http_host, port=settings.http_port,  # type: ignore[arg-type]
        log_level="warning", lifespan="on", ws_ping_interval=settings.ws_ping_interval,
        # No permessage-deflate, even to clients that offer it (browsers and most
        # libraries do): the app event stream would compress every message once per
        # subscriber, three times the CPU of everything else it does per event.
        ws_per_message_deflate=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS);
        # the app applies TONGDAI_TRUSTED_PROXIES instead (api/app.py).
        proxy_headers=False,
        # Our logging (tongdai.logs) and our access log (AccessLog: no query strings).
        log_config=None, access_log=False,
    )
    server = _HttpServer(config)
    pbx.http = server
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    http_task = asyncio.create_task(server.serve(sockets=[http_sock]), name="http")
    try:
        while not server.started:
            if http_task.done():
                await http_task
                raise SystemExit(1)
            await asyncio.sleep(0.02)
        _print_banner(pbx, info, demo=demo, console=console)
        logs.event(
            log, "server.started", version=__version__,
            sip=f"{settings.sip_host}:{pbx.sip_port}",
            http=f"{settings.http_host}:{pbx.http_port()}",
            data_dir=str(settings.data_dir.resolve()),
            database="postgresql" if "postgresql" in settings.db_url else "sqlite",
        )
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
        logs.event(log, "server.stopped")
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


# Open files a process may ask for, at most, whatever its hard limit allows.
MAX_OPEN_FILES = 1 << 20


def _raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one.

    Every media leg holds two sockets and every SIP/TCP connection one; the soft limit
    most shells and service managers start a process with (1,024) would cap a PBX at
    a few hundred calls. The hard limit is the administrator's word on it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _print_banner(pbx: Pbx, info: dict[str, object] | None, *, demo: bool = False,
                  console: dict[str, str | None] | None = None) -> None:
    s = pbx.settings
    db = "PostgreSQL" if "postgresql" in s.db_url else "SQLite"
    lines = [
        f"tongdai {__version__} is running",
        f"  SIP       udp+tcp {s.sip_host}:{pbx.sip_port}  (domain/realm {s.domain})",
        *(f"  SIP {scheme.upper():<5} {scheme}://{s.sip_host}:{port}  (browsers, subprotocol sip)"
          for scheme in ("ws", "wss") if (port := pbx.shell.ws_port(scheme)) is not None),
        f"  Open API  http://{s.http_host}:{pbx.http_port()}  (docs: /docs)",
        *([f"  Softphone http://{s.http_host}:{pbx.http_port()}/phone  (sign in with a "
           "device's SIP user and password)"]
          if pbx.shell.ws_port("ws") or pbx.shell.ws_port("wss") else []),
        f"  Console   http://{s.http_host}:{pbx.http_port()}/console  (sign in with a key from"
        " 'tongdai admin-key create' or an operator's password; admin API: /admin/v1)",
        f"  RTP       {s.sip_host} ports {s.rtp_ports}",
        f"  data      {s.data_dir.resolve()}  ({db})",
        "  stop with Ctrl-C",
    ]
    print("\n".join(lines), flush=True)
    if info is not None:
        # With port 0 the OS chose: show the ports really in use.
        real = s.model_copy(update={"sip_port": pbx.sip_port, "http_port": pbx.http_port()})
        print(demo_text(info, real), flush=True)
        if console is not None:
            pw = console["password"] or "(changed since; remove the operator and restart)"
            print(f"Console (http://{s.http_host}:{pbx.http_port()}/console): sign in as "
                  f"operator {console['name']}, password {pw}", flush=True)
    elif demo:
        print("No demo app: this database already had apps when the demo first started"
              " (see tongdai app list).", flush=True)


def main(settings: Settings, *, demo: bool = False) -> int:
    logs.setup(settings.log_level, settings.log_style)
    _raise_open_file_limit()
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
    except (StartError, KeyMismatch, SchemaAhead) as exc:
        print(f"tongdai: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tongdai: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
