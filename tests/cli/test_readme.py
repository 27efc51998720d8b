"""The README documents every CLI command, its options, and the two commands it promises."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tongdai.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# Options every command has, documented once for all.
COMMON = {"--json", "--config", "--data-dir", "--help", "-h"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    """``{"app create": parser, ..., "serve": parser}`` from the CLI's own parser."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[prefix] = parser
            return
        for name, sub in subs[0].choices.items():
            walk(sub, f"{prefix} {name}".strip())

    walk(_parser(), "")
    return out


def test_every_command_and_option_is_in_the_readme() -> None:
    commands = _commands()
    assert {"registration list", "cdr list", "db init", "device list", "demo"} <= set(commands)
    rows = [line for line in README.splitlines() if line.startswith("| `tongdai ")]
    for name, parser in commands.items():
        row = [r for r in rows if r.startswith(f"| `tongdai {name} ") or
               r.startswith(f"| `tongdai {name}`")]
        assert len(row) == 1, f"README's CLI table has no row for 'tongdai {name}'"
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in COMMON:
                    assert flag in row[0], f"README does not document {flag} of {name}"


def test_the_two_commands_exist() -> None:
    assert "./scripts/start\n" in README and "bash .ci/run\n" in README
    for script in ("scripts/start", "scripts/test", ".ci/run"):
        path = ROOT / script
        assert path.is_file(), script
    assert os.access(ROOT / "scripts" / "start", os.X_OK)
