"""Admin keys and operator passwords: how they are made, kept and checked.

An admin key is ``tdk_<key_id>_<secret>``: ``key_id`` finds the row, and only
SHA-256 of the whole key is stored (the key is 190 random bits: a fast hash is
enough), compared in constant time. An operator password is chosen by a person, so
it is kept as scrypt (RFC 7914; N=2^14, r=8, p=1, a 16-byte salt), which makes each
guess against a stolen table cost memory and time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string

KEY_PREFIX = "tdk_"
_ID_ALPHABET = string.ascii_lowercase + string.digits
KEY_ID_LENGTH = 12
_KEY = re.compile(r"tdk_([a-z0-9]{12})_([A-Za-z0-9_-]{20,64})")
MIN_OPERATOR_PASSWORD = 10
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# Checked against when the operator does not exist, so an unknown name costs the same.
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def new_key() -> tuple[str, str, str]:
    """(key_id, the key to hand out, its stored hash)."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    return key_id, key, key_hash(key)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id of something shaped like a key, else None."""
    m = _KEY.fullmatch(key.strip())
    return m.group(1) if m else None


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(key.strip()).encode(), stored_hash.encode())


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P),
                     _b64(salt), _b64(digest)])


def password_matches(password: str, stored: str | None) -> bool:
    """True if ``password`` is the one ``stored`` was made from (constant time; an
    unknown operator, ``None``, costs one scrypt too)."""
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        want = _unb64(digest)
        got = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(got, want) and stored is not None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r,
                          p=p, maxmem=64 * 1024 * 1024, dklen=32)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
