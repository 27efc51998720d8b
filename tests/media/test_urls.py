from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tongdai.media import RecordingSigner, RecordingUrls, load_or_create_secret

SECRET = b"k" * 32
NAME = "call_recording_dl5m5j5hfh4n8njj1oor.mp3"


def test_signed_url_shape_and_signature() -> None:
    signer = RecordingSigner(SECRET, "https://pbx.example.vn/", 900)
    url, expires = signer.signed_url("app1", NAME, 1_700_000_000.7)
    assert expires == 1_700_000_900
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "pbx.example.vn")
    assert parts.path == f"/recordings/app1/{NAME}"
    query = parse_qs(parts.query)
    assert query["expires"] == ["1700000900"]
    expected = hmac.new(SECRET, f"app1/{NAME}/1700000900".encode(), hashlib.sha256).hexdigest()
    assert query["sig"] == [expected]


def test_verify() -> None:
    signer = RecordingSigner(SECRET, "http://x", 60)
    url, expires = signer.signed_url("app1", NAME, 1000.0)
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    assert signer.verify("app1", NAME, expires, sig, 1000.0)
    assert signer.verify("app1", NAME, expires, sig.upper(), 1060.0)  # hex in any case
    assert not signer.verify("app1", NAME, expires, sig, 1060.5)  # expired
    assert not signer.verify("app2", NAME, expires, sig, 1000.0)  # another app
    assert not signer.verify("app1", NAME.replace("dl5", "dl6"), expires, sig, 1000.0)
    assert not signer.verify("app1", NAME, expires + 3600, sig, 1000.0)  # extended
    assert not signer.verify("app1", NAME, expires, sig[:-1] + "0", 1000.0)
    assert not signer.verify("app1", NAME, expires, "é" * 64, 1000.0)
    assert not signer.verify("app1", NAME, expires, "", 1000.0)
    other = RecordingSigner(b"z" * 32, "http://x", 60)
    assert not other.verify("app1", NAME, expires, sig, 1000.0)


def test_signer_is_a_recording_urls() -> None:
    urls: RecordingUrls = RecordingSigner(SECRET, "http://x", 60)
    assert urls.signed_url("a", NAME, 0)[1] == 60


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        RecordingSigner(b"short", "http://x", 60)
    with pytest.raises(ValueError):
        RecordingSigner(SECRET, "http://x", 0)


def test_secret_is_created_once_private(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert len(first) == 32
    key = tmp_path / "secrets" / "recording.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(tmp_path) == first
    assert [p.name for p in key.parent.iterdir()] == ["recording.key"]
    assert load_or_create_secret(tmp_path / "other") != first


def test_truncated_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "recording.key").write_bytes(b"abc")
    with pytest.raises(ValueError, match="delete it"):
        load_or_create_secret(tmp_path)
