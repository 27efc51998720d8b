"""The CLI and the server with the data dir's store key: a wrong or lost key stops them
with one sentence, and ``db reset-secrets`` recovers from a lost one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.cli.runner import Run, error_of, json_of

from tongdai import server
from tongdai.settings import load_settings


def _lose_key(tmp_path: Path) -> None:
    (tmp_path / "data" / "secrets" / "store.key").unlink()


def test_a_lost_key_is_named_and_reset_secrets_recovers(run: Run, tmp_path: Path) -> None:
    app = json_of(run, "app", "create", "acme")
    json_of(run, "trunk", "add", "--app", app["app_id"], "carrier", "--host", "10.0.0.1",
            "--username", "u", "--password", "carrier-pw-77")
    _lose_key(tmp_path)
    err = error_of(run, "app", "list")
    assert "secrets/store.key" in err and "tongdai db reset-secrets" in err

    done = json_of(run, "db", "reset-secrets")
    [renewed] = done["new_app_secrets"]
    assert renewed["app_id"] == app["app_id"] and renewed["app_secret"] != app["app_secret"]
    assert done["trunks_without_password"] == [{"app_id": app["app_id"], "trunk": "carrier"}]
    [trunk] = json_of(run, "trunk", "list", "--app", app["app_id"])
    assert trunk["has_password"] is False
    # Everything opens again; a second run changes nothing.
    assert [a["app_id"] for a in json_of(run, "app", "list")] == [app["app_id"]]
    again = json_of(run, "db", "reset-secrets")
    assert again == {"new_app_secrets": [], "trunks_without_password": []}


def test_the_server_refuses_another_key_in_one_line(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_of(run, "app", "create", "acme")
    key = tmp_path / "data" / "secrets" / "store.key"
    key.write_bytes(hashlib.sha256(b"another node's key").digest())
    settings = load_settings(data_dir=tmp_path / "data", sip_port=0, http_port=0)
    assert server.main(settings) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if "cannot start" in x]
    assert "secrets/store.key" in line
