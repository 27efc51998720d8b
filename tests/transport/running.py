"""Start tongdai as the CLI does (``python -m tongdai serve``), optionally with a small
file-descriptor limit, reusing the end-to-end ``Server`` so ``stop`` and ``cli`` work."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import Server, make_server


def start(srv: Server, *, nofile: int | None = None) -> None:
    """Like ``Server.start``, with RLIMIT_NOFILE set to ``nofile`` in the server only."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    srv.output = []
    srv.proc = subprocess.Popen(
        [sys.executable, "-m", "tongdai", "serve"], env=srv.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=limit,
    )
    assert srv.proc.stdout is not None
    deadline = time.time() + 30
    while time.time() < deadline:
        line = srv.proc.stdout.readline()
        if not line:
            break
        srv.output.append(line)
        if "stop with Ctrl-C" in line:
            os.set_blocking(srv.proc.stdout.fileno(), False)
            return
    raise AssertionError("tongdai did not start:\n" + "".join(srv.output))


@contextmanager
def tongdai(tmp: Path, *, nofile: int | None = None, devices: dict[str, str] | None = None,
            **settings: str) -> Iterator[Server]:
    """A running tongdai with ``TONGDAI_<NAME>`` settings and the given devices."""
    srv = make_server(tmp, **settings)
    try:
        start(srv, nofile=nofile)
        if devices:
            app = srv.cli("app", "create", "Transport tests")
            for user, password in devices.items():
                srv.cli("device", "add", "--app", app["app_id"], user, "--password", password)
        yield srv
    finally:
        srv.stop()
