"""``kill -9`` of a busy tongdai loses no call: SIPp callers -> tongdai -> SIPp carrier.

Five long calls are answered and talking; a burst of short calls completes (each
caller got the 200 to its BYE); the server is killed with SIGKILL right after the
burst's last BYE was answered, and started again on the same data dir. Then every
call that completed has its CDR, every call that was answered and still up has a
SUCCESS CDR lasting until its last checkpoint with its recording made playable,
and no partial recording is left.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, free_port, make_server, scenario, sipp_logged, wait_until

pytestmark = pytest.mark.e2e

CHECKPOINT = 1.0  # seconds between checkpoint refreshes in this test


class Caller:
    """One registered device calling numbers through tongdai with SIPp; each call's
    number says which call it is, and SIPp's log says which were answered and done."""

    def __init__(self, server: Server, app_id: str, work: Path, user: str,
                 numbers: list[str], talk_ms: int) -> None:
        self.server = server
        self.work = work / user
        self.work.mkdir()
        self.port = free_port()
        password = f"{user}-secret-pw"
        server.cli("device", "add", "--app", app_id, user, "--password", password)
        auth = f"[authentication username={user} password={password}]"
        (self.work / "calls.csv").write_text("SEQUENTIAL\n" + "".join(
            f"{user};{password};{auth};{n};\n" for n in numbers))
        src = Path(scenario("uac_call_logged.xml")).read_text()
        (self.work / "uac.xml").write_text(src.replace("@TALK_MS@", str(talk_ms)))
        self.count = len(numbers)
        self.proc: subprocess.Popen[bytes] | None = None

    def _sipp(self, *args: str) -> list[str]:
        return ["sipp", self.server.sip, "-inf", str(self.work / "calls.csv"),
                "-i", "127.0.0.1", "-p", str(self.port), "-nostdin", *args]

    def register(self) -> None:
        subprocess.run(self._sipp("-sf", scenario("register_auth_uac.xml"), "-m", "1",
                                  "-timeout", "10"),
                       cwd=self.work, check=True, stdout=subprocess.DEVNULL, timeout=30)

    def call(self, rate: int) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(
            self._sipp("-sf", str(self.work / "uac.xml"), "-mp", str(free_port()),
                       "-r", str(rate), "-m", str(self.count), "-l", str(self.count),
                       "-trace_logs", "-timeout", "180"),
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.proc

    def logged(self, what: str) -> set[str]:
        return sipp_logged(self.work, what)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _kill9(server: Server) -> float:
    """SIGKILL the server process (only it: its recording encoder sees its pipe close)."""
    assert server.proc is not None
    server.proc.kill()
    killed_at = time.time()
    server.proc.wait()
    server.log()
    if server.proc.stdout is not None:
        server.proc.stdout.close()
    server.proc = None
    return killed_at


def test_kill_9_loses_no_call(tmp_path: Path, audio: dict[str, Path]) -> None:
    server = make_server(tmp_path, checkpoint_interval=str(CHECKPOINT))
    server.start()
    carrier: subprocess.Popen[bytes] | None = None
    callers: list[Caller] = []
    try:
        app_id = server.cli("app", "create", "crash")["app_id"]
        carrier_port = free_port()
        server.cli("trunk", "add", "--app", app_id, "carrier", "--host", "127.0.0.1",
                   "--port", str(carrier_port))
        uas = Path(scenario("uas_answer.xml")).read_text()
        uas = uas.replace("@RING_MS@", "100").replace("@AUDIO@", str(audio["tone440_pcmu"]))
        (tmp_path / "uas.xml").write_text(uas)
        carrier = subprocess.Popen(
            ["sipp", "-sf", str(tmp_path / "uas.xml"), "-i", "127.0.0.1", "-p",
             str(carrier_port), "-mp", str(free_port()), "-nostdin", "-timeout", "180"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        long = Caller(server, app_id, tmp_path, "longcaller",
                      [f"09010000{i:02d}" for i in range(5)], talk_ms=120_000)
        burst = Caller(server, app_id, tmp_path, "burstcaller",
                       [f"09020000{i:02d}" for i in range(20)], talk_ms=300)
        callers = [long, burst]
        for c in callers:
            c.register()

        long.call(rate=5)
        wait_until(lambda: len(long.logged("answered")) == 5, timeout=20)
        all_answered_by = time.time()
        time.sleep(2.5 * CHECKPOINT)  # the checkpoints have moved on since the answer
        assert burst.call(rate=10).wait(60) == 0  # every burst call got its BYE answered
        killed_at = _kill9(server)

        long.stop()
        done = burst.logged("done")
        up = long.logged("answered")
        assert len(done) == 20 and len(up) == 5 and not long.logged("done")

        server.start()
        assert "calls.recovered" in server.log()
        rows: list[dict[str, Any]] = server.cli("cdr", "list", "--app", app_id, "--limit",
                                                "100")
        cdrs = {r["callee"]["number"]: r for r in rows}
        assert len(rows) == len(cdrs) == 25
        for number in done:
            cdr = cdrs[number]
            assert (cdr["status_detail"], cdr["hangup_by"]) == ("SUCCESS", "caller"), cdr
        recordings = server.data_dir / "recordings" / app_id
        for number in up:
            cdr = cdrs[number]
            assert (cdr["status_detail"], cdr["hangup_by"]) == ("SUCCESS", "system"), cdr
            # Up to its last checkpoint: at most one refresh (and rounding) short.
            talked = killed_at - all_answered_by
            assert talked - CHECKPOINT - 1.5 <= cdr["billing_seconds"] <= \
                killed_at - (all_answered_by - 20) + 1, (cdr, talked)
            assert cdr["recording"], cdr
            seconds = float(subprocess.run(
                ["soxi", "-D", str(recordings / cdr["recording"])], capture_output=True,
                text=True, check=True).stdout)
            assert seconds > 2.0, (cdr, seconds)
        assert list(server.data_dir.rglob("*.part")) == []
    finally:
        for c in callers:
            c.stop()
        if carrier is not None:
            carrier.kill()
            carrier.wait()
        server.stop()
