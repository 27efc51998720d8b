"""Click-to-call latency: HTTP request in → INVITE arriving at the agent's device.

Starts tongdai, registers a device (a raw UDP socket answering like a phone: digest
REGISTER, then "486 Busy" to every INVITE so each call ends at once), and times N
sequential ``POST /oapi/v1/call/click-to-call/{number}`` requests from the moment the
request is sent to the moment the INVITE is read from the device's socket. Anchor, same
run: the round trip of a bare ``GET /docs`` (FastAPI's static page) on the same server.

    python bench/c2c_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from sipbench import Tongdai, free_port

from tongdai.sip import digest
from tongdai.sip.message import Request, make_response, serialize
from tongdai.sip.parser import parse_message

REGISTER = (
    "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{b}\r\n"
    "From: <sip:agent@127.0.0.1>;tag=ag\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: agent-reg\r\n"
    "CSeq: {cseq} REGISTER\r\nContact: <sip:agent@127.0.0.1:{port}>\r\nExpires: 3600\r\n"
    "Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
)


def register(sock: socket.socket, server: tuple[str, int]) -> None:
    port = sock.getsockname()[1]
    sock.sendto(REGISTER.format(port=port, b=1, cseq=1, auth="").encode(), server)
    chal = parse_message(sock.recv(65535)).headers.get("www-authenticate") or ""
    value = digest.authorization(chal, method="REGISTER", uri="sip:127.0.0.1",
                                 username="agent", password="agent-password", cnonce="b")
    sock.sendto(REGISTER.format(port=port, b=2, cseq=2,
                                auth=f"Authorization: {value}\r\n").encode(), server)
    ok = parse_message(sock.recv(65535))
    assert getattr(ok, "status", 0) == 200, ok


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    td = Tongdai.create()
    http_port = int(td.env["TONGDAI_HTTP_PORT"])
    td.provision(
        "app = await store.create_app('bench')\n"
        "await store.add_device(app.app_id, 'agent', "
        "digest_keys('agent', settings.domain, 'agent-password'))\n"
        "await store.add_trunk(app.app_id, 'carrier', host='127.0.0.1', port=9)\n"
        "print(app.app_id, app.app_secret, file=open('creds', 'w'))"
    )
    app_id, secret = Path("creds").read_text().split()
    Path("creds").unlink()
    td.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", free_port()))
    sock.settimeout(5)
    server = ("127.0.0.1", td.sip_port)
    lat: list[float] = []
    anchor: list[float] = []
    try:
        register(sock, server)
        headers = {"x-auth-app-id": app_id,
                   "x-auth-app-hash": hashlib.sha256((app_id + secret).encode()).hexdigest()}
        body = json.dumps({"sipUser": "agent", "sipPassword": "agent-password"})
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            for i in range(args.calls + 20):
                t0 = time.perf_counter()
                r = http.post("/oapi/v1/call/click-to-call/0901234567", headers=headers,
                              content=body)
                assert r.status_code == 200, r.text
                while True:
                    msg = parse_message(sock.recv(65535))
                    if isinstance(msg, Request) and msg.method == "INVITE":
                        break
                t1 = time.perf_counter()
                # decline at once: the call ends at the agent, the number is never dialled
                sock.sendto(serialize(make_response(msg, 486, to_tag=f"t{i}")), server)
                if i >= 20:  # warm-up excluded
                    lat.append((t1 - t0) * 1000)
                t0 = time.perf_counter()
                http.get("/docs")
                if i >= 20:
                    anchor.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.005)  # let the ACK for the 486 arrive; absorb it next loop
    finally:
        td.stop()
        sock.close()
    print(f"click-to-call -> INVITE at the device ({len(lat)} calls): "
          f"median {statistics.median(lat):.2f} ms, p99 {pct(lat, 0.99):.2f} ms "
          f"(goal: median < 5 ms)")
    print(f"anchor GET /docs round trip: median {statistics.median(anchor):.2f} ms, "
          f"p99 {pct(anchor, 0.99):.2f} ms")


if __name__ == "__main__":
    main()
