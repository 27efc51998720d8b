"""Calls lost through ``kill -9``: SIPp UAC -> tongdai (recording) -> SIPp UAS, killed under load.

A registered device places calls at ``--rate`` calls/s, each talking ``--talk-ms`` (the
carrier streams a tone, so every call is recorded), each to its own number so that
every CDR names its call. SIPp logs each call's number when it is answered and when
its BYE is answered 200. After ``--seconds`` tongdai gets SIGKILL while calls keep
coming, and is started again on the same data dir. Printed: calls completed (BYE
answered) and how many have a CDR; calls answered and still up at the kill and how
many have a CDR (SUCCESS, with a recording); calls lost (goal 0); partial recordings
left (goal 0).

    python bench/crash_bench.py [--rate 50] [--seconds 20] [--talk-ms 1500]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from sipbench import Tongdai, free_port

HERE = Path(__file__).parent
# The same SIPp scenarios as the end-to-end crash test.
SCENARIOS = HERE.parent / "tests" / "e2e" / "scenarios"


def cdrs_by_number(td: Tongdai, app_id: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "tongdai", "cdr", "list", "--app", app_id, "--limit", "100000",
         "--json"], env=td.env, capture_output=True, text=True, check=True).stdout
    return {r["callee"]["number"]: r for r in json.loads(out)}


def logged(work: Path, what: str) -> set[str]:
    found: set[str] = set()
    for log in work.glob("*_logs.log"):
        found |= set(re.findall(rf"^{what} (\d+)$", log.read_text(), re.M))
    return found


def restart_logged(td: Tongdai) -> str:
    """Start tongdai again; returns its recovery summary line."""
    td.proc = subprocess.Popen([sys.executable, "-m", "tongdai", "serve"], env=td.env,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert td.proc.stdout is not None
    summary = ""
    for line in td.proc.stdout:
        if "calls.recovered" in line:
            summary = line.strip()
        if "stop with Ctrl-C" in line:
            return summary
    raise RuntimeError("tongdai did not start again")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--talk-ms", type=int, default=1500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crashbench-"))
    tone = work / "tone_pcmu.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", str(tone),
                    "synth", "30", "sine", "440", "vol", "0.5"], check=True)
    uas = (SCENARIOS / "uas_answer.xml").read_text()
    (work / "uas.xml").write_text(uas.replace("@RING_MS@", "100").replace("@AUDIO@", str(tone)))
    uac = (SCENARIOS / "uac_call_logged.xml").read_text()
    (work / "uac.xml").write_text(uac.replace("@TALK_MS@", str(args.talk_ms)))
    total = int(args.rate * (args.seconds + 10))
    auth = "[authentication username=caller password=caller-pw]"
    (work / "calls.csv").write_text("SEQUENTIAL\n" + "".join(
        f"caller;caller-pw;{auth};09{i:08d};\n" for i in range(total)))

    uas_port = free_port()
    td = Tongdai.create(ring_timeout="30")
    td.provision(
        "app = await store.create_app('crash')\n"
        "print(app.app_id, file=open('APP_ID', 'w'))\n"
        "await store.add_device(app.app_id, 'caller', "
        "digest_keys('caller', settings.domain, 'caller-pw'))\n"
        f"await store.add_trunk(app.app_id, 'carrier', host='127.0.0.1', port={uas_port})"
        .replace("APP_ID", str(work / "app_id"))
    )
    app_id = (work / "app_id").read_text().strip()
    td.start()
    uac_port = free_port()
    sipp = ["sipp", f"127.0.0.1:{td.sip_port}", "-inf", str(work / "calls.csv"), "-i",
            "127.0.0.1", "-p", str(uac_port), "-nostdin"]
    carrier = caller = None
    try:
        subprocess.run([*sipp, "-sf", str(SCENARIOS / "register_auth_uac.xml"), "-m", "1",
                        "-timeout", "10"], check=True, cwd=work, stdout=subprocess.DEVNULL)
        carrier = subprocess.Popen(
            ["sipp", "-sf", str(work / "uas.xml"), "-i", "127.0.0.1", "-p", str(uas_port),
             "-mp", str(free_port()), "-nostdin"], cwd=work, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        caller = subprocess.Popen(
            [*sipp, "-sf", str(work / "uac.xml"), "-mp", str(free_port()), "-r",
             str(args.rate), "-m", str(total), "-l", str(total), "-trace_logs"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.seconds)
        assert td.proc is not None
        td.proc.kill()  # SIGKILL: no shutdown code runs
        td.proc.wait()
        td.proc = None
        time.sleep(1.0)  # whatever was in flight arrives (or not) at SIPp
        done = logged(work, "done")
        answered = logged(work, "answered")
        caller.kill()
        caller.wait()
        started = time.monotonic()
        recovery = restart_logged(td)  # recovery runs before it serves
        restart = time.monotonic() - started
        cdrs = cdrs_by_number(td, app_id)
    finally:
        for p in (caller, carrier):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        td.stop()

    up = answered - done
    lost_done = sorted(done - cdrs.keys())
    lost_up = sorted(up - cdrs.keys())
    up_ok = [cdrs[n] for n in up if n in cdrs and cdrs[n]["status_detail"] == "SUCCESS"]
    up_recorded = [c for c in up_ok if c["recording"]
                   and (td.data_dir / "recordings" / app_id / c["recording"]).is_file()]
    parts = list(td.data_dir.rglob("*.part"))
    print(f"\nkill -9 at {args.rate} calls/s with recording, after {args.seconds:.0f} s "
          f"(talk {args.talk_ms} ms); restart with recovery took {restart:.1f} s")
    print(f"  calls completed (BYE answered 200)   {len(done):6d}   with a CDR "
          f"{len(done) - len(lost_done):6d}")
    print(f"  calls answered, still up at the kill {len(up):6d}   with a CDR "
          f"{len(up) - len(lost_up):6d}   SUCCESS {len(up_ok)}   with recording "
          f"{len(up_recorded)}")
    print(f"  CDRs found after restart             {len(cdrs):6d}")
    print(f"  calls lost                           {len(lost_done) + len(lost_up):6d}   "
          f"(goal 0)")
    print(f"  partial recordings left              {len(parts):6d}   (goal 0)")
    print(f"  tongdai at restart: {recovery.split(' calls.recovered ')[-1]}")
    if lost_done or lost_up:
        print(f"  lost: completed {lost_done[:10]} up {lost_up[:10]}")


if __name__ == "__main__":
    main()
