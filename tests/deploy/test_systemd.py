"""deploy/systemd/: the units pass ``systemd-analyze verify`` and write-node-env gives
every node of a machine valid settings and ports of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.deploy.nodeports import collisions, node_ports, node_settings

SYSTEMD = Path(__file__).parents[2] / "deploy" / "systemd"
INSTALLED_TONGDAI = "/opt/tongdai/bin/tongdai"
KAMAILIO = "/usr/sbin/kamailio"
DEBIAN_RTPENGINE = Path("/lib/systemd/system/rtpengine-daemon.service")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def _read_env(path: Path) -> dict[str, str]:
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))


def _verify(units: Path, *names: str) -> str:
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=units,
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "SYSTEMD_UNIT_PATH": f"{units}:"})
    return f"rc={r.returncode} {r.stdout}{r.stderr}".strip()


def _installed_here(tmp: Path) -> Path:
    """The units as installed on this machine: ExecStart runs this checkout's tongdai
    (verify insists that it exists), Kamailio stands in if it is not installed."""
    units = tmp / "units"
    units.mkdir()
    for unit in ("tongdai@.service", "tongdai.target", "tongdai-edge.service"):
        text = (SYSTEMD / unit).read_text().replace(INSTALLED_TONGDAI,
                                                    f"{sys.executable} -m tongdai")
        if not Path(KAMAILIO).exists():
            text = text.replace(KAMAILIO, "/bin/true")
        (units / unit).write_text(text)
    (units / "tongdai@node1.service").symlink_to("tongdai@.service")
    return units


@needs_systemd_analyze
def test_the_units_verify_cleanly(tmp_path: Path) -> None:
    units = _installed_here(tmp_path)
    assert _verify(units, "tongdai@node1.service", "tongdai.target",
                   "tongdai-edge.service") == "rc=0"


@needs_systemd_analyze
def test_a_broken_unit_is_reported(tmp_path: Path) -> None:
    # The check above would catch a mistake: an unknown key is reported.
    units = _installed_here(tmp_path)
    edge = units / "tongdai-edge.service"
    edge.write_text(edge.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    assert "NoNewPrivilege" in _verify(units, "tongdai-edge.service")


@needs_systemd_analyze
@pytest.mark.skipif(not DEBIAN_RTPENGINE.exists(), reason="Debian's rtpengine is not installed")
def test_the_rtpengine_drop_in_verifies_with_debians_unit(tmp_path: Path) -> None:
    units = tmp_path / "units"
    shutil.copytree(SYSTEMD / "rtpengine-daemon.service.d", units / "rtpengine-daemon.service.d")
    shutil.copy(DEBIAN_RTPENGINE, units)
    assert _verify(units, "rtpengine-daemon.service") == "rc=0"


def test_the_units_are_hardened() -> None:
    for unit in ("tongdai@.service", "tongdai-edge.service"):
        text = (SYSTEMD / unit).read_text()
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
            assert line in text.splitlines(), f"{unit} lacks {line}"
    node = (SYSTEMD / "tongdai@.service").read_text().splitlines()
    assert "ReadWritePaths=/var/lib/tongdai" in node
    assert "CapabilityBoundingSet=" in node
    assert "EnvironmentFile=/etc/tongdai/%i.env" in node


def test_node_env_files_give_each_node_its_own_ports(tmp_path: Path) -> None:
    out = subprocess.run([str(SYSTEMD / "write-node-env"), "4", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.count("wrote ") == 4
    shared = _read_env(SYSTEMD / "tongdai.env")
    ports = []
    for i in range(1, 5):
        own = _read_env(tmp_path / f"node{i}.env")
        s = node_settings({**shared, **own})
        assert s.database_url.startswith("postgresql://") and s.bus_url.startswith("redis://")
        ports += node_ports(f"node{i}", s)
    assert collisions(ports) == []


def test_node_env_files_are_kept_and_bad_counts_refused(tmp_path: Path) -> None:
    tool = str(SYSTEMD / "write-node-env")
    subprocess.run([tool, "1", str(tmp_path)], check=True, capture_output=True)
    (tmp_path / "node1.env").write_text("TONGDAI_SIP_PORT=6000\n")
    again = subprocess.run([tool, "2", str(tmp_path)], capture_output=True, text=True,
                           check=True)
    assert "kept" in again.stdout and (tmp_path / "node1.env").read_text().endswith("6000\n")
    for bad in ("0", "x", "31"):
        r = subprocess.run([tool, bad, str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 2 and "write-node-env:" in r.stderr
