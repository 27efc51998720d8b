"""A device password becomes its HA1 values outside the store; the store never hashes."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

import tongdai.store
from tongdai.pbx.credentials import digest_keys
from tongdai.sip.digest import ha1
from tongdai.store.errors import Invalid


def test_digest_keys_are_the_rfc_7616_ha1_values() -> None:
    keys = digest_keys("alice", "pbx.test", "s3cret!")
    assert keys.realm == "pbx.test"
    assert keys.ha1_md5 == hashlib.md5(b"alice:pbx.test:s3cret!").hexdigest()
    assert keys.ha1_sha256 == ha1("SHA-256", "alice", "pbx.test", "s3cret!")
    # An HA1 opens the account as the password does: never in a log line.
    assert keys.ha1_md5 not in repr(keys) and keys.ha1_sha256 not in repr(keys)


@pytest.mark.parametrize("password", ["", "p\nw", "x" * 129])
def test_a_bad_password_is_refused_before_hashing(password: str) -> None:
    with pytest.raises(Invalid, match="password"):
        digest_keys("alice", "pbx.test", password)


def test_the_store_does_not_hash_passwords() -> None:
    for path in Path(tongdai.store.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "tongdai.sip.digest", path.name
