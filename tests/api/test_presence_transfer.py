"""Presence follows a transfer: the device that left is out of the call, the one
that joined is in it (``call.transferred``)."""

from __future__ import annotations

from tongdai.api.presence import LiveCalls
from tongdai.bus import Event, InProcessBus


def _ev(kind: str, users: tuple[str, ...], ts: float, **data: object) -> Event:
    return Event(type=kind, app_id="app", sip_users=users, ts=ts,
                 data={"call_id": "c1", **data})


def test_the_transferred_party_leaves_and_the_new_one_joins() -> None:
    live = LiveCalls(bus=InProcessBus(), stale_after=3600)
    live.handle(_ev("call.ringing", ("alice", "bob"), 100))
    live.handle(_ev("call.answered", ("alice", "bob"), 101))
    assert [c.state for c in live.calls_of("app", "bob", 102)] == ["talking"]
    live.handle(_ev("call.transferred", ("alice", "bob", "carol"), 110,
                    **{"from": {"number": "102", "type": "user", "username": "bob"},
                       "to": {"number": "103", "type": "user", "username": "carol"}}))
    assert live.calls_of("app", "bob", 111) == []
    assert [c.call_id for c in live.calls_of("app", "carol", 111)] == ["c1"]
    assert [c.call_id for c in live.calls_of("app", "alice", 111)] == ["c1"]
    # A transfer out to a phone number: only the device that left changes.
    live.handle(_ev("call.transferred", ("alice", "carol"), 120,
                    **{"from": {"number": "103", "type": "user", "username": "carol"},
                       "to": {"number": "0901234567", "type": "realnumber"}}))
    assert live.calls_of("app", "carol", 121) == []
    live.handle(_ev("call.ended", ("alice", "bob", "carol"), 130))
    assert live.calls_of("app", "alice", 131) == []
