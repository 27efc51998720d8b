"""A tongdai older than its database's schema (a node of a rolling upgrade restarted
with the old version, docs/upgrade.md) stops with one line, not a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cli.runner import Run


def _migrated_by_a_newer_version(data: Path) -> None:
    db = sqlite3.connect(data / "tongdai.sqlite3")
    try:
        with db:
            db.execute("UPDATE alembic_version SET version_num = '9999'")
    finally:
        db.close()


def test_the_cli_says_the_schema_is_newer(run: Run, tmp_path: Path) -> None:
    _migrated_by_a_newer_version(tmp_path / "data")
    code, out, err = run("db", "upgrade")
    assert (code, out) == (1, "")
    assert err.startswith("tongdai: the database is at schema revision 9999, newer than")
    assert err.count("\n") == 1 and "docs/upgrade.md" in err


def test_serve_does_not_start_on_a_newer_schema(run: Run, tmp_path: Path) -> None:
    _migrated_by_a_newer_version(tmp_path / "data")
    env = {**os.environ, "TONGDAI_DATA_DIR": str(tmp_path / "data"),
           "TONGDAI_SIP_PORT": "0", "TONGDAI_HTTP_PORT": "0"}
    env.pop("TONGDAI_DATABASE_URL", None)
    r = subprocess.run([sys.executable, "-m", "tongdai", "serve"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("tongdai: cannot start: the database is at schema revision 9999")
    assert "Traceback" not in r.stderr + r.stdout
