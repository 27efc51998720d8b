"""Time from an agent's answer to both parties hearing each other, through a flow.

A carrier (a Python UDP SIP peer bound to the app's trunk address) calls a DID whose
flow is ``{queue: sales}``: tongdai answers it, plays hold music, and rings the
queue's one agent (a registered Python UDP SIP phone). The carrier sends RTP every
20 ms from tongdai's answer on, as a phone does. The agent answers with SDP and
starts sending its own RTP at once. Measured per call, on one clock:

- agent hears: from the agent's 200 OK leaving the agent to the first RTP packet of
  the caller (its payload, not tongdai's) arriving at the agent;
- caller hears: from the same 200 OK to the first RTP packet of the agent arriving
  at the caller (hold music does not count).

Both include the caller's 20 ms packetisation (its next packet is due 0-20 ms after
the answer). Anchor, same run: the same calls to a DID without a flow (it rings the
agent directly; the caller starts its RTP when it receives the 200).
Also printed: tongdai's CPU-seconds per call of each kind (the machine is shared).

    python bench/answer_to_audio_bench.py [--calls 50] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).parent))
from sipbench import Tongdai, cpu_seconds, free_port

from tongdai.sip import digest
from tongdai.sip.message import Request, Response, make_response, serialize
from tongdai.sip.parser import parse_message
from tongdai.sip.sdp import SessionDescription

FLOW_DID = "02873000001"
PLAIN_DID = "02873000002"
CALLER_BYTE = 0x11  # payload byte of the caller's RTP
AGENT_BYTE = 0x22  # payload byte of the agent's RTP
PTIME = 0.02


def sdp(port: int) -> bytes:
    return (
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    ).encode()


def media_addr(body: bytes) -> tuple[str, int]:
    d = SessionDescription.parse(body)
    m = next(m for m in d.media if m.kind == "audio")
    conn = m.connection or d.connection
    host = conn.address if conn is not None else "127.0.0.1"
    return host, m.port


def rtp(seq: int, byte: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) \
        + bytes((byte,)) * 160


class Rtp(asyncio.DatagramProtocol):
    """An RTP socket that notes when the first packet with ``wanted`` payload came."""

    def __init__(self) -> None:
        self.wanted = 0
        self.first: float | None = None
        self.heard = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.first is None and len(data) > 12 and data[12] == self.wanted:
            self.first = time.monotonic()
            self.heard.set()

    async def send_every(self, dest: tuple[str, int], byte: int, ssrc: int) -> None:
        seq = 0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while True:
            assert self.transport is not None
            self.transport.sendto(rtp(seq, byte, ssrc), dest)
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * PTIME - loop.time()))


class Sip(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.on_request: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = parse_message(data)
        except Exception:  # a keep-alive or garbage
            return
        self.inbox.put_nowait(msg)

    def send(self, data: bytes | Request | Response, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data if isinstance(data, bytes) else serialize(data), dest)

    async def next(self, pred: object, wait: float = 10.0) -> Request | Response:
        end = time.monotonic() + wait
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), max(0.01, end - time.monotonic()))
            if callable(pred) and pred(msg):
                return msg


@dataclass
class Sample:
    agent_hears: float
    caller_hears: float


@dataclass
class Bench:
    server: tuple[str, int]
    carrier: Sip
    carrier_port: int
    agent: Sip
    agent_port: int
    n: int = 0
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    async def register(self, password: str) -> None:
        def text(cseq: int, auth: str) -> bytes:
            lines = [
                "REGISTER sip:127.0.0.1 SIP/2.0",
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.agent_port};branch=z9hG4bKr{cseq};rport",
                "Max-Forwards: 70", "From: <sip:agent@127.0.0.1>;tag=reg",
                "To: <sip:agent@127.0.0.1>", "Call-ID: reg-agent", f"CSeq: {cseq} REGISTER",
                f"Contact: <sip:agent@127.0.0.1:{self.agent_port}>", "Expires: 3600",
            ]
            if auth:
                lines.append(f"Authorization: {auth}")
            return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

        self.agent.send(text(1, ""), self.server)
        chal = await self.agent.next(lambda m: isinstance(m, Response) and m.status >= 200)
        assert isinstance(chal, Response) and chal.status == 401, chal
        auth = digest.authorization(chal.headers.get("www-authenticate") or "",
                                    method="REGISTER", uri="sip:127.0.0.1", username="agent",
                                    password=password, cnonce="b3nch")
        assert auth is not None
        self.agent.send(text(2, auth), self.server)
        ok = await self.agent.next(lambda m: isinstance(m, Response) and m.status >= 200)
        assert isinstance(ok, Response) and ok.status == 200, ok

    async def call(self, did: str, kind: str) -> None:
        self.n += 1
        n = self.n
        loop = asyncio.get_running_loop()
        _, c_rtp = await loop.create_datagram_endpoint(Rtp, local_addr=("127.0.0.1", 0))
        _, a_rtp = await loop.create_datagram_endpoint(Rtp, local_addr=("127.0.0.1", 0))
        c_rtp.wanted, a_rtp.wanted = AGENT_BYTE, CALLER_BYTE
        assert c_rtp.transport is not None and a_rtp.transport is not None
        c_port = c_rtp.transport.get_extra_info("sockname")[1]
        a_port = a_rtp.transport.get_extra_info("sockname")[1]
        call_id = f"bench-{n}-{time.monotonic_ns()}"
        body = sdp(c_port)
        invite = (
            f"INVITE sip:{did}@127.0.0.1:{self.server[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.carrier_port};branch=z9hG4bKc{n}i;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:0901000{n:03d}@127.0.0.1>;tag=c{n}\r\n"
            f"To: <sip:{did}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:carrier@127.0.0.1:{self.carrier_port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.carrier.send(invite, self.server)
        tasks: list[asyncio.Task[None]] = []

        def caller_ok(m: Request | Response) -> bool:
            return isinstance(m, Response) and m.status >= 200 and m.call_id == call_id

        async def caller_side() -> Response:
            ok = await self.carrier.next(caller_ok, 30)
            assert isinstance(ok, Response) and ok.status == 200, ok
            to = ok.headers.get("to") or ""
            contact = (ok.headers.get("contact") or "").strip("<>").split(">")[0]
            ack = (
                f"ACK {contact} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.carrier_port};branch=z9hG4bKc{n}a;rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:0901000{n:03d}@127.0.0.1>;tag=c{n}\r\n"
                f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            self.carrier.send(ack, self.server)
            tasks.append(asyncio.create_task(
                c_rtp.send_every(media_addr(ok.body), CALLER_BYTE, 0x1000 + n)))
            return ok

        caller = asyncio.create_task(caller_side())
        inv = await self.agent.next(lambda m: isinstance(m, Request) and m.method == "INVITE",
                                    30)
        assert isinstance(inv, Request)
        self.agent.send(make_response(inv, 180, to_tag=f"a{n}"), self.server)
        await asyncio.sleep(0.05)  # ringing
        ok = make_response(inv, 200, to_tag=f"a{n}", body=sdp(a_port),
                           content_type="application/sdp")
        ok.headers.add("contact", f"<sip:agent@127.0.0.1:{self.agent_port}>")
        raw = serialize(ok)
        t0 = time.monotonic()
        self.agent.send(raw, self.server)
        tasks.append(asyncio.create_task(
            a_rtp.send_every(media_addr(inv.body), AGENT_BYTE, 0x2000 + n)))
        answered = await caller
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await c_rtp.heard.wait()
                await a_rtp.heard.wait()
        if c_rtp.first is not None and a_rtp.first is not None:
            self.samples.setdefault(kind, []).append(
                Sample(a_rtp.first - t0, c_rtp.first - t0))
        else:
            print(f"  call {n} ({kind}): no audio both ways within 5 s", file=sys.stderr)
        # The caller hangs up.
        to = answered.headers.get("to") or ""
        contact = (answered.headers.get("contact") or "").strip("<>").split(">")[0]
        bye = (
            f"BYE {contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.carrier_port};branch=z9hG4bKc{n}b;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:0901000{n:03d}@127.0.0.1>;tag=c{n}\r\n"
            f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        self.carrier.send(bye, self.server)
        abye = await self.agent.next(lambda m: isinstance(m, Request) and m.method == "BYE")
        assert isinstance(abye, Request)
        self.agent.send(make_response(abye, 200), self.server)
        await self.carrier.next(lambda m: isinstance(m, Response) and m.call_id == call_id
                                and m.cseq[1] == "BYE")
        for t in tasks:
            t.cancel()
        c_rtp.transport.close()
        a_rtp.transport.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


def cli(td: Tongdai, *args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "tongdai", *args, "--json"], env=td.env,
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert isinstance(got, dict)
    return got


async def run(td: Tongdai, carrier_port: int, calls: int) -> None:
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", td.sip_port)
    _, carrier = await loop.create_datagram_endpoint(
        Sip, local_addr=("127.0.0.1", carrier_port))
    _, agent = await loop.create_datagram_endpoint(Sip, local_addr=("127.0.0.1", 0))
    assert agent.transport is not None
    b = Bench(server=server, carrier=carrier, carrier_port=carrier_port, agent=agent,
              agent_port=agent.transport.get_extra_info("sockname")[1])
    await b.register("agent-secret-pw")
    await asyncio.sleep(1.5)  # the flow runtime sees the registration
    cpu: dict[str, float] = {}
    for kind, did in (("plain DID -> device (anchor)", PLAIN_DID),
                      ("flow DID -> queue -> agent", FLOW_DID)):
        await b.call(did, kind)  # warm-up, not counted
        b.samples.pop(kind, None)
        c0 = cpu_seconds(td.pid)
        for _ in range(calls):
            await b.call(did, kind)
            await asyncio.sleep(0.1)
        cpu[kind] = cpu_seconds(td.pid) - c0
    print(f"\n{'call':<30} {'n':>4} {'agent hears p50/p99 ms':>24} "
          f"{'caller hears p50/p99 ms':>25} {'cpu-s/call':>11}")
    for kind, got in b.samples.items():
        a = [s.agent_hears for s in got]
        c = [s.caller_hears for s in got]
        print(f"{kind:<30} {len(got):>4} {pct(a, .5):>11.1f} / {pct(a, .99):<10.1f} "
              f"{pct(c, .5):>12.1f} / {pct(c, .99):<10.1f} {cpu[kind] / calls:>11.4f}")
    both = [max(s.agent_hears, s.caller_hears) for s in b.samples.get(
        "flow DID -> queue -> agent", [])]
    print(f"\nflow: both hear each other p50 {pct(both, .5):.1f} ms, p99 {pct(both, .99):.1f} ms "
          "(target < 50 ms; includes up to 20 ms of the caller's packetisation)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--record", action="store_true", help="the app records its calls")
    args = ap.parse_args()
    carrier_port = free_port()
    td = Tongdai.create()
    subprocess.run([sys.executable, "-m", "tongdai", "db", "init"], env=td.env, check=True,
                   capture_output=True)
    app_id = str(cli(td, "app", "create", "bench")["app_id"])
    td.provision(f"await store.update_app({app_id!r}, record_calls={args.record})")
    cli(td, "device", "add", "--app", app_id, "agent", "--password", "agent-secret-pw",
        "--extension", "101")
    cli(td, "trunk", "add", "--app", app_id, "carrier", "--host", "127.0.0.1", "--port",
        str(carrier_port))
    cli(td, "did", "add", "--app", app_id, FLOW_DID, "--device", "agent")
    cli(td, "did", "add", "--app", app_id, PLAIN_DID, "--device", "agent")
    cli(td, "queue", "add", "--app", app_id, "sales", "--agents", "agent", "--wrapup", "0")
    flow = td.data_dir / "flow.yaml"
    flow.write_text("queue: sales\n")
    cli(td, "flow", "set", "--app", app_id, "--did", FLOW_DID, str(flow))
    td.start()
    try:
        print(f"{args.calls} calls of each kind, recording {'on' if args.record else 'off'}")
        asyncio.run(run(td, carrier_port, args.calls))
    finally:
        td.stop()

if __name__ == "__main__":
    main()
