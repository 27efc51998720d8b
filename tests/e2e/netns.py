"""A private network namespace for browser tests (Chromium gathers no ICE candidates on
loopback): a veth pair inside it carries one private address that only the namespace
can reach. The test's own thread enters it, so every process it starts from then on
(tongdai, baresip, the Playwright driver and its Chromium) runs there."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
ADDRESS = "10.200.0.1"


def available() -> str:
    """Why namespaces cannot be used here, or "" when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 is not installed (.ci/run installs it)"
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def namespace(name: str) -> Iterator[str]:
    """Create namespace ``name`` with lo and a veth pair holding ``ADDRESS``; enter it
    for the duration; then leave and delete it. Yields ``ADDRESS``."""
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "delete", name)
    _ip("netns", "add", name)
    try:
        run = ("netns", "exec", name, "ip")
        _ip(*run, "link", "set", "lo", "up")
        _ip(*run, "link", "add", "wd0", "type", "veth", "peer", "name", "wd1")
        _ip(*run, "addr", "add", f"{ADDRESS}/32", "dev", "wd0")
        _ip(*run, "link", "set", "wd0", "up")
        _ip(*run, "link", "set", "wd1", "up")
        home = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        back = os.open(home, os.O_RDONLY)
        try:
            _setns(f"/var/run/netns/{name}")
            try:
                yield ADDRESS
            finally:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.setns(back, CLONE_NEWNET)
        finally:
            os.close(back)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "delete", name)
