"""The shell's send path never raises: unreachable addresses end their transactions,
host names are resolved off the event loop (asyncio's loop and uvloop alike)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from tongdai.sip.endpoint import Endpoint
from tongdai.sip.events import RequestReceived, SipEvent, TransactionTimeout, TransportError
from tongdai.sip.message import Headers, Request, make_response
from tongdai.sip.parser import parse_message
from tongdai.sip.peer import Peer
from tongdai.transport.shell import SipShell

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS: dict[str, Runner] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


class Recorder:
    """A transaction user that keeps every event and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.events: list[SipEvent] = []
        self._new = asyncio.Event()

    def on_sip_event(self, event: SipEvent) -> None:
        self.events.append(event)
        self._new.set()

    async def wait_for(self, check: Callable[[SipEvent], bool], seconds: float = 5.0) -> SipEvent:
        async with asyncio.timeout(seconds):
            while True:
                for ev in self.events:
                    if check(ev):
                        return ev
                self._new.clear()
                await self._new.wait()


def _options(call_id: str) -> Request:
    h = Headers()
    h.add("from", "<sip:tongdai@127.0.0.1>;tag=t1")
    h.add("to", "<sip:carrier@example.invalid>")
    h.add("call-id", call_id)
    h.add("cseq", "1 OPTIONS")
    return Request(method="OPTIONS", uri="sip:carrier@example.invalid", headers=h)


async def _shell() -> tuple[SipShell, Recorder]:
    shell = SipShell(endpoint=Endpoint(host="127.0.0.1", port=0, t1=0.05), host="127.0.0.1",
                     port=0)
    rec = Recorder()
    shell.set_user(rec)
    await shell.start()
    shell.endpoint.port = shell.port
    return shell, rec


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_peer_of_the_other_address_family_ends_its_transaction(runner: str) -> None:
    async def main() -> None:
        shell, rec = await _shell()
        try:
            key = shell.send_request(_options("fam"), Peer("udp", "::1", 5060))
            await rec.wait_for(lambda e: isinstance(e, TransportError) and e.txn == key)
            assert shell.endpoint.live_transactions == 0
        finally:
            await shell.stop()

    RUNNERS[runner](main())


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_host_name_is_resolved_and_an_unknown_one_ends_its_transaction(runner: str) -> None:
    async def main() -> None:
        shell, rec = await _shell()
        far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        far.bind(("127.0.0.1", 0))
        far.setblocking(False)
        try:
            shell.send_request(_options("named"), Peer("udp", "localhost", far.getsockname()[1]))
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(far, 65535), 5)
            assert isinstance(parse_message(data), Request)
            key = shell.send_request(_options("unknown"), Peer("udp", "no-such-host.invalid", 5060))
            await rec.wait_for(
                lambda e: isinstance(e, TransportError | TransactionTimeout) and e.txn == key,
                seconds=10)
        finally:
            far.close()
            await shell.stop()

    RUNNERS[runner](main())


@pytest.mark.parametrize("runner", RUNNERS)
def test_timers_keep_firing_after_a_failed_send(runner: str) -> None:
    async def main() -> None:
        shell, rec = await _shell()
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(("127.0.0.1", 0))
        phone.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            shell.send_request(_options("bad"), Peer("udp", "::1", 5060))
            # An INVITE answered 486 from a Via whose received= is no address: the 486
            # goes to the real source and Timer G retransmits it until an ACK.
            port = phone.getsockname()[1]
            invite = (
                f"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
                f"branch=z9hG4bKtg1;received=bad..host\r\nFrom: <sip:a@x>;tag=1\r\n"
                f"To: <sip:x@127.0.0.1>\r\nCall-ID: tg\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70"
                f"\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            phone.sendto(invite, ("127.0.0.1", shell.port))
            ev = await rec.wait_for(lambda e: isinstance(e, RequestReceived))
            assert isinstance(ev, RequestReceived) and ev.txn is not None
            shell.send_response(ev.txn, make_response(ev.request, 486, to_tag="u1"))
            statuses = []
            async with asyncio.timeout(5):
                while statuses.count(486) < 3:
                    msg = parse_message(await loop.sock_recv(phone, 65535))
                    statuses.append(getattr(msg, "status", 0))
        finally:
            phone.close()
            await shell.stop()

    RUNNERS[runner](main())
