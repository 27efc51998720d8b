"""The random identifiers of SIP: tags, branches, Call-IDs, cnonces and nonce entropy.

One function per kind, so every tag tongdai puts in a To or From header is made the
same way. ``secrets`` (the OS's CSPRNG) because RFC 3261 requires them to be
unguessable: a tag (§19.3) and a Call-ID (§8.1.1.4) must be "cryptographically
random" enough that a third party cannot forge an in-dialog request.

The OS is asked for randomness a page at a time, not once per identifier (a call
makes about ten): each identifier takes its own block of that page, never shared,
and a forked child forgets the blocks its parent drew.
"""

from __future__ import annotations

import collections
import os
import secrets

# RFC 3261 §8.1.1.7: a branch that starts with this cookie is RFC 3261 compliant.
MAGIC_COOKIE = "z9hG4bK"

TAG_BYTES = 6  # 48 bits; RFC 3261 §19.3 asks for at least 32
BRANCH_BYTES = 8
CALL_ID_BYTES = 16
CNONCE_BYTES = 8
NONCE_ENTROPY_BYTES = 8

_BLOCK = 16  # bytes per identifier drawn: the longest above
_PAGE = 4096  # bytes read from the OS at a time
_blocks: collections.deque[bytes] = collections.deque()
os.register_at_fork(after_in_child=_blocks.clear)


def _random(n: int) -> bytes:
    """``n`` (at most 16) bytes from the OS's CSPRNG, used for nothing else."""
    try:
        block = _blocks.popleft()  # atomic: no two callers get the same block
    except IndexError:
        page = secrets.token_bytes(_PAGE)
        _blocks.extend(page[i:i + _BLOCK] for i in range(_BLOCK, _PAGE, _BLOCK))
        block = page[:_BLOCK]
    return block[:n]


def new_tag() -> str:
    """A From/To tag (RFC 3261 §19.3)."""
    return _random(TAG_BYTES).hex()


def new_branch() -> str:
    """A Via branch, with the magic cookie (RFC 3261 §8.1.1.7)."""
    return MAGIC_COOKIE + _random(BRANCH_BYTES).hex()


def new_call_id() -> str:
    """A Call-ID (RFC 3261 §8.1.1.4)."""
    return _random(CALL_ID_BYTES).hex()


def new_cnonce() -> str:
    """The client nonce of a digest answer (RFC 7616 §3.4)."""
    return _random(CNONCE_BYTES).hex()


def token_hex(nbytes: int) -> str:
    """``nbytes`` (at most 16) random bytes in hex: tongdai's own identifiers (a call's
    id as CDRs show it), drawn from the same pages as SIP's."""
    return _random(nbytes).hex()


def nonce_entropy() -> bytes:
    """The random part of a server nonce (``DigestServer.make_nonce``)."""
    return _random(NONCE_ENTROPY_BYTES)
