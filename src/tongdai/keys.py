"""Server secrets kept in the data dir: made once, shared by every process using it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def load_or_create_key(data_dir: Path, name: str) -> bytes:
    """The 32-byte secret in ``data_dir/secrets/<name>``, made (0600) if absent.

    Created under a temporary name and hard-linked into place, so two processes
    starting together agree on one secret and nobody reads a half-written file.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = data_dir / "secrets"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / name
    if not path.exists():
        tmp = directory / f".{name}.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} is shorter than {KEY_BYTES} bytes; delete it to make "
                         "a new one (what it signed will stop verifying)")
    return key


STORE_KEY = "store.key"


def store_key(data_dir: Path) -> bytes:
    """The key sealing app secrets and trunk passwords in the database
    (``data_dir/secrets/store.key``; see ``tongdai.store.sealing``)."""
    return load_or_create_key(data_dir, STORE_KEY)
