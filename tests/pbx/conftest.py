"""In-process PBX fixtures: the real server objects on ephemeral ports, real UDP sockets."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tongdai.server import Pbx, build, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Response
from tongdai.sip.parser import parse_message


class UdpClient:
    """A bare SIP peer: sends raw datagrams, returns parsed responses."""

    def __init__(self, server_port: int, host: str = "127.0.0.1") -> None:
        # Any 127.0.0.x is a loopback address: a test can speak from several sources.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.server = ("127.0.0.1", server_port)

    async def request(self, text: str, wait: float = 3.0) -> Response:
        """The final response to ``text``; retransmitted answers to earlier requests
        (another Call-ID) are skipped."""
        data = text.replace("\n", "\r\n").replace("@PORT@", str(self.port)).encode()
        m = re.search(r"^Call-ID:\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
        call_id = m.group(1) if m else None
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, data, self.server)
        while True:
            raw = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), wait)
            msg = parse_message(raw)
            if (isinstance(msg, Response) and msg.status >= 200
                    and (call_id is None or msg.call_id == call_id)):
                return msg

    async def silence(self, wait: float = 0.5) -> bool:
        """True when nothing arrives within ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_recv(self.sock, 65535), wait)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def pbx(tmp_path: Path, db_url: str) -> AsyncIterator[Pbx]:
    """The whole PBX in-process on SQLite and on PostgreSQL, SIP on an ephemeral port."""
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, sip_port=0, rtp_ports="42000-42099",
        auth_fail_limit=5, register_min_expires=60,
    )
    p = await build(settings)
    try:
        yield p
    finally:
        await shutdown(p)


@pytest.fixture
async def client(pbx: Pbx) -> AsyncIterator[UdpClient]:
    c = UdpClient(pbx.sip_port)
    try:
        yield c
    finally:
        c.close()
