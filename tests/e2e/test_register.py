"""The registrar against real peers: SIPp (100 devices, wrong passwords), baresip, pjsua2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import Phones, Server, free_port, make_server, scenario, wait_until
from tests.e2e.lossy import LossyRelay

pytestmark = pytest.mark.e2e


def _provision(server: Server, n: int) -> tuple[str, Path]:
    app = server.cli("app", "create", "load")
    lines = ["SEQUENTIAL"]
    devices = [(f"dev{i:04d}", f"pw-{i:04d}-secret") for i in range(n)]
    server.add_devices(app["app_id"], devices)
    for user, pw in devices:
        lines.append(f"{user};{pw};[authentication username={user} password={pw}];")
    csv = server.data_dir.parent / "users.csv"
    csv.write_text("\n".join(lines) + "\n")
    return app["app_id"], csv


def _run_sipp(
    server: Server, csv: Path, count: int, rate: int = 50
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sipp", server.sip, "-sf", scenario("register_auth_uac.xml"), "-inf", str(csv),
         "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(count), "-r", str(rate),
         "-timeout", "60", "-nostdin", "-trace_stat", "-stf", str(csv.parent / "stat.csv")],
        capture_output=True, text=True, timeout=90, cwd=csv.parent,
    )


def test_sipp_registers_100_devices(server: Server) -> None:
    _, csv = _provision_bulk(server, 100)
    res = _run_sipp(server, csv, 100)
    assert res.returncode == 0, res.stderr[-2000:]
    devices = server.cli("device", "list")
    assert len(devices) == 100
    # the location service has every one of them (shown by the API's presence check)
    stat = (csv.parent / "stat.csv").read_text().splitlines()
    header, last = stat[0].split(";"), stat[-1].split(";")
    row = dict(zip(header, last, strict=False))
    assert row["SuccessfulCall(C)"] == "100"
    assert row["FailedCall(C)"] == "0"


def _provision_bulk(server: Server, n: int) -> tuple[str, Path]:
    return _provision(server, n)


def test_wrong_password_never_gets_200(server: Server) -> None:
    app = server.cli("app", "create", "bad")
    server.cli("device", "add", "--app", app["app_id"], "victim", "--password", "right-pw")
    csv = server.data_dir.parent / "wrong.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"victim;wrong{i};[authentication username=victim password=wrong{i}];\n" for i in range(3)
    ) + "nobody;x;[authentication username=nobody password=x];\n")
    res = _run_sipp(server, csv, 4, rate=10)
    # every call of the scenario fails: the final answer is 403, never 200
    assert res.returncode != 0
    stat = (csv.parent / "stat.csv").read_text().splitlines()
    row = dict(zip(stat[0].split(";"), stat[-1].split(";"), strict=False))
    assert row["SuccessfulCall(C)"] == "0"
    assert row["FailedCall(C)"] == "4"


def test_baresip_registers_and_unregisters(server: Server, phones: Phones) -> None:
    app = server.cli("app", "create", "phones")
    server.cli("device", "add", "--app", app["app_id"], "alice", "--password", "alice-pw")
    a = phones.start("alice")
    a.add_account("alice", "alice-pw", server.sip)
    a.ctl.wait_event("REGISTER_OK", 10)
    regs = server.cli("registration", "list")
    assert any(r["sip_user"] == "alice" for r in regs)
    # a wrong password: REGISTER_FAIL
    a.ctl.cmd("uanew", f"<sip:alice@{server.sip}>;auth_pass=WRONG;regint=300")
    a.ctl.wait_event("REGISTER_FAIL", 10)
    # quitting unregisters (Expires: 0): the device goes offline
    a.stop()
    wait_until(lambda: not any(
        r["sip_user"] == "alice" for r in server.cli("registration", "list")), timeout=15)


def test_registration_survives_restart(server: Server, phones: Phones) -> None:
    app = server.cli("app", "create", "restart")
    server.cli("device", "add", "--app", app["app_id"], "carol", "--password", "carol-pw")
    c = phones.start("carol")
    c.add_account("carol", "carol-pw", server.sip)
    c.ctl.wait_event("REGISTER_OK", 10)
    server.stop()
    server.start()
    regs = server.cli("registration", "list")
    assert [r["sip_user"] for r in regs] == ["carol"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pjsua2_registers(server: Server, transport: str) -> None:
    app = server.cli("app", "create", "pj")
    server.cli("device", "add", "--app", app["app_id"], "pjuser", "--password", "pj-secret")
    res = subprocess.run(
        ["python3", str(Path(__file__).parent / "pj_register.py"), server.sip, "pjuser",
         "pj-secret", transport, str(free_port()), "3"],
        capture_output=True, text=True, timeout=60,
    )
    states = [line for line in res.stdout.splitlines() if line.startswith("REG_STATE")]
    assert states and states[0].startswith("REG_STATE 200"), res.stdout + res.stderr
    regs = server.cli("registration", "list")
    assert not any(r["sip_user"] == "pjuser" for r in regs)  # it unregistered at the end


def test_registrations_complete_under_20_percent_loss(server: Server) -> None:
    app = server.cli("app", "create", "lossy")
    devices = [(f"loss{i:03d}", f"pw-{i:03d}-secret") for i in range(40)]
    server.add_devices(app["app_id"], devices)
    csv = server.data_dir.parent / "loss.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{u};{p};[authentication username={u} password={p}];\n" for u, p in devices))
    with LossyRelay(("127.0.0.1", server.sip_port), loss=0.2) as relay:
        res = subprocess.run(
            ["sipp", f"127.0.0.1:{relay.port}", "-sf", scenario("register_auth_uac.xml"),
             "-inf", str(csv), "-i", "127.0.0.1", "-p", str(free_port()), "-m", "40",
             "-r", "20", "-max_non_invite_retrans", "12", "-timeout", "120", "-nostdin",
             "-trace_stat", "-stf", str(csv.parent / "loss-stat.csv")],
            capture_output=True, text=True, timeout=150, cwd=csv.parent,
        )
    assert relay.dropped > 10  # the loss really happened
    stat = (csv.parent / "loss-stat.csv").read_text().splitlines()
    row = dict(zip(stat[0].split(";"), stat[-1].split(";"), strict=False))
    assert res.returncode == 0, res.stderr[-1000:]
    assert row["SuccessfulCall(C)"] == "40"
    assert int(row["Retransmissions(C)"]) > 0  # completed through retransmission


def test_pjsua2_registers_with_sha256_digest(tmp_path: Path) -> None:
    """RFC 8760: challenged with SHA-256 only, PJSIP must answer with it (tongdai checks
    the stored SHA-256 HA1)."""
    server = make_server(tmp_path, digest_algorithms="SHA-256")
    server.start()
    try:
        app = server.cli("app", "create", "sha")
        server.add_devices(app["app_id"], [("shauser", "sha-secret-pw")])
        res = subprocess.run(
            ["python3", str(Path(__file__).parent / "pj_register.py"), server.sip, "shauser",
             "sha-secret-pw", "udp", str(free_port()), "2"],
            capture_output=True, text=True, timeout=60,
        )
        states = [ln for ln in res.stdout.splitlines() if ln.startswith("REG_STATE")]
        assert states and states[0].startswith("REG_STATE 200"), res.stdout + res.stderr
    finally:
        server.stop()
