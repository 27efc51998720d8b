"""A lossy UDP relay for tests: forwards datagrams between one client and a server,
dropping a fraction of them in each direction (a stand-in for ``tc netem``, which this
kernel lacks). Deterministic for a given seed and packet order."""

from __future__ import annotations

import random
import select
import socket
import threading


class LossyRelay:
    def __init__(self, server: tuple[str, int], loss: float, seed: int = 7) -> None:
        self.server = server
        self.loss = loss
        self.rng = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = int(self.front.getsockname()[1])
        self.client: tuple[str, int] | None = None
        self.passed = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LossyRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.front.close()
        self.back.close()

    def _forward(self, data: bytes, sock: socket.socket, to: tuple[str, int]) -> None:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.passed += 1
        sock.sendto(data, to)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for s in ready:
                data, addr = s.recvfrom(65535)
                if s is self.front:
                    self.client = addr
                    self._forward(data, self.back, self.server)
                elif self.client is not None:
                    self._forward(data, self.front, self.client)
