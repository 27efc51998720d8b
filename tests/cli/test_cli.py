"""The admin CLI, run in-process against a real database."""

import asyncio
import io
import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tongdai.cli import main
from tongdai.settings import Settings
from tongdai.sip.digest import ha1
from tongdai.store.sql import open_store

Run = Callable[..., tuple[int, str, str]]
PASSWORD = "Correct-Horse-9"
TRUNK_PASSWORD = "carrier-pw-77"


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``run(*argv)`` -> (exit code, stdout, stderr), with the data dir under tmp_path."""
    for var in ("TONGDAI_DATABASE_URL", "TONGDAI_SIP_DOMAIN", "TONGDAI_SIP_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "data"))

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def _json(run: Run, *argv: str) -> Any:
    code, out, err = run(*argv, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)  # exactly one JSON value


def _error(run: Run, *argv: str) -> str:
    code, out, err = run(*argv)
    assert code == 1, (out, err)
    assert out == ""
    assert err.startswith("tongdai: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def _admin_round_trip(run: Run) -> None:
    outputs: list[str] = []

    def j(*argv: str) -> Any:
        code, out, err = run(*argv, "--json")
        assert (code, err) == (0, ""), err
        outputs.append(out)
        return json.loads(out)

    app = j("app", "create", "Acme CRM")
    app_id, secret = app["app_id"], app["app_secret"]
    assert re.fullmatch(r"[a-z0-9]{20}", app_id) and re.fullmatch(r"[0-9a-f]{64}", secret)
    listed = j("app", "list")
    assert [a["app_id"] for a in listed] == [app_id]
    assert "app_secret" not in listed[0]

    dev = j("device", "add", "--app", app_id, "alice", "--password", PASSWORD,
            "--name", "Alice Nguyễn", "--extension", "101")
    assert dev == {"sip_user": "alice", "app_id": app_id, "display_name": "Alice Nguyễn",
                   "extension": "101", "realm": "127.0.0.1"}
    j("device", "add", "--app", app_id, "bob", "--password", PASSWORD)
    assert [d["sip_user"] for d in j("device", "list", "--app", app_id)] == ["alice", "bob"]

    did = j("did", "add", "--app", app_id, "+84 28 7301 9555", "--device", "alice")
    assert did == {"number": "02873019555", "app_id": app_id, "sip_user": "alice"}
    assert j("did", "list") == [did]

    trunk = j("trunk", "add", "--app", app_id, "viettel", "--host", "sip.carrier.vn",
              "--port", "5070", "--transport", "tcp", "--username", "acme",
              "--password", TRUNK_PASSWORD, "--prefix", "84", "--strip", "1")
    assert trunk["has_password"] is True and trunk["port"] == 5070
    assert j("trunk", "list", "--app", app_id) == [trunk]

    changed = j("app", "set", app_id, "--record-calls", "no", "--default-did", "02873019555")
    assert (changed["record_calls"], changed["default_did"]) == (False, "02873019555")
    rotated = j("app", "rotate-secret", app_id)
    assert rotated["app_id"] == app_id and rotated["app_secret"] != secret

    j("device", "passwd", "bob", "--password", "An0ther-Secret")
    assert _error(run, "device", "remove", "alice") == (
        "tongdai: DID 02873019555 still rings device 'alice'; remove it first\n"
    )
    assert j("did", "remove", "028 7301 9555", "--app", app_id) == {"removed": "02873019555"}
    assert j("device", "remove", "alice", "--app", app_id) == {"removed": "alice"}
    assert j("trunk", "remove", "viettel", "--app", app_id) == {"removed": "viettel"}
    assert j("db", "upgrade")["revision"] == "0003"
    assert j("app", "delete", app_id) == {"deleted": app_id}
    assert j("app", "list") == []

    everything = "".join(outputs)
    for secret_text in (PASSWORD, "An0ther-Secret", TRUNK_PASSWORD,
                        ha1("MD5", "alice", "127.0.0.1", PASSWORD)):
        assert secret_text not in everything


def test_admin_round_trip_sqlite(run: Run, tmp_path: Path) -> None:
    _admin_round_trip(run)
    assert (tmp_path / "data" / "tongdai.sqlite3").exists()


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_admin_round_trip_postgresql(
    run: Run, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert db_url.startswith("postgresql+asyncpg://")
    monkeypatch.setenv("TONGDAI_DATABASE_URL", db_url)
    # main() runs its own event loop, so it gets a thread of its own here.
    await asyncio.to_thread(_admin_round_trip, run)


def test_password_is_stored_as_ha1_of_the_sip_domain(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TONGDAI_SIP_DOMAIN", "pbx.example.vn")
    app_id = _json(run, "app", "create", "a")["app_id"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    dev = _json(run, "device", "add", "--app", app_id, "alice", "--password", "-")
    assert dev["realm"] == "pbx.example.vn"

    async def stored() -> tuple[str, str]:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tongdai.sqlite3'}")
        try:
            d = await store.get_device("alice")
            assert d is not None
            return d.ha1_md5, d.ha1_sha256
        finally:
            await store.close()

    assert asyncio.run(stored()) == (
        ha1("MD5", "alice", "pbx.example.vn", PASSWORD),
        ha1("SHA-256", "alice", "pbx.example.vn", PASSWORD),
    )


def test_tables_for_people(run: Run) -> None:
    code, out, _ = run("app", "list")
    assert (code, out) == (0, "no apps yet (tongdai app create NAME)\n")
    code, out, _ = run("app", "create", "Acme")
    assert code == 0 and "app_secret" in out and "shown only now" in out
    code, out, _ = run("app", "list")
    header, row = out.splitlines()
    assert header.split() == ["app_id", "name", "record_calls", "default_did"]
    assert row.split()[1:] == ["Acme", "yes", "-"]
    code, out, _ = run("device", "list")
    assert (code, out) == (0, "no devices\n")


def test_errors_are_one_sentence_and_exit_1(run: Run) -> None:
    app_id = _json(run, "app", "create", "a")["app_id"]
    other = _json(run, "app", "create", "b")["app_id"]
    add = ("device", "add", "--password", PASSWORD)
    assert _error(run, *add, "--app", "nope", "alice") == "tongdai: app 'nope' does not exist\n"
    run(*add, "--app", app_id, "alice", "--extension", "101")
    assert "already taken" in _error(run, *add, "--app", other, "alice")
    assert "extension 101" in _error(run, *add, "--app", app_id, "bob", "--extension", "101")
    assert "2 to 8 digits" in _error(run, *add, "--app", app_id, "bob", "--extension", "1")
    assert "at least 8 characters" in _error(
        run, "device", "add", "--app", app_id, "bob", "--password", "short"
    )
    assert "not a phone number" in _error(
        run, "did", "add", "--app", app_id, "call-me", "--device", "alice"
    )
    assert "does not exist" in _error(run, "did", "remove", "0901234567")
    assert "does not exist" in _error(run, "device", "remove", "alice", "--app", other)
    assert "does not exist" in _error(run, "device", "list", "--app", "nope")
    assert "does not exist" in _error(run, "app", "rotate-secret", "nope")
    assert "needs a trunk username" in _error(
        run, "trunk", "add", "--app", app_id, "t", "--host", "h", "--password", "p"
    )
    assert "does not exist" in _error(run, "trunk", "remove", "t", "--app", app_id)


@pytest.mark.parametrize(
    "argv",
    [[], ["app"], ["nope"], ["device", "add", "alice"], ["trunk", "add", "--app", "a", "t",
     "--host", "h", "--port", "x"], ["app", "set", "a", "--record-calls", "maybe"]],
)
def test_usage_errors_exit_2(run: Run, argv: list[str]) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == "" and "usage:" in err


def test_help_exits_0(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == 0 and "device" in out and "trunk" in out


def test_config_file(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONGDAI_DATA_DIR")
    cfg = tmp_path / "tongdai.toml"
    cfg.write_text(f'[tongdai]\ndata_dir = "{tmp_path / "from-file"}"\n')
    assert _json(run, "--config", str(cfg), "app", "create", "a")["name"] == "a"
    assert (tmp_path / "from-file" / "tongdai.sqlite3").exists()
    assert "does not exist" in _error(run, "--config", str(tmp_path / "missing.toml"), "app",
                                      "list")


def test_unreachable_database(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGDAI_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/x")
    err = _error(run, "app", "list")
    assert "cannot open the database" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(("argv", "demo"), [(["serve"], False), (["serve", "--demo"], True),
                                            (["demo"], True)])
def test_serve_and_demo_run_the_server(
    run: Run, monkeypatch: pytest.MonkeyPatch, argv: list[str], demo: bool
) -> None:
    # Stand in for the composition root: this checks the CLI's hand-over only.
    calls: list[tuple[Settings, bool]] = []

    def fake_main(settings: Settings, *, demo: bool = False) -> int:
        calls.append((settings, demo))
        return 7

    fake = types.ModuleType("tongdai.server")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tongdai.server", fake)
    monkeypatch.setattr("tongdai.server", fake, raising=False)
    code, _, _ = run(*argv)
    assert code == 7
    assert [d for _, d in calls] == [demo]
    assert isinstance(calls[0][0], Settings)
