"""REGISTER-with-digest throughput of one tongdai process, driven by SIPp.

Starts tongdai (as ``tongdai serve`` does) with N devices, runs SIPp's REGISTER
scenario (401 challenge, then digest answer, 200) at rising rates and prints, per
rate: completed/failed registrations, retransmissions, p50/p99 latency (first
REGISTER to 200) and tongdai's CPU. The result is the highest rate with zero failures
and zero retransmissions. Anchor, same run: a bare asyncio UDP responder that parses
the REGISTER and checks the digest (what Python can do with no PBX around it).

    python bench/register_bench.py [--devices 2000] [--rates 1000,2000,4000,6000,8000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sipbench import SippResult, Tongdai, free_port, print_table, run_sipp

HERE = Path(__file__).parent
# Bindings as short as the bench likes (each step re-registers the same devices).
REGISTER_SETTINGS = {"register_min_expires": "1", "register_max_expires": "3600"}


def users_csv(path: Path, users: range) -> Path:
    """SIPp's injection file for devices u000000.. with passwords pw000000.. (the
    passwords the anchors check)."""
    path.write_text("SEQUENTIAL\n" + "".join(
        f"u{i:06d};pw{i:06d};[authentication username=u{i:06d} password=pw{i:06d}];\n"
        for i in users))
    return path


def provision_devices(td: Tongdai, devices: int) -> None:
    """One app with ``devices`` devices u000000.. in ``td``'s database."""
    td.provision(
        "app = await store.create_app('bench')\n"
        f"for i in range({devices}):\n"
        "    await store.add_device(app.app_id, f'u{i:06d}', "
        "digest_keys(f'u{i:06d}', settings.domain, f'pw{i:06d}'))"
    )


def register_args(port: int, csv: Path) -> list[str]:
    """SIPp's arguments for the REGISTER-with-digest scenario against 127.0.0.1:port."""
    return [f"127.0.0.1:{port}", "-sf", str(HERE / "scenarios/register_auth_uac.xml"),
            "-inf", str(csv), "-i", "127.0.0.1", "-p", str(free_port())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--rates", default="1000,2000,3000,4000,5000,6000,7000,8000")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each step")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="regbench-"))
    csv = users_csv(work / "users.csv", range(args.devices))

    td = Tongdai.create(**REGISTER_SETTINGS)
    provision_devices(td, args.devices)
    td.start()
    results: list[SippResult] = []
    best = 0
    try:
        sipp_args = register_args(td.sip_port, csv)
        # warm the device cache once
        run_sipp(sipp_args, rate=500, count=min(args.devices, 2000), server_pid=td.pid,
                 workdir=work)
        for rate in rates:
            r = run_sipp(sipp_args, rate=rate, count=int(rate * args.seconds),
                         server_pid=td.pid, workdir=work)
            td.print_new_warnings()
            results.append(r)
            if r.failed or r.retrans or r.ok < r.calls:
                break
            best = rate
    finally:
        td.stop()
    print_table("tongdai: SIPp REGISTER with digest (401 + 200 per registration)", results)
    print(f"\nhighest clean rate: {best} REGISTER/s (goal >= 6000)")

    anchor = subprocess.Popen([sys.executable, str(HERE / "anchor_register.py")],
                              stdout=subprocess.PIPE, text=True)
    assert anchor.stdout is not None
    port = int(anchor.stdout.readline().split()[-1])
    anchor_results: list[SippResult] = []
    try:
        a_args = register_args(port, csv)
        for rate in rates:
            r = run_sipp(a_args, rate=rate, count=int(rate * args.seconds),
                         server_pid=anchor.pid, workdir=work)
            anchor_results.append(r)
            if r.failed or r.retrans or r.ok < r.calls:
                break
    finally:
        anchor.terminate()
        anchor.wait()
    print_table("anchor: bare asyncio UDP responder (parse + digest check, no state)",
                anchor_results)


if __name__ == "__main__":
    main()
