"""Stopping a child process: a signal, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 10.0,
              sig: int = signal.SIGTERM) -> None:
    """Ask ``proc`` to stop with ``sig``; kill it if it has not exited after ``grace`` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
