"""Raw SIP peers over real loopback sockets, for tests that attack or probe the server."""

from __future__ import annotations

import os
import socket
import time

from tongdai.sip import digest
from tongdai.sip.message import Response
from tongdai.sip.parser import StreamFramer, parse_message


def request(
    method: str, *, via: str, user: str = "alice", domain: str = "127.0.0.1",
    call_id: str | None = None, cseq: int = 1, extra: tuple[str, ...] = (),
) -> bytes:
    """One request with ``via`` as its top Via (the caller forges it as it likes)."""
    call_id = call_id or os.urandom(8).hex()
    ruri = f"sip:{domain}" if method == "REGISTER" else f"sip:0909123456@{domain}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={os.urandom(4).hex()}",
        f"To: <sip:{user if method == 'REGISTER' else '0909123456'}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@{via.split()[1].split(';')[0]}>",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def branch() -> str:
    return "z9hG4bK" + os.urandom(6).hex()


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def udp_collect(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram arriving within ``seconds``."""
    out: list[bytes] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            break
    return out


def finals(datagrams: list[bytes]) -> list[Response]:
    msgs = [parse_message(d) for d in datagrams]
    return [m for m in msgs if isinstance(m, Response) and m.status >= 200]


class TcpPeer:
    """One SIP/TCP connection from ``source`` (any 127.x address) to the server."""

    def __init__(self, server: tuple[str, int], source: str = "127.0.0.1",
                 timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(server, timeout=timeout,
                                             source_address=(source, 0))
        self.framer = StreamFramer()
        self.pending: list[bytes] = []

    @property
    def local(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, timeout: float = 5.0) -> Response:
        """The next final response on the connection."""
        end = time.monotonic() + timeout
        while True:
            while self.pending:
                msg = parse_message(self.pending.pop(0))
                if isinstance(msg, Response) and msg.status >= 200:
                    return msg
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            data = self.sock.recv(65535)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.pending += self.framer.feed(data)

    def closed_by_server(self, timeout: float) -> bool:
        """True when the server closes (EOF or reset) within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65535)
                if not data:
                    return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def options(self) -> int:
        """OPTIONS over this connection; the final status."""
        via = f"SIP/2.0/TCP {self.local};branch={branch()};rport"
        self.send(request("OPTIONS", via=via))
        return self.response().status

    def register(self, user: str, password: str, domain: str = "127.0.0.1") -> int:
        """REGISTER with digest over this connection; the final status."""
        call_id = os.urandom(8).hex()
        via = f"SIP/2.0/TCP {self.local};branch={branch()};rport"
        self.send(request("REGISTER", via=via, user=user, domain=domain, call_id=call_id))
        first = self.response()
        if first.status != 401:
            return first.status
        chal = digest.pick_challenge(first.headers.get_all("www-authenticate"))
        assert chal is not None
        auth = digest.authorization(chal, method="REGISTER", uri=f"sip:{domain}",
                                    username=user, password=password, cnonce=branch())
        via = f"SIP/2.0/TCP {self.local};branch={branch()};rport"
        self.send(request("REGISTER", via=via, user=user, domain=domain, call_id=call_id,
                          cseq=2, extra=(f"Authorization: {auth}", "Expires: 300")))
        return self.response().status

    def close(self) -> None:
        self.sock.close()
