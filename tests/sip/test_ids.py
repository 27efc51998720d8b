"""The one source of SIP tags, branches and Call-IDs."""

from __future__ import annotations

import ast
from pathlib import Path

import tongdai
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
