"""``tongdai prompt ...``: an app's prompts (converted once, at upload) and the built-ins
(the rules are the admin service's, ``tongdai.admin.prompts``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tongdai.media.prompts import BUILTIN
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore

Result = tuple[Any, str]
Leaf = Callable[..., Any]


async def prompt_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).prompts.add(
        a.app, a.name, file=Path(a.file) if a.file is not None else None, text=a.text,
        lang=a.lang)
    return d, _fields(d)


async def prompt_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).prompts.list(a.app)
    return rows, _table(rows, ["name", "seconds", "source"], "no prompts")


async def prompt_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).prompts.remove(a.app, a.name)
    back = " (the built-in one plays again)" if a.name in BUILTIN else ""
    return d, f"prompt {a.name} removed{back}"


def add_commands(g: Any, leaf: Leaf) -> None:
    """The ``prompt`` group's commands (``g``: its subparsers; ``leaf``: cli.py's)."""
    c = leaf(g, "add", prompt_add, "add or replace an app's prompt: a WAV, MP3, OGG or FLAC "
             "file converted once to 8 kHz, or --text spoken by espeak-ng")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("name", help="1-40 of a-z 0-9 _ -; a built-in's name replaces it")
    c.add_argument("file", nargs="?", help="the audio file")
    c.add_argument("--text", metavar="TEXT", help="speak TEXT instead (needs espeak-ng)")
    c.add_argument("--lang", default="vi", metavar="LANG",
                   help="espeak-ng voice for --text (default vi; en, en-us, ...)")
    leaf(g, "list", prompt_list, "an app's prompts: its own and the built-ins").add_argument(
        "--app", required=True, metavar="APP_ID")
    c = leaf(g, "remove", prompt_remove, "remove an app's own prompt")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("name")
