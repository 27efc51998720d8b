"""The one source of SIP tags, branches and Call-IDs."""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

import pytest

import tongdai
from tongdai.pbx.b2bua.driver import CALL_ID_BYTES, REF_BYTES, RandomIds
from tongdai.sip import ids
from tongdai.sip.endpoint import Endpoint


def test_identifiers_are_random_hex_of_fixed_size() -> None:
    tags = {ids.new_tag() for _ in range(1000)}
    assert len(tags) == 1000
    assert all(len(t) == 2 * ids.TAG_BYTES and int(t, 16) >= 0 for t in tags)
    assert ids.new_branch().startswith("z9hG4bK")
    assert len(ids.new_call_id()) == 2 * ids.CALL_ID_BYTES
    assert len(ids.nonce_entropy()) == ids.NONCE_ENTROPY_BYTES
    ep = Endpoint(host="127.0.0.1", port=5060)
    assert len(ep.new_tag()) == len(ids.new_tag())


def test_no_module_makes_its_own_tags() -> None:
    # One generator (sip/ids.py): nothing that speaks SIP reaches for os.urandom.
    root = Path(tongdai.__file__).parent
    offenders = []
    for path in [p for pkg in ("sip", "pbx", "transport") for p in (root / pkg).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "urandom"
                    and isinstance(node.value, ast.Name) and node.value.id == "os"):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_call_ids_are_read_from_the_os_a_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A system call per identifier was a measurable part of a call's set-up.
    reads: list[int] = []
    real = secrets.token_bytes

    def counted(n: int | None = None) -> bytes:
        reads.append(n or 0)
        return real(n)

    monkeypatch.setattr(secrets, "token_bytes", counted)
    made = RandomIds()
    call_ids = {made.call_id() for _ in range(100)}
    refs = {made.ref() for _ in range(100)}
    assert len(call_ids) == len(refs) == 100
    assert all(len(c) == 2 * CALL_ID_BYTES for c in call_ids)
    assert all(len(r) == 2 * REF_BYTES for r in refs)
    assert len(reads) <= 1
