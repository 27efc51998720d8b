"""Shared helpers of the SIP benchmarks: a tongdai server process, SIPp runs, CPU use."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds consumed so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds_of(pids: int | Sequence[int] | None) -> float:
    """CPU seconds of one server process or the sum over several (a server's worker
    processes, or the nodes of a cluster)."""
    if pids is None:
        return 0.0
    return sum(cpu_seconds(p) for p in ([pids] if isinstance(pids, int) else pids))


class PortTaken(RuntimeError):
    """tongdai did not start: one of its ports was in use."""


@dataclass
class Tongdai:
    data_dir: Path
    env: dict[str, str]
    sip_port: int
    proc: subprocess.Popen[str] | None = None
    _reported: int = 0

    @classmethod
    def create(cls, **settings: str) -> Tongdai:
        data = Path(tempfile.mkdtemp(prefix="tongdai-bench-"))
        sip_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
        env.update({
            "TONGDAI_DATA_DIR": str(data),
            "TONGDAI_SIP_PORT": str(sip_port),
            "TONGDAI_HTTP_PORT": str(free_port()),
            "TONGDAI_LOG_LEVEL": "warning",
            # benchmarks hammer from one address: keep brute-force protection out of the way
            "TONGDAI_AUTH_FAIL_LIMIT": "1000000",
            # Benchmarks drive one app far past its per-app request limit on purpose.
            "TONGDAI_API_APP_RATE": "0",
        })
        env.update({f"TONGDAI_{k.upper()}": v for k, v in settings.items()})
        return cls(data_dir=data, env=env, sip_port=sip_port)

    def provision(self, script: str) -> None:
        """Run an async provisioning snippet with ``store`` and ``settings`` in scope."""
        code = (
            "import asyncio\n"
            "from tongdai.settings import load_settings\n"
            "from tongdai.keys import store_key\n"
            "from tongdai.pbx.credentials import digest_keys\n"
            "from tongdai.store.sql import open_store\n"
            "async def main():\n"
            "    settings = load_settings()\n"
            "    store = await open_store(settings.db_url, key=store_key(settings.data_dir))\n"
            + "".join(f"    {line}\n" for line in script.splitlines())
            + "    await store.close()\n"
            "asyncio.run(main())\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True)

    def start(self, attempts: int = 3) -> None:
        """Start ``tongdai serve``; when another process took one of its ports since
        they were chosen (other work on the machine), again on fresh ports."""
        for _ in range(attempts - 1):
            try:
                return self._start()
            except PortTaken:
                self.sip_port = free_port()
                self.env.update({"TONGDAI_SIP_PORT": str(self.sip_port),
                                 "TONGDAI_HTTP_PORT": str(free_port())})
        return self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tongdai", "serve"], env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        said: list[str] = []
        for line in self.proc.stdout:
            if "stop with Ctrl-C" in line:
                self._drain()
                return
            said.append(line)
        self.proc.wait()
        self.proc = None
        text = "".join(said[-20:])
        raise (PortTaken if "is in use" in text else RuntimeError)(
            "tongdai did not start:\n" + text)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "serve.log"

    def _drain(self) -> None:
        """Copy the server's output to ``log_path`` from now on: a pipe nobody reads
        fills up and then blocks the server's logging, which would stall its event loop
        and be measured as the PBX's speed."""
        proc, out = self.proc, self.log_path.open("a")
        assert proc is not None and proc.stdout is not None
        stream = proc.stdout

        def copy() -> None:
            for line in stream:
                out.write(line)
                out.flush()
            out.close()

        threading.Thread(target=copy, daemon=True).start()

    def warnings(self) -> list[str]:
        """The lines the server has logged since it started (warnings and worse, at the
        benchmarks' log level)."""
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def print_new_warnings(self, most: int = 3) -> None:
        """Print the first ``most`` lines the server logged since the last call (a
        failed step's cause is usually among them)."""
        said = self.warnings()
        for line in said[self._reported:self._reported + most]:
            print(f"  tongdai logged: {line[:200]}", flush=True)
        if len(said) > self._reported + most:
            print(f"  ... and {len(said) - self._reported - most} more lines", flush=True)
        self._reported = len(said)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class SippResult:
    rate: int
    calls: int
    ok: int
    failed: int
    retrans: int
    p50_ms: float
    p99_ms: float
    seconds: float
    cpu: float  # server CPU, fraction of one core
    cpu_seconds: float = 0.0  # server CPU-seconds spent on the whole step

    @property
    def cpu_per_1k(self) -> float:
        """Server CPU-seconds per 1,000 completed operations: robust to other load."""
        return 1000 * self.cpu_seconds / self.ok if self.ok else float("nan")


def run_sipp(args: list[str], *, rate: int, count: int,
             server_pid: int | Sequence[int] | None, workdir: Path) -> SippResult:
    """Run a SIPp scenario to completion and read its statistics and response times;
    the CPU is that of ``server_pid`` (one process or the sum over several)."""
    for f in workdir.glob("*_rtt.csv"):
        f.unlink()
    stat = workdir / "stat.csv"
    stat.unlink(missing_ok=True)
    cpu0 = cpu_seconds_of(server_pid)
    t0 = time.monotonic()
    subprocess.run(
        ["sipp", *args, "-r", str(rate), "-m", str(count), "-nostdin", "-trace_stat",
         "-stf", str(stat), "-trace_rtt", "-rtt_freq", "100", "-l", str(max(rate * 10, 100)),
         "-timeout", "120"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
    )
    secs = time.monotonic() - t0
    used = cpu_seconds_of(server_pid) - cpu0
    cpu = used / secs
    rows = stat.read_text().splitlines()
    row = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))
    causes = {k: v for k, v in row.items()
              if k.startswith("Failed") and k != "FailedCall(C)" and k.endswith("(C)")
              and v not in ("", "0")}
    if causes:  # why SIPp counted calls as failed, in its own words
        print(f"  sipp at {rate}/s: " + ", ".join(f"{k[:-3]} {v}" for k, v in causes.items()),
              flush=True)
    rtts: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        with f.open() as fh:
            for rec in csv.reader(fh, delimiter=";"):
                # Date_ms;response_time_ms;rtd_no (SIPp's resolution is 1 ms)
                if len(rec) >= 2 and rec[1].replace(".", "", 1).isdigit():
                    rtts.append(float(rec[1]))
    rtts.sort()

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else float("nan")

    return SippResult(
        rate=rate, calls=count, ok=int(row.get("SuccessfulCall(C)", 0)),
        failed=int(row.get("FailedCall(C)", 0)), retrans=int(row.get("Retransmissions(C)", 0)),
        p50_ms=pct(0.5), p99_ms=pct(0.99), seconds=secs, cpu=cpu, cpu_seconds=used,
    )


def print_table(title: str, results: list[SippResult]) -> None:
    print(f"\n{title}")
    print(f"{'rate/s':>8} {'count':>7} {'ok':>7} {'failed':>7} {'retrans':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'cpu':>6} {'cpu-s/1k':>9}")
    for r in results:
        print(f"{r.rate:>8} {r.calls:>7} {r.ok:>7} {r.failed:>7} {r.retrans:>8} "
              f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.cpu:>6.0%} {r.cpu_per_1k:>9.2f}",
              flush=True)
