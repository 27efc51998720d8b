"""Secrets at rest: app secrets and trunk passwords are stored encrypted.

Both must be kept recoverable (the Open API recomputes the app hash from the app
secret; a carrier's digest challenge is answered with the trunk password), so they
cannot be hashed like device passwords. They are sealed with AES-256-GCM
(``cryptography``'s AESGCM) under the 32-byte key ``<data dir>/secrets/store.key``.

A stored value is ``enc1:`` + base64url(12-byte nonce ‖ ciphertext ‖ tag), unpadded.
The associated data names the column and the row (``apps.app_secret:<app_id>``), so a
value copied into another row or column does not open. A value without the prefix is
clear text written by an older tongdai: it still works and is sealed at the next
start (``store/secret_rows.py``).

Records carry a ``Sealed`` value; ``reveal()`` decrypts it where the secret is used,
and its repr never shows it, so a logged record leaks nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tongdai.store.errors import StoreError

PREFIX = "enc1:"
KEY_BYTES = 32
_NONCE = 12


class KeyMismatch(StoreError):
    """A sealed value does not open with this process's store key."""


class SecretBox:
    """Seals and opens stored secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"the store key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key[:KEY_BYTES])

    def seal(self, clear: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        data = nonce + self._aead.encrypt(nonce, clear.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    def open(self, stored: str, context: str) -> str:
        if not is_sealed(stored):
            return stored  # clear text from before encryption at rest
        body = stored[len(PREFIX):]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            clear = self._aead.decrypt(data[:_NONCE], data[_NONCE:], context.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise KeyMismatch(
                f"{context.partition(':')[0]} cannot be decrypted: every process using this "
                "database needs the same secrets/store.key in its data dir (copy it from "
                "the first server; if it is lost, 'tongdai db reset-secrets' issues new "
                "app secrets)"
            ) from None
        return clear.decode()

    def wrap(self, stored: str, context: str) -> Sealed:
        return Sealed(stored=stored, context=context, box=self)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A secret as the database holds it; ``reveal()`` is the clear text."""

    stored: str
    context: str
    box: SecretBox = field(compare=False)

    def reveal(self) -> str:
        return self.box.open(self.stored, self.context)

    def __repr__(self) -> str:
        return "Sealed(...)"

    def __str__(self) -> str:
        # Formatting a sealed value is a bug (it would print ciphertext, or was meant
        # to print the secret): make it loud.
        raise TypeError("a Sealed secret is shown only through reveal()")
