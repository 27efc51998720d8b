"""Outbound routing: which of an app's trunks may carry a call to a number, in order.

A trunk serves the numbers that begin with one of its prefixes (``routes``, in the
form ``numbers.dialable`` gives numbers: ``09``, ``028``, ``1900``, ``+1``; ``+``
alone for every foreign number), or every number when it lists none. The trunks that
serve a number are tried in this order, the next one only when the previous one
failed as a trunk (see ``FAILOVER``):

1. the longest matching prefix first (a ``0909`` trunk before a ``09`` trunk before a
   trunk that serves everything);
2. then the lower ``priority``;
3. then the trunk created first.

Pure: no I/O, so the Open API (refusing ``no_route`` before ringing anyone) and the
dial plan decide with the same function.
"""

from __future__ import annotations

from collections.abc import Iterable

from tongdai.store.records import TrunkRec

__all__ = ["FAILOVER", "failover", "match_length", "trunk_order"]

# Final responses that say the trunk (not the callee) could not place the call: a 5xx
# server failure (RFC 3261 §21.5; 503 also for our own transport errors, §8.1.3.1),
# 408 (a carrier's timeout, or our Timer B firing with no answer at all), and a 401/407
# challenge our credentials for this trunk could not answer. Any other 4xx, like 404
# or 486, is about the number (wrong, busy) and the next trunk would hear the same; a
# 6xx is a global refusal (§21.6).
FAILOVER = frozenset({401, 407, 408, *range(500, 600)})


def match_length(trunk: TrunkRec, number: str) -> int | None:
    """How long the trunk's best prefix for ``number`` is (0 for a trunk that serves
    every number); None when the trunk does not serve it."""
    if not trunk.routes:
        return 0
    best: int | None = None
    for prefix in trunk.routes:
        if number.startswith(prefix) and (best is None or len(prefix) > best):
            best = len(prefix)
    return best


def trunk_order(trunks: Iterable[TrunkRec], number: str) -> list[TrunkRec]:
    """The trunks that serve ``number`` (its ``numbers.dialable`` form), best first."""
    ranked = [(m, t) for t in trunks if (m := match_length(t, number)) is not None]
    ranked.sort(key=lambda mt: (-mt[0], mt[1].priority, mt[1].trunk_id))
    return [t for _, t in ranked]


def failover(code: int, *, rang: bool) -> bool:
    """True when a trunk leg that ended with ``code`` should be retried on the next
    trunk. Not once the callee's phone rang (180/183): the trunk did its job, and a
    408 then means nobody answered (docs/cdr.md: IVR)."""
    return code in FAILOVER and not rang
