"""Outbound routing from the CLI: the numbers a trunk serves and its priority."""

from __future__ import annotations

from tests.cli.runner import Run, error_of, json_of


def test_match_and_priority_on_add_set_and_list(run: Run) -> None:
    app = json_of(run, "app", "create", "Acme")["app_id"]
    mobile = json_of(run, "trunk", "add", "--app", app, "mobile", "--host", "10.0.0.1",
                     "--match", "09, 03", "--priority", "5")
    assert (mobile["match"], mobile["priority"]) == (["09", "03"], 5)
    anything = json_of(run, "trunk", "add", "--app", app, "anything", "--host", "10.0.0.2")
    assert (anything["match"], anything["priority"]) == ([], 0)
    changed = json_of(run, "trunk", "set", "mobile", "--app", app, "--priority", "1")
    assert (changed["match"], changed["priority"]) == (["09", "03"], 1)
    changed = json_of(run, "trunk", "set", "mobile", "--app", app, "--match", "+,1900")
    assert (changed["match"], changed["priority"]) == (["+", "1900"], 1)
    assert json_of(run, "trunk", "list", "--app", app) == [changed, anything]
    code, out, _ = run("trunk", "list", "--app", app)
    assert code == 0
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("name "))
    first = next(line for line in lines if line.startswith("mobile "))
    second = next(line for line in lines if line.startswith("anything "))
    assert "match" in head and "priority" in head
    assert "+,1900" in first and "all" in second  # an empty match serves every number
    cleared = json_of(run, "trunk", "set", "mobile", "--app", app, "--match", "")
    assert cleared["match"] == []


def test_routing_flags_are_checked(run: Run) -> None:
    app = json_of(run, "app", "create", "Acme")["app_id"]
    assert "national form (090)" in error_of(
        run, "trunk", "add", "--app", app, "t", "--host", "h", "--match", "+8490")
    assert "must be digits starting with 0 or 1" in error_of(
        run, "trunk", "add", "--app", app, "t", "--host", "h", "--match", "9x")
    assert "between 0 and 1000" in error_of(
        run, "trunk", "add", "--app", app, "t", "--host", "h", "--priority", "-1")
    assert json_of(run, "trunk", "list", "--app", app) == []
    json_of(run, "trunk", "add", "--app", app, "t", "--host", "h")
    assert "nothing to change" in error_of(run, "trunk", "set", "t", "--app", app)
    assert "does not exist" in error_of(run, "trunk", "set", "nope", "--app", app,
                                        "--priority", "1")
    assert "between 0 and 1000" in error_of(run, "trunk", "set", "t", "--app", app,
                                            "--priority", "5000")
