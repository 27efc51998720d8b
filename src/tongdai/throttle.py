"""Brute-force protection for every password check: SIP digest (REGISTER and INVITE)
and the Open API.

Failed authentications are counted per source address and per (source address,
user) within ``window`` seconds. A key that reaches its limit is blocked for
``block`` seconds:

- an address over ``address_limit`` is refused whatever it sends;
- an (address, user) pair over ``limit`` is refused for that user only. The same
  user from another address is served, so a stranger who types wrong passwords for
  ``alice`` blocks himself, not alice.

A blocked key stays blocked for its whole period: its requests are refused before
their credentials are looked at (the right password included, so a guesser learns
nothing while blocked) and nothing it sends shortens the block. When the block ends
the key starts counting from zero.

A guesser spread over many addresses is slowed, never let in and never used to lock
the user out: ``user_limit`` failures for one user from all addresses within the
window mark that user as under attack for ``block`` seconds, and meanwhile a single
failure blocks an (address, user) pair. An address that presents the right password
is never refused because of the user's state.

Memory is bounded: counts are kept for at most ``max_keys`` keys (the least recently
failing are forgotten first), blocks for at most ``max_keys`` keys (the soonest to
end go first). Blocks and refusals are logged at warning through ``tongdai.logs``;
refusals at most once a minute per blocked key, with how many there were. The
addresses blocked during an attack on a user are counted in one line when it ends.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from tongdai import logs

log = logging.getLogger("tongdai.security")

# Usernames come from the peer: bound what a key (and a log line) keeps of them.
MAX_USER_LEN = 64
REFUSAL_LOG_INTERVAL = 60.0

Key = tuple[str, ...]


@dataclass(slots=True)
class _Count:
    failures: int
    window_start: float


@dataclass(slots=True)
class _Block:
    until: float
    refused: int = 0  # refusals not yet logged
    logged_at: float | None = None
    # A pair blocked at its first failure while its user is under attack: one per
    # attacking address, so it is summed into the user's end-of-attack line instead
    # of making a log line each (an attacker must not be able to flood the log).
    quiet: bool = False
    pairs: int = 0  # for a user under attack: the pairs blocked meanwhile


class AuthThrottle:
    """Failure counting and blocking for one service (``scope``: "sip", "http")."""

    def __init__(
        self, *, scope: str, address_limit: int, limit: int | None = None,
        user_limit: int | None = None, window: float = 60.0, block: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self.scope = scope
        self.address_limit = address_limit
        self.limit = limit if limit is not None else address_limit
        self.user_limit = user_limit
        self.window = window
        self.block = block
        self.max_keys = max_keys
        self._counts: OrderedDict[Key, _Count] = OrderedDict()
        # Every block lasts ``block`` seconds, so insertion order is expiry order.
        self._blocks: OrderedDict[Key, _Block] = OrderedDict()
        # Totals since start, for metrics: failures counted, blocks imposed (by key
        # kind; "user" is a user marked under attack), requests refused while blocked.
        self.failures = 0
        self.blocks = {"address": 0, "address_user": 0, "user": 0}
        self.refusals = 0

    def __len__(self) -> int:
        return len(self._counts) + len(self._blocks)

    def retry_after(self, host: str, user: str | None, now: float) -> float:
        """Seconds until ``host`` (asking as ``user``, if known yet) may try again;
        0 when its credentials may be checked now.

        A positive answer means the caller refuses the request; it is counted and
        logged as a refusal.
        """
        self._expire(now)
        wait = 0.0
        for key in _keys(host, user):
            b = self._blocks.get(key)
            if b is None:
                continue
            wait = max(wait, b.until - now)
            b.refused += 1
            if b.quiet:
                continue
            if b.logged_at is None or now - b.logged_at >= REFUSAL_LOG_INTERVAL:
                logs.event(log, "auth.refused", level=logging.WARNING, scope=self.scope,
                           **_fields(key), refused=b.refused, retry_after=int(b.until - now) + 1)
                b.refused = 0
                b.logged_at = now
        if wait > 0:
            self.refusals += 1
        return wait

    def failure(self, host: str, user: str | None, now: float) -> None:
        """Count one failed authentication from ``host`` as ``user`` (None when the
        request named none, or for services that only count addresses)."""
        self._expire(now)
        self.failures += 1
        attack = None
        if user is not None and self.user_limit is not None:
            ukey = ("user", _user(user))
            attack = self._blocks.get(ukey)
            if attack is None:
                self._count(ukey, self.user_limit, now, event="auth.user_under_attack")
        self._count(("address", host), self.address_limit, now)
        if user is not None:
            pair = ("address_user", host, _user(user))
            if attack is None:
                self._count(pair, self.limit, now)
            elif self._count(pair, 1, now, quiet=True):
                attack.pairs += 1

    def success(self, host: str, user: str) -> None:
        """A correct password from ``host`` as ``user`` clears that pair's count.

        The address count is kept: a tenant's own valid account must not reset the
        address it guesses other accounts from.
        """
        self._counts.pop(("address_user", host, _user(user)), None)

    def _count(
        self, key: Key, limit: int, now: float, *, event: str = "auth.blocked",
        quiet: bool = False,
    ) -> bool:
        """Count a failure against ``key``; True if that blocked it."""
        if key in self._blocks:
            return False  # blocked keys are refused before they can fail
        c = self._counts.get(key)
        if c is None or now - c.window_start > self.window:
            c = _Count(failures=0, window_start=now)
            self._counts[key] = c
        c.failures += 1
        self._counts.move_to_end(key)
        blocked = c.failures >= limit
        if blocked:
            del self._counts[key]
            self._blocks[key] = _Block(until=now + self.block, quiet=quiet)
            self.blocks[key[0]] = self.blocks.get(key[0], 0) + 1
            if not quiet:
                logs.event(log, event, level=logging.WARNING, scope=self.scope,
                           **_fields(key), failures=c.failures, seconds=int(self.block))
            while len(self._blocks) > self.max_keys:
                self._blocks.popitem(last=False)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return blocked

    def active_blocks(self, now: float) -> int:
        """Blocks in force at ``now`` (read by metrics; expired ones linger until the
        next authentication drops them)."""
        return sum(1 for b in self._blocks.values() if b.until > now)

    def _expire(self, now: float) -> None:
        while self._blocks:
            key, b = next(iter(self._blocks.items()))
            if b.until > now:
                return
            del self._blocks[key]
            if key[0] == "user":
                logs.event(log, "auth.user_attack_ended", level=logging.WARNING,
                           scope=self.scope, **_fields(key), blocked_addresses=b.pairs)
            elif b.refused and not b.quiet:
                logs.event(log, "auth.refused", level=logging.WARNING, scope=self.scope,
                           **_fields(key), refused=b.refused, retry_after=0)


def _user(user: str) -> str:
    return user[:MAX_USER_LEN]


def _keys(host: str, user: str | None) -> tuple[Key, ...]:
    if user is None:
        return (("address", host),)
    return (("address", host), ("address_user", host, _user(user)))


def _fields(key: Key) -> dict[str, str]:
    match key:
        case ("address", host):
            return {"key": "address", "host": host}
        case ("address_user", host, user):
            return {"key": "address_user", "host": host, "user": user}
        case ("user", user):
            return {"key": "user", "user": user}
    return {"key": ":".join(key)}
