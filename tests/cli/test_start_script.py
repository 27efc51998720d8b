"""``scripts/start`` runs the checkout it lives in, from a virtual environment of its own.

A copy of the checkout (with a version string of its own) is started three times: the
first start makes ``.venv`` and installs the copy into it, the second reuses it, the
third reinstalls because pyproject.toml changed. Every start prints the demo's
credentials, the same ones each time.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COPY_VERSION = "0.1.0+copy"
LAST_DEMO_LINE = "'tongdai device passwd SIP_USER --password -'"


def _copy_checkout(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "tongdai-data")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    for name in ("scripts", "src"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    init = dst / "src" / "tongdai" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"',
                                             f'__version__ = "{COPY_VERSION}"'))


def _start(checkout: Path) -> list[str]:
    """Run scripts/start until the demo text is printed, stop it; return its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGDAI_")}
    base = random.randrange(40000, 60000, 2)
    env |= {"TONGDAI_SIP_PORT": "0", "TONGDAI_HTTP_PORT": "0",
            "TONGDAI_RTP_PORTS": f"{base}-{base + 39}",
            # The demo's softphone websocket (5066 by default) on a port of its own.
            "TONGDAI_SIP_WS_PORT": str(base + 40)}
    proc = subprocess.Popen(
        [str(checkout / "scripts" / "start")], cwd="/", env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if LAST_DEMO_LINE in line or time.monotonic() > deadline:
                break
        assert any(LAST_DEMO_LINE in x for x in lines), "\n".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)  # exec'd: this is tongdai itself
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return lines


def _value(lines: list[str], prefix: str) -> str:
    return next(x for x in lines if x.strip().startswith(prefix)).split()[-1]


def test_start_installs_and_runs_its_own_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "second-checkout"
    checkout.mkdir()
    _copy_checkout(checkout)

    first = _start(checkout)
    assert any(x.startswith("== installing tongdai from") for x in first)
    assert f"tongdai {COPY_VERSION} is running" in first, "\n".join(first)
    assert any(x.strip().startswith("Softphone http://") and x.rstrip().endswith("password)")
               for x in first), "\n".join(first)
    assert (checkout / "tongdai-data" / "tongdai.sqlite3").is_file()
    where = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-c",
         "import tongdai; print(tongdai.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout.strip()
    assert where == str(checkout / "src" / "tongdai" / "__init__.py")

    # A restart reuses the venv and shows the same credentials again.
    second = _start(checkout)
    assert not any(x.startswith("== installing") for x in second), "\n".join(second)
    assert f"tongdai {COPY_VERSION} is running" in second
    assert "Demo app (shown at every start):" in second
    for prefix in ("appId", "appSecret", "alice", "bob"):
        assert _value(second, prefix) == _value(first, prefix)
    assert any(";auth_pass=" in x for x in second)

    # Changed dependencies: the venv is brought up to date before starting.
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    third = _start(checkout)
    assert any(x.startswith("== installing tongdai from") for x in third)
    assert f"tongdai {COPY_VERSION} is running" in third
