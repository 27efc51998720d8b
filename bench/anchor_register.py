"""Benchmark anchor: the least a Python registrar can do per REGISTER.

A bare asyncio (uvloop when installed) UDP responder: splits the REGISTER into header
lines, challenges the first attempt with 401 and checks the MD5 digest of the second
(passwords "pw" + the user's digits, as bench/register_bench.py provisions them), then
answers 200. No transactions, no location, no storage: a ceiling, not a registrar.
Prints "listening on PORT".
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import cast

REALM = "127.0.0.1"
NONCE = "anchornonce"
_AUTH = re.compile(r'(\w+)="?([^",]*)"?')


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class Responder(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = cast(asyncio.DatagramTransport, transport)  # uvloop does not subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        keep = []
        auth = None
        for line in lines[1:]:
            name = line.split(":", 1)[0].lower()
            if name in ("via", "from", "to", "call-id", "cseq"):
                keep.append(line)
            elif name == "authorization":
                auth = line.split(":", 1)[1]
        if auth is None:
            status = "401 Unauthorized"
            keep.append(f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}", '
                        'algorithm=MD5')
        else:
            p = dict(_AUTH.findall(auth))
            user = p.get("username", "")
            ha1 = _md5(f"{user}:{REALM}:pw{user[1:]}")
            ha2 = _md5(f"REGISTER:{p.get('uri', '')}")
            ok = _md5(f"{ha1}:{p.get('nonce', '')}:{ha2}") == p.get("response")
            status = "200 OK" if ok else "403 Forbidden"
        resp = "SIP/2.0 " + status + "\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
        self.t.sendto(resp.encode(), addr)


async def main() -> None:
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    print("listening on", t.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
