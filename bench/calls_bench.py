"""B2BUA call throughput: SIPp UAC → tongdai → trunk → SIPp UAS, both legs complete.

Each call is the full dialogue on both legs — INVITE (407 challenge and digest answer
on the device leg), 180, 200, ACK, a short talk, BYE — at rising call rates. Prints
per rate: completed and failed calls, retransmissions, p50/p99 setup time (first
INVITE to 200 at the caller), tongdai's CPU, and checks one CDR per completed call.
Anchor, same run: SIPp UAC straight to the SIPp UAS (no PBX in between).

    python bench/calls_bench.py [--rates 100,200,400,600,800] [--seconds 5]
                                [--rtp-ports 61000-64999]

On a machine shared with other tongdai processes (tests, other benchmarks), give the
bench a media port range of its own: a range another process holds makes tongdai
refuse calls with 503 ("RTP port range ... is used up"), which is not the PBX's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sipbench import SippResult, Tongdai, free_port, print_table, run_sipp

HERE = Path(__file__).parent


def count_cdrs(td: Tongdai) -> int:
    code = (
        "import asyncio, time\n"
        "from tongdai.settings import load_settings\n"
        "from tongdai.keys import store_key\n"
        "from tongdai.store.sql import open_store\n"
        "async def main():\n"
        "    s = load_settings(); st = await open_store(s.db_url, key=store_key(s.data_dir))\n"
        "    apps = await st.list_apps(); n = 0\n"
        "    for a in apps:\n"
        "        total, _ = await st.list_cdrs(a.app_id, 0, time.time() + 60, limit=1, offset=0)\n"
        "        n += total\n"
        "    print(n); await st.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=td.env, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip())


def write_caller(work: Path, talk_ms: int) -> None:
    """The caller's SIPp scenario (uac.xml, talking ``talk_ms``) and credentials."""
    scen = (HERE / "scenarios/uac_call_auth.xml").read_text().replace("@TALK_MS@",
                                                                       str(talk_ms))
    (work / "uac.xml").write_text(scen)
    (work / "users.csv").write_text(
        "SEQUENTIAL\ncaller;caller-pw;[authentication username=caller password=caller-pw];\n")


def provision_calls(td: Tongdai, uas_port: int) -> None:
    """An app (recording off) with the device ``caller`` and a trunk to the SIPp UAS."""
    td.provision(
        "app = await store.create_app('bench')\n"
        "await store.update_app(app.app_id, record_calls=False)\n"
        "await store.add_device(app.app_id, 'caller', "
        "digest_keys('caller', settings.domain, 'caller-pw'))\n"
        f"await store.add_trunk(app.app_id, 'carrier', host='127.0.0.1', port={uas_port})"
    )


def register_caller(td: Tongdai, work: Path, uac_port: int) -> None:
    """Register ``caller`` at ``td`` from the port its calls will come from."""
    subprocess.run(
        ["sipp", f"127.0.0.1:{td.sip_port}", "-sf", str(HERE / "scenarios/register_once.xml"),
         "-inf", str(work / "users.csv"), "-i", "127.0.0.1", "-p", str(uac_port), "-m", "1",
         "-nostdin", "-timeout", "10"], check=True, cwd=work, stdout=subprocess.DEVNULL)


def start_uas(work: Path, uas_port: int) -> subprocess.Popen[bytes]:
    """SIPp's built-in UAS on ``uas_port``: the carrier every call is sent to."""
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin",
         "-mp", str(free_port())], cwd=work, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def call_args(td: Tongdai, work: Path, uac_port: int) -> list[str]:
    """SIPp's arguments for ``caller`` calling a carrier number through ``td``."""
    return [f"127.0.0.1:{td.sip_port}", "-sf", str(work / "uac.xml"), "-inf",
            str(work / "users.csv"), "-s", "0901234567", "-i", "127.0.0.1",
            "-p", str(uac_port), "-mp", str(free_port())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,200,300,400,600,800")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--talk-ms", type=int, default=200)
    ap.add_argument("--rtp-ports", default="",
                    help="tongdai's RTP port range (default: the product's default)")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="callbench-"))
    write_caller(work, args.talk_ms)
    uas_port = free_port()
    td = Tongdai.create(ring_timeout="30",
                        **({"rtp_ports": args.rtp_ports} if args.rtp_ports else {}))
    provision_calls(td, uas_port)
    td.start()
    uac_port = free_port()
    results: list[SippResult] = []
    best = 0
    try:
        register_caller(td, work, uac_port)
        for rate in rates:
            uas = start_uas(work, uas_port)
            time.sleep(0.3)
            try:
                before = count_cdrs(td)
                r = run_sipp(call_args(td, work, uac_port), rate=rate,
                             count=int(rate * args.seconds), server_pid=td.pid, workdir=work)
            finally:  # a step that timed out leaves no carrier running
                uas.terminate()
                uas.wait()
            time.sleep(1.0)
            cdrs = count_cdrs(td) - before
            print(f"rate {rate}: {r.ok} calls completed, {cdrs} CDRs written", flush=True)
            td.print_new_warnings()
            results.append(r)
            if r.failed or r.retrans or r.ok < r.calls or cdrs != r.ok:
                break
            best = rate
    finally:
        td.stop()
    print_table("tongdai B2BUA: SIPp UAC -> tongdai -> trunk -> SIPp UAS", results)
    print(f"\nhighest clean rate: {best} calls/s (goal >= 800)")

    # Anchor: the same UAC straight to the UAS, no PBX (what SIPp itself sustains here).
    anchor: list[SippResult] = []
    uas = start_uas(work, uas_port)
    try:
        time.sleep(0.3)
        for rate in rates:
            r = run_sipp([f"127.0.0.1:{uas_port}", "-sn", "uac", "-i", "127.0.0.1",
                          "-p", str(free_port()), "-d", str(args.talk_ms)],
                         rate=rate, count=int(rate * args.seconds), server_pid=uas.pid,
                         workdir=work)
            anchor.append(r)
    finally:
        uas.terminate()
        uas.wait()
    print_table("anchor: SIPp UAC -> SIPp UAS directly (no PBX; cpu = the UAS)", anchor)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
