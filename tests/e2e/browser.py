"""What the browser tests need: Debian's chromium driven by Playwright for Python
(no browser download is possible here). In CI a missing piece is an error, not a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (.ci/run installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return ""


def marks(why: str) -> list[pytest.MarkDecorator]:
    """The e2e mark, and a skip for ``why`` outside CI (inside CI, an error)."""
    if os.environ.get("CI") and why:
        raise RuntimeError(f"browser tests cannot run in CI: {why}")
    return [pytest.mark.e2e, pytest.mark.skipif(bool(why), reason=why or "-")]
