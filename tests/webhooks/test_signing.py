"""Delivery signatures, and the verification snippet of docs/webhooks.md."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from tongdai.webhooks.signing import REPLAY_WINDOW, new_secret, sign, verify

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"call.ended"}'


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec_test", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signature_within_the_window_only() -> None:
    header = sign(SECRET, 1700000000, BODY)
    assert verify(SECRET, header, BODY, now=1700000000 + REPLAY_WINDOW)
    assert verify(SECRET, header, BODY, now=1700000000 - 10)
    assert not verify(SECRET, header, BODY, now=1700000000 + REPLAY_WINDOW + 1)


def test_verify_refuses_a_changed_body_timestamp_or_secret() -> None:
    header = sign(SECRET, 1700000000, BODY)
    assert not verify(SECRET, header, BODY + b" ", now=1700000000)
    assert not verify("whsec_other", header, BODY, now=1700000000)
    moved = header.replace("t=1700000000", "t=1700000001")
    assert not verify(SECRET, moved, BODY, now=1700000000)
    for bad in ("", "v1=abc", "t=1700000000", "t=x,v1=00", "garbage"):
        assert not verify(SECRET, bad, BODY, now=1700000000)


def test_any_of_several_v1_values_may_match() -> None:
    good = sign(SECRET, 1700000000, BODY).split(",")[1]
    assert verify(SECRET, f"t=1700000000,v1={'0' * 64},{good}", BODY, now=1700000000)


def test_secrets_are_long_and_distinct() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40


def test_the_documented_python_snippet_verifies_a_real_signature() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    snippet = next(b for b in blocks if "def verify_tongdai" in b)
    scope: dict[str, object] = {}
    exec(snippet, scope)
    check = scope["verify_tongdai"]
    assert callable(check)
    header = sign(SECRET, 1700000000, BODY)
    assert check(SECRET, header, BODY, now=1700000000) is True
    assert check(SECRET, header, BODY + b"x", now=1700000000) is False
    assert check(SECRET, header, BODY, now=1700000000 + 301) is False
