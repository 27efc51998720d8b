"""A real HTTP receiver for webhook tests and the benchmark: asyncio, HTTP/1.1 with
keep-alive, on an ephemeral loopback port. It checks every signature as a receiver
should (``tongdai.webhooks.signing.verify``) and records what it got."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tongdai.webhooks.signing import verify


@dataclass
class Received:
    delivery_id: str
    event: str
    body: dict[str, Any]
    signature_ok: bool
    at: float


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)  # any one may sign
    status: int = 200
    delay: float = 0.0  # seconds before answering
    # Set: each request waits, in ``held`` (arrival order), until its future is set;
    # it is answered with ``status`` as it is then.
    hold: bool = False
    held: list[asyncio.Future[None]] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Open keep-alive connections end too: the receiver is gone.
            for w in tuple(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    def unique(self) -> dict[str, Received]:
        """What arrived, once per delivery id (a retry after a lost answer repeats)."""
        out: dict[str, Received] = {}
        for r in self.got:
            out.setdefault(r.delivery_id, r)
        return out

    async def wait_for(self, n: int, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while len(self.unique()) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.unique())} of {n} deliveries arrived")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.hold:
                    gate = asyncio.get_running_loop().create_future()
                    self.held.append(gate)
                    await gate
                if self.status == 200:
                    sig = headers.get("x-tongdai-signature", "")
                    ok = any(verify(s, sig, body, now=time.time()) for s in self.secrets)
                    self.got.append(Received(
                        delivery_id=headers.get("x-tongdai-delivery", ""),
                        event=headers.get("x-tongdai-event", ""), body=json.loads(body),
                        signature_ok=ok, at=time.time()))
                    self.arrived.set()
                reason = b"OK" if self.status == 200 else b"Error"
                writer.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\n\r\n" % (self.status, reason))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class ThreadedReceiver:
    """A ``Receiver`` on its own event loop in a thread, for tests that are not async
    (the end-to-end tests drive tongdai as a separate process)."""

    def __init__(self, secrets: list[str]) -> None:
        self.receiver = Receiver(secrets=secrets)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, port: int) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.receiver.start(port))
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.receiver.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the webhook receiver did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None
