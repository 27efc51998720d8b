"""Group commit: the write transactions that queue while one commits share the next.

A durable commit costs a disk flush (milliseconds: on SQLite with ``synchronous=FULL``
one fsync of the write-ahead log), whatever it holds. The records of calls and the
app event log each commit for themselves, so under load most of the database's time
went to flushes, one after another. Here each writer still returns only once its
statements are durable, but the writers that arrive while a transaction commits are
run together in the next one: one that fails rolls back alone and gets its error; the
others commit (they run under one SAVEPOINT, and only after a failure each under its
own). A commit that fails fails every writer in it.

A writer is a plain function of a synchronous connection, so a whole transaction is
one call into the database's thread (``Run``) rather than a round trip per statement:
on this hot path the round trips, not the statements, were the cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")
Write = Callable[[Connection], T]
# Runs a function in one committed write transaction (raising if it cannot commit).
Run = Callable[[Callable[[Connection], list["_Outcome"]]], Awaitable[list["_Outcome"]]]


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Writer:
    write: Write[Any]
    done: asyncio.Future[Any] = field(default_factory=_future)


@dataclass(frozen=True, slots=True)
class _Outcome:
    value: Any = None
    error: Exception | None = None


class GroupCommit:
    """Runs the writes given to ``write`` in shared transactions, each run by ``run``,
    one batch at a time, in arrival order."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._queue: list[_Writer] = []
        self._leader: asyncio.Task[None] | None = None
        self.transactions = 0  # committed, for tests and benchmarks
        self.writers = 0

    async def write(self, write: Write[T]) -> T:
        """Run ``write`` in a shared transaction; return its result once committed
        (or raise its error, or why the transaction could not commit)."""
        w = _Writer(write)
        self._queue.append(w)
        if self._leader is None or self._leader.done():
            self._leader = asyncio.get_running_loop().create_task(
                self._lead(), name="group-commit")
        # A writer cancelled while it waits is left out of its batch; once the batch
        # has started, its write commits with the others all the same.
        result: T = await w.done
        return result

    async def _lead(self) -> None:
        while self._queue:
            batch = [w for w in self._queue if not w.done.done()]
            self._queue = []
            if not batch:
                continue
            try:
                outcomes = await self._run(_apply_all([w.write for w in batch]))
            except Exception as exc:
                for w in batch:
                    _settle(w.done, _Outcome(error=exc))
                continue
            except BaseException:  # cancelled: so is every writer still waiting
                for w in (*batch, *self._queue):
                    w.done.cancel()
                self._queue.clear()
                raise
            self.transactions += 1
            for w, outcome in zip(batch, outcomes, strict=True):
                self.writers += outcome.error is None
                _settle(w.done, outcome)


def _apply_all(writes: Sequence[Write[Any]]) -> Callable[[Connection], list[_Outcome]]:
    def apply(conn: Connection) -> list[_Outcome]:
        if len(writes) == 1:  # alone: its error rolls back the whole transaction
            return [_Outcome(value=writes[0](conn))]
        # Writers seldom fail: all of them under one SAVEPOINT first; only when one
        # does, back to it and each again in a SAVEPOINT of its own (writers are
        # plain statements, so running one again has no other effect).
        try:
            with conn.begin_nested():
                return [_Outcome(value=write(conn)) for write in writes]
        except Exception:
            pass
        return [_one(conn, write) for write in writes]
    return apply


def _one(conn: Connection, write: Write[Any]) -> _Outcome:
    try:
        with conn.begin_nested():
            return _Outcome(value=write(conn))
    except Exception as exc:
        return _Outcome(error=exc)


def _settle(fut: asyncio.Future[Any], outcome: _Outcome) -> None:
    if fut.done():
        return
    if outcome.error is not None:
        fut.set_exception(outcome.error)
    else:
        fut.set_result(outcome.value)
