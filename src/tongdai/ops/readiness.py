"""Readiness: whether this node can take calls and requests now (``/readyz``).

A check answers None when its part is ready, or a short reason when it is not; a
check that raises or takes longer than ``CHECK_TIMEOUT`` is not ready either. The
reasons name what is wrong, never a URL or a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

# A load balancer probes every few seconds: a check slower than this is a failure.
CHECK_TIMEOUT = 2.0

Check = Callable[[], Awaitable[str | None]]


class Pingable(Protocol):
    @property
    def closed(self) -> bool: ...
    async def ping(self) -> None: ...


class Listening(Protocol):
    def listening(self) -> Mapping[str, bool]: ...


def store_check(store: Pingable) -> Check:
    """The store is open and the database answers a query."""
    async def check() -> str | None:
        if store.closed:
            return "closed"
        await store.ping()
        return None
    return check


def sip_check(shell: Listening) -> Check:
    """Every SIP transport is bound."""
    async def check() -> str | None:
        down = [name for name, up in shell.listening().items() if not up]
        return f"not listening on {', '.join(down)}" if down else None
    return check


def bus_check(bus: object) -> Check:
    """The event bus is connected (the in-process bus always is)."""
    async def check() -> str | None:
        return None if getattr(bus, "connected", True) else "not connected"
    return check


class Readiness:
    def __init__(self, checks: Mapping[str, Check], *, timeout: float = CHECK_TIMEOUT) -> None:
        self.checks = dict(checks)
        self.timeout = timeout

    async def report(self) -> dict[str, str]:
        """Each check's result: ``"ok"`` or why it is not ready; run together."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _run(self, check: Check) -> str:
        try:
            reason = await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:
            # The exception's text may carry a DSN: only its kind is shown.
            return f"failed ({type(exc).__name__})"
        return reason or "ok"
