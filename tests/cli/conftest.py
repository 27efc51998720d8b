"""The ``run`` fixture of the CLI tests (``tests.cli.runner``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.runner import Run, cli_runner


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``run(*argv)`` -> (exit code, stdout, stderr), with the data dir under tmp_path
    and its database created (``db init``)."""
    return cli_runner(monkeypatch, tmp_path, capsys)
