"""``tongdai flow/queue/agent ...`` on a real data dir: the issue's example set as
written, refusals with the node's path, versions, and what a flow uses kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.runner import Run, error_of, json_of
from tests.flows.test_document import EXAMPLE

DID = "02873001234"


@pytest.fixture
def app(run: Run) -> str:
    app_id = str(json_of(run, "app", "create", "Shop")["app_id"])
    for user in ("alice", "bob"):
        json_of(run, "device", "add", "--app", app_id, user, "--password", "secret-pw-1")
    json_of(run, "did", "add", "--app", app_id, DID, "--device", "alice")
    return app_id


def test_the_example_flow_end_to_end(run: Run, app: str, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(EXAMPLE)
    assert json_of(run, "flow", "check", str(flow))["queues"] == ["sales"]
    assert error_of(run, "flow", "set", "--app", app, "--did", DID, str(flow)) == (
        "tongdai: flow refused: menu.options.1.queue: no queue 'sales' in this app\n")
    q = json_of(run, "queue", "add", "--app", app, "sales", "--agents", "alice,bob",
                "--strategy", "round-robin", "--max-wait", "60")
    assert (q["agents"], q["strategy"], q["max_wait"]) == (["alice", "bob"], "round-robin", 60)
    d = json_of(run, "flow", "set", "--app", app, "--did", DID, str(flow))
    assert (d["did"], d["version"], d["name"]) == (DID, 1, f"did {DID}")
    assert json_of(run, "flow", "set", "--app", app, "--did", DID, str(flow))["version"] == 2
    shown = json_of(run, "flow", "show", "--did", DID)
    assert shown["document"] == EXAMPLE
    assert [f["did"] for f in json_of(run, "flow", "list", "--app", app)] == [DID]
    assert "uses queue 'sales'" in error_of(run, "queue", "remove", "--app", app, "sales")
    assert f"flow did {DID} uses device 'bob'" in error_of(
        run, "device", "remove", "bob", "--app", app)
    q = json_of(run, "queue", "set", "--app", app, "sales", "--agents", "bob")
    assert (q["agents"], q["strategy"]) == (["bob"], "round-robin")
    assert json_of(run, "agent", "pause", "--app", app, "bob") == {
        "sip_user": "bob", "paused": True}
    json_of(run, "agent", "unpause", "--app", app, "bob")
    json_of(run, "flow", "remove", "--app", app, "--did", DID)
    assert json_of(run, "flow", "list") == []
    json_of(run, "queue", "remove", "--app", app, "sales")


def test_bad_flows_name_the_node(run: Run, app: str, tmp_path: Path) -> None:
    cases = {
        "menu: {prompt: welcome, options: {'1': {dance: x}}}":
            "menu.options.1.dance: unknown node kind 'dance'",
        "{start: a, nodes: {a: {goto: b}}}": "nodes.a.goto: no node 'b' in nodes",
        "{start: a, nodes: {a: {goto: a}}}": "nodes.a: a loop with no exit",
        "play: nothing-like-it": "play: no prompt 'nothing-like-it'",
        "device: carol": "device: no device 'carol' in this app",
    }
    for text, error in cases.items():
        f = tmp_path / "bad.yaml"
        f.write_text(text)
        assert error in error_of(run, "flow", "set", "--app", app, "--did", DID, str(f))
    f.write_text('{"play": "welcome"}')
    assert json_of(run, "flow", "check", "--app", app, str(f))["prompts"] == ["welcome"]
    assert "cannot read" in error_of(run, "flow", "check", str(tmp_path / "missing.yaml"))
    assert "has no flow" in error_of(run, "flow", "show", "--did", DID)
    assert "different agents" in error_of(run, "queue", "add", "--app", app, "q",
                                          "--agents", "alice,alice")
