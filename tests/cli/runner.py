"""The admin CLI run in-process: ``run(*argv)`` -> (exit code, stdout, stderr), and the
checks most CLI tests make of one run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tongdai.cli import main

Run = Callable[..., tuple[int, str, str]]
# Settings from the developer's environment that would change what the CLI does.
CLEARED = ("TONGDAI_DATABASE_URL", "TONGDAI_SIP_DOMAIN", "TONGDAI_SIP_HOST", "TONGDAI_CONFIG")


def cli_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               capsys: pytest.CaptureFixture[str], *, unset: Iterable[str] = CLEARED) -> Run:
    """A runner with the data dir under tmp_path and its database created (``db init``),
    the ``unset`` variables removed from the environment."""
    for var in unset:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    assert run("db", "init")[0] == 0
    return run


def json_of(run: Run, *argv: str) -> Any:
    """The one JSON value a successful, silent ``--json`` run prints."""
    code, out, err = run(*argv, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)  # exactly one JSON value


def error_of(run: Run, *argv: str) -> str:
    """The one-line ``tongdai: ...`` error of a run that fails with exit code 1."""
    code, out, err = run(*argv)
    assert code == 1, (out, err)
    assert out == ""
    assert err.startswith("tongdai: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err
