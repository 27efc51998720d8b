"""docs/upgrade.md says, for every migration, whether nodes can be upgraded one at a
time across it: a new migration is classified there before it ships."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
VERSIONS = ROOT / "src" / "tongdai" / "store" / "migrations" / "versions"


def _classified() -> set[str]:
    """The revisions named in the first column of the migrations table."""
    rows = re.findall(r"^\| ([0-9, ]+) \|", (ROOT / "docs" / "upgrade.md").read_text(), re.M)
    return {rev.strip() for row in rows for rev in row.split(",")}


def test_every_migration_is_classified_for_rolling_upgrades() -> None:
    migrations = {p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")}
    assert len(migrations) >= 15
    missing = sorted(migrations - _classified())
    assert not missing, (f"say in docs/upgrade.md's table whether migrations {missing}"
                         " are additive (nodes upgraded one at a time) or not")
