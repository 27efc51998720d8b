"""The B2BUA core's own rules: it does no I/O, and its state tables are complete."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tongdai.pbx.b2bua
from tongdai.pbx.b2bua.state import (
    CALL_TABLE,
    LEG_TABLE,
    CallInput,
    CallState,
    LegInput,
    LegState,
    next_call_state,
    next_leg_state,
)
from tongdai.sip.errors import LocalProtocolError

# The asyncio shell (the driver and its parts) and the lookups it does; every other
# module is the pure core.
SHELLS = {"driver.py", "driver_media.py", "driver_sip.py", "driver_store.py",
          "driver_timers.py", "routing.py"}
FORBIDDEN = {"asyncio", "socket", "time", "threading", "selectors", "os", "random",
             "secrets"}
# tongdai modules that do I/O or read a clock: the core learns their answers as events.
FORBIDDEN_OURS = ("tongdai.pbx.dialplan", "tongdai.pbx.location", "tongdai.pbx.directory",
                  "tongdai.pbx.calls", "tongdai.pbx.legs", "tongdai.media", "tongdai.bus",
                  "tongdai.transport", "tongdai.store.sql", "tongdai.store.engine",
                  "tongdai.pbx.b2bua.driver", "tongdai.pbx.b2bua.routing")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_core_does_no_io_and_reads_no_clock() -> None:
    core = [p for p in Path(tongdai.pbx.b2bua.__file__).parent.glob("*.py")
            if p.name not in SHELLS]
    assert len(core) >= 10
    for path in core:
        for name in _imports(path):
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            assert not name.startswith(FORBIDDEN_OURS), f"{path.name} imports {name}"


def test_every_call_state_but_done_can_move_and_done_is_reached_only_by_closing() -> None:
    sources = {s for s, _ in CALL_TABLE}
    assert sources == set(CallState) - {CallState.DONE}
    assert [k for k, v in CALL_TABLE.items() if v is CallState.DONE] == [
        (CallState.SETTLED, CallInput.CLOSED)]
    # Every state before the end can finish: no call is ever stuck ringing.
    for state in (CallState.NEW, CallState.RINGING_A, CallState.ROUTING_B,
                  CallState.RINGING_B, CallState.ANSWERED):
        assert next_call_state(state, CallInput.FINISH) is CallState.ENDED


def test_a_move_missing_from_a_table_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        next_call_state(CallState.ANSWERED, CallInput.DIAL_B)
    with pytest.raises(LocalProtocolError):
        next_leg_state(LegState.INVITED, LegInput.RING)


def test_every_race_a_peer_can_cause_has_a_row() -> None:
    # A 2xx can arrive on a leg in any state we put a ringing leg in.
    for state in (LegState.CALLING, LegState.RINGING, LegState.CANCELLING, LegState.FAILED,
                  LegState.ENDED, LegState.ANSWERED):
        assert (state, LegInput.ANSWER) in LEG_TABLE
    # So can a final failure, on any leg of ours.
    for state in (LegState.CALLING, LegState.RINGING, LegState.CANCELLING, LegState.FAILED,
                  LegState.ENDED):
        assert (state, LegInput.FAIL) in LEG_TABLE
    assert next_leg_state(LegState.CANCELLING, LegInput.ANSWER) is LegState.ENDED
