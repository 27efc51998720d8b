"""A flood of silent TCP connections against one tongdai with few file descriptors.

Starts tongdai (as ``tongdai serve`` does) under RLIMIT_NOFILE=1024 and opens 1,100
TCP connections to its SIP port that never send a byte, first from one address, then
from 40 (127.0.1.x: all loopback). While the flood is held it prints, per run:

- connections held: how many the server keeps (the others it refused or replaced);
- the server's open file descriptors, out of its limit;
- whether the HTTP API (GET /openapi.json) and SIP over TCP (REGISTER with digest from
  another address, then OPTIONS) still answer, and how fast;
- time to reclaim: from the end of the flood until the server's descriptors are back
  to what it used before it (silent connections close after TONGDAI_TCP_READ_TIMEOUT).

Anchor, same run: the same flood against tongdai with the caps and timeouts lifted
(TONGDAI_TCP_MAX_CONNECTIONS, _MAX_PER_SOURCE, _READ_TIMEOUT and _IDLE_TIMEOUT at
1,000,000), i.e. as it was before them.

    python bench/tcp_flood_bench.py [--attempts 1100] [--nofile 1024] [--read-timeout 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

from tongdai.sip import digest
from tongdai.sip.message import Response
from tongdai.sip.parser import StreamFramer, parse_message

PASSWORD = "bench-flood-pw-1"


def free_port() -> int:
    for _ in range(100):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@dataclass
class Server:
    env: dict[str, str]
    sip_port: int
    http_port: int
    proc: subprocess.Popen[str]

    @classmethod
    def start(cls, nofile: int, **settings: str) -> Server:
        sip_port, http_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
        env.update({
            "TONGDAI_DATA_DIR": tempfile.mkdtemp(prefix="tcpflood-"),
            "TONGDAI_SIP_PORT": str(sip_port), "TONGDAI_HTTP_PORT": str(http_port),
            "TONGDAI_LOG_LEVEL": "warning",
        })
        env.update({f"TONGDAI_{k.upper()}": v for k, v in settings.items()})

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        proc = subprocess.Popen([sys.executable, "-m", "tongdai", "serve"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=limit)
        assert proc.stdout is not None
        for line in proc.stdout:
            if "stop with Ctrl-C" in line:
                break
        else:
            raise RuntimeError("tongdai did not start")
        os.set_blocking(proc.stdout.fileno(), False)
        srv = cls(env=env, sip_port=sip_port, http_port=http_port, proc=proc)
        app = srv.cli("app", "create", "flood")
        srv.cli("device", "add", "--app", app["app_id"], "alice", "--password", PASSWORD)
        return srv

    def cli(self, *args: str) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-m", "tongdai", *args, "--json"], env=self.env,
                             capture_output=True, text=True, check=True)
        result: dict[str, str] = json.loads(out.stdout)
        return result

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError, TypeError):
            return self.proc.stdout.read() or ""
        return ""


def flood(port: int, attempts: int, sources: int) -> list[socket.socket]:
    held = []
    for i in range(attempts):
        source = (f"127.0.1.{1 + i % sources}", 0)
        with contextlib.suppress(OSError):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2,
                                                 source_address=source))
    return held


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (no EOF, no reset)."""
    n = 0
    for s in socks:
        s.setblocking(False)  # with a timeout, recv would wait for it even with DONTWAIT
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                n += 1
        except BlockingIOError:
            n += 1  # nothing to read, not closed
        except OSError:
            pass  # reset
    return n


def http_ok(port: int) -> tuple[bool, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5) as r:
            ok = r.status == 200
    except OSError:
        ok = False
    return ok, time.monotonic() - start


def _request(method: str, local: str, call_id: str, cseq: int, extra: str = "") -> bytes:
    return (
        f"{method} sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK"
        f"{os.urandom(6).hex()};rport\r\nMax-Forwards: 70\r\n"
        f"From: <sip:alice@127.0.0.1>;tag={os.urandom(4).hex()}\r\n"
        f"To: <sip:alice@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:alice@{local};transport=tcp>\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def sip_ok(port: int) -> tuple[str, float]:
    """REGISTER with digest, then OPTIONS, over one TCP connection from 127.0.0.2."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5,
                                      source_address=("127.0.0.2", 0)) as s:
            framer = StreamFramer()
            pending: list[bytes] = []

            def final() -> Response:
                while True:
                    while pending:
                        msg = parse_message(pending.pop(0))
                        if isinstance(msg, Response) and msg.status >= 200:
                            return msg
                    data = s.recv(65535)
                    if not data:
                        raise ConnectionError("closed by the server")
                    pending.extend(framer.feed(data))

            host, lport = s.getsockname()[:2]
            local, call_id = f"{host}:{lport}", os.urandom(8).hex()
            s.sendall(_request("REGISTER", local, call_id, 1))
            chal = digest.pick_challenge(final().headers.get_all("www-authenticate"))
            assert chal is not None
            auth = digest.authorization(chal, method="REGISTER", uri="sip:127.0.0.1",
                                        username="alice", password=PASSWORD,
                                        cnonce=os.urandom(6).hex())
            s.sendall(_request("REGISTER", local, call_id, 2, f"Authorization: {auth}\r\n"))
            reg = final().status
            s.sendall(_request("OPTIONS", local, os.urandom(8).hex(), 1))
            opt = final().status
            result = f"REGISTER {reg}, OPTIONS {opt}"
    except (OSError, ConnectionError, AssertionError) as exc:
        result = f"failed ({type(exc).__name__})"
    return result, time.monotonic() - start


def run(label: str, args: argparse.Namespace, sources: int, **settings: str) -> None:
    srv = Server.start(args.nofile, **{"tcp_read_timeout": str(args.read_timeout), **settings})
    try:
        time.sleep(0.5)
        base = srv.fds()
        socks = flood(srv.sip_port, args.attempts, sources)
        flood_end = time.monotonic()
        time.sleep(0.5)
        fds = srv.fds()
        held = still_open(socks)
        http, http_s = http_ok(srv.http_port)
        sip, sip_s = sip_ok(srv.sip_port)
        reclaimed = None
        deadline = flood_end + args.read_timeout + 15
        while time.monotonic() < deadline:
            if srv.fds() <= base + 2:
                reclaimed = time.monotonic() - flood_end
                break
            time.sleep(0.25)
        for s in socks:
            s.close()
    finally:
        log = srv.stop()
    print(f"\n{label}: {args.attempts} silent connections from {sources} address(es), "
          f"RLIMIT_NOFILE={args.nofile}")
    print(f"  connections held             {held} of {len(socks)} opened "
          f"({args.attempts - len(socks)} attempts failed to connect)")
    print(f"  server descriptors           {fds} of {args.nofile} (before the flood: {base})")
    print(f"  HTTP GET /openapi.json       {'200' if http else 'FAILED'} in {http_s * 1000:.0f} ms")
    print(f"  SIP/TCP from 127.0.0.2       {sip} in {sip_s * 1000:.0f} ms")
    print("  time to reclaim              " + (f"{reclaimed:.1f} s after the flood"
          if reclaimed is not None else f"not within {args.read_timeout + 15:.0f} s"))
    if "Too many open files" in log:
        print("  server log                   'Too many open files'")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=1100)
    ap.add_argument("--nofile", type=int, default=1024)
    ap.add_argument("--read-timeout", type=float, default=20.0,
                    help="TONGDAI_TCP_READ_TIMEOUT of the server (its default: 20)")
    args = ap.parse_args()
    run("tongdai, default caps", args, sources=1)
    run("tongdai, default caps", args, sources=40)
    lifted = {"tcp_max_connections": "1000000", "tcp_max_per_source": "1000000",
              "tcp_read_timeout": "1000000", "tcp_idle_timeout": "1000000"}
    run("anchor: caps and timeouts lifted", args, sources=40, **lifted)


if __name__ == "__main__":
    main()
