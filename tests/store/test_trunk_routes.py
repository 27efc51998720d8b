"""Outbound routing over several trunks, on both backends: the prefixes and priority
stored with each trunk, and the order ``pbx.routes`` tries them in."""

from __future__ import annotations

from typing import Any

import pytest

from tongdai.numbers import dialable
from tongdai.pbx.routes import failover, trunk_order
from tongdai.store.errors import Invalid, NotFound
from tongdai.store.sql import SqlStore


async def _order(store: SqlStore, app_id: str, number: str) -> list[str]:
    return [t.name for t in trunk_order(await store.list_trunks(app_id), dialable(number))]


async def test_routes_and_priority_are_stored(store: SqlStore) -> None:
    a = await store.create_app("a")
    t = await store.add_trunk(a.app_id, "mobile", host="10.0.0.1", routes="09, 03,09,",
                              priority=5)
    assert (t.routes, t.priority) == (("09", "03"), 5)
    plain = await store.add_trunk(a.app_id, "any", host="10.0.0.2")
    assert (plain.routes, plain.priority) == ((), 0)
    assert await store.list_trunks(a.app_id) == [t, plain]
    changed = await store.update_trunk("mobile", app_id=a.app_id, routes=["+", "1900"])
    assert (changed.routes, changed.priority) == (("+", "1900"), 5)
    changed = await store.update_trunk("mobile", app_id=a.app_id, priority=1)
    assert (changed.routes, changed.priority) == (("+", "1900"), 1)
    cleared = await store.update_trunk("mobile", app_id=a.app_id, routes="")
    assert cleared.routes == ()
    assert (await store.list_trunks(a.app_id))[0] == cleared


async def test_route_input_is_checked(store: SqlStore) -> None:
    a = await store.create_app("a")
    bad: list[dict[str, Any]] = [
        {"routes": "9"}, {"routes": "09x"}, {"routes": "+849"}, {"routes": "++1"},
        {"routes": "0" * 16}, {"routes": ",".join(f"0{i}" for i in range(40))},
        {"priority": -1}, {"priority": 1001},
    ]
    for args in bad:
        with pytest.raises(Invalid):
            await store.add_trunk(a.app_id, "t", host="10.0.0.1", **args)
    assert await store.list_trunks() == []
    await store.add_trunk(a.app_id, "t", host="10.0.0.1")
    with pytest.raises(Invalid, match="national form"):
        await store.update_trunk("t", app_id=a.app_id, routes="+8490")
    with pytest.raises(Invalid):
        await store.update_trunk("t", app_id=a.app_id, priority=5000)
    with pytest.raises(NotFound):
        await store.update_trunk("nope", app_id=a.app_id, priority=1)
    b = await store.create_app("b")
    with pytest.raises(NotFound):  # another app's trunk is not reachable by name
        await store.update_trunk("t", app_id=b.app_id, priority=1)


async def test_longest_prefix_then_priority_then_creation_order(store: SqlStore) -> None:
    a = await store.create_app("a")
    await store.add_trunk(a.app_id, "everything", host="10.0.0.1")
    await store.add_trunk(a.app_id, "backup", host="10.0.0.2", priority=10)
    await store.add_trunk(a.app_id, "mobile", host="10.0.0.3", routes="09,03")
    await store.add_trunk(a.app_id, "mobifone", host="10.0.0.4", routes="090,093,089")
    await store.add_trunk(a.app_id, "mobile2", host="10.0.0.5", routes="09")
    await store.add_trunk(a.app_id, "abroad", host="10.0.0.6", routes="+")
    await store.add_trunk(a.app_id, "usa", host="10.0.0.7", routes="+1", priority=3)
    await store.add_trunk(a.app_id, "hcmc", host="10.0.0.8", routes="028", priority=2)

    assert await _order(store, a.app_id, "0901234567") == [
        "mobifone", "mobile", "mobile2", "everything", "backup"]
    # Same number, written as integrators do.
    assert await _order(store, a.app_id, "+84 90 123 4567") == [
        "mobifone", "mobile", "mobile2", "everything", "backup"]
    assert await _order(store, a.app_id, "0912345678") == [
        "mobile", "mobile2", "everything", "backup"]
    # The retired 11-digit mobile is routed as its new number (0393608879).
    assert await _order(store, a.app_id, "01693608879") == [
        "mobile", "everything", "backup"]
    assert await _order(store, a.app_id, "02873019555") == ["hcmc", "everything", "backup"]
    assert await _order(store, a.app_id, "+14155550100") == [
        "usa", "abroad", "everything", "backup"]
    assert await _order(store, a.app_id, "+6561234567") == ["abroad", "everything", "backup"]
    assert await _order(store, a.app_id, "19001234") == ["everything", "backup"]
    # A priority change takes effect.
    await store.update_trunk("mobile2", app_id=a.app_id, priority=0)
    await store.update_trunk("mobile", app_id=a.app_id, priority=1)
    assert (await _order(store, a.app_id, "0912345678"))[:2] == ["mobile2", "mobile"]


async def test_a_number_no_trunk_serves_has_no_route(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    await store.add_trunk(a.app_id, "mobile", host="10.0.0.1", routes="09,03")
    await store.add_trunk(b.app_id, "everything", host="10.0.0.2")
    assert await _order(store, a.app_id, "02873019555") == []
    assert await _order(store, a.app_id, "+14155550100") == []
    # Another app's trunks never carry this app's calls.
    assert await _order(store, b.app_id, "02873019555") == ["everything"]


@pytest.mark.parametrize(
    ("code", "rang", "expected"),
    [(503, False, True), (500, False, True), (502, False, True), (408, False, True),
     (401, False, True), (407, False, True),
     (486, False, False), (404, False, False), (403, False, False), (480, False, False),
     (603, False, False), (600, False, False), (503, True, False), (408, True, False)],
)
def test_which_failures_move_to_the_next_trunk(code: int, rang: bool, expected: bool) -> None:
    assert failover(code, rang=rang) is expected
