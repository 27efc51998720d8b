"""The admin CLI, run in-process against a real database."""

import asyncio
import io
import json
import re
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from tests.cli.runner import Run, error_of, json_of

from tongdai.keys import store_key
from tongdai.settings import Settings
from tongdai.sip.digest import ha1
from tongdai.store.records import Registration
from tongdai.store.sql import open_store

PASSWORD = "Correct-Horse-9"
TRUNK_PASSWORD = "carrier-pw-77"


def _admin_round_trip(run: Run) -> None:
    outputs: list[str] = []

    def j(*argv: str) -> Any:
        code, out, err = run(*argv, "--json")
        assert (code, err) == (0, ""), err
        outputs.append(out)
        return json.loads(out)

    assert "database" in j("db", "init")
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
    listed_devices = j("device", "list", "--app", app_id)
    assert [d["sip_user"] for d in listed_devices] == ["alice", "bob"]
    assert [d["online"] for d in listed_devices] == [False, False]

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
    assert error_of(run, "device", "remove", "alice") == (
        "tongdai: DID 02873019555 still rings device 'alice'; remove it first\n"
    )
    assert j("did", "remove", "028 7301 9555", "--app", app_id) == {"removed": "02873019555"}
    assert j("device", "remove", "alice", "--app", app_id) == {"removed": "alice"}
    assert j("trunk", "remove", "viettel", "--app", app_id) == {"removed": "viettel"}
    assert re.fullmatch(r"[0-9]{4}", j("db", "upgrade")["revision"])
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
    app_id = json_of(run, "app", "create", "a")["app_id"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    dev = json_of(run, "device", "add", "--app", app_id, "alice", "--password", "-")
    assert dev["realm"] == "pbx.example.vn"

    async def stored() -> tuple[str, str]:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tongdai.sqlite3'}",
                                 key=store_key(tmp_path / "data"))
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


def test_tables_for_people(run: Run, tmp_path: Path) -> None:
    used = f"database: {tmp_path / 'data' / 'tongdai.sqlite3'} (data dir from TONGDAI_DATA_DIR)"
    code, out, _ = run("app", "list")
    assert (code, out) == (0, f"{used}\nno apps yet (tongdai app create NAME)\n")
    code, out, _ = run("app", "create", "Acme")
    assert code == 0 and "app_secret" in out and "shown only now" in out
    code, out, _ = run("app", "list")
    first, header, row = out.splitlines()
    assert first == used
    assert header.split() == ["app_id", "name", "record_calls", "default_did"]
    assert row.split()[1:] == ["Acme", "yes", "-"]
    code, out, _ = run("device", "list")
    assert (code, out) == (0, f"{used}\nno devices\n")


def test_device_list_shows_who_is_online(run: Run, tmp_path: Path) -> None:
    app_id = json_of(run, "app", "create", "a")["app_id"]
    for user in ("alice", "bob", "carol"):
        json_of(run, "device", "add", "--app", app_id, user, "--password", PASSWORD)

    async def bindings_written_by_the_server() -> None:
        data = tmp_path / "data"
        store = await open_store(f"sqlite+aiosqlite:///{data / 'tongdai.sqlite3'}",
                                 key=store_key(data))
        now = time.time()
        try:
            await store.sync_registrations([
                Registration(sip_user="alice", contact=f"sip:alice@192.0.2.7:{port}",
                             source_host="192.0.2.7", source_port=port, transport="udp",
                             expires_at=now + 600)
                for port in (5062, 5064)
            ] + [Registration(sip_user="bob", contact="sip:bob@192.0.2.8", source_host="192.0.2.8",
                              source_port=5060, transport="tcp", expires_at=now - 1)], [])
        finally:
            await store.close()

    asyncio.run(bindings_written_by_the_server())
    rows = json_of(run, "device", "list", "--app", app_id)
    assert {r["sip_user"]: (r["online"], r["bindings"]) for r in rows} == {
        "alice": (True, 2), "bob": (False, 0), "carol": (False, 0)}
    _, out, _ = run("device", "list")
    table = [line.split() for line in out.splitlines()[1:]]
    assert table[0][:4] == ["sip_user", "extension", "display_name", "online"]
    assert [(row[0], row[3]) for row in table[1:]] == [
        ("alice", "online"), ("bob", "offline"), ("carol", "offline")]


def test_errors_are_one_sentence_and_exit_1(run: Run) -> None:
    app_id = json_of(run, "app", "create", "a")["app_id"]
    other = json_of(run, "app", "create", "b")["app_id"]
    add = ("device", "add", "--password", PASSWORD)
    assert error_of(run, *add, "--app", "nope", "alice") == "tongdai: app 'nope' does not exist\n"
    run(*add, "--app", app_id, "alice", "--extension", "101")
    assert "already taken" in error_of(run, *add, "--app", other, "alice")
    assert "extension 101" in error_of(run, *add, "--app", app_id, "bob", "--extension", "101")
    assert "2 to 8 digits" in error_of(run, *add, "--app", app_id, "bob", "--extension", "1")
    assert "at least 8 characters" in error_of(
        run, "device", "add", "--app", app_id, "bob", "--password", "short"
    )
    assert "not a phone number" in error_of(
        run, "did", "add", "--app", app_id, "call-me", "--device", "alice"
    )
    assert "does not exist" in error_of(run, "did", "remove", "0901234567")
    assert "does not exist" in error_of(run, "device", "remove", "alice", "--app", other)
    assert "does not exist" in error_of(run, "device", "list", "--app", "nope")
    assert "does not exist" in error_of(run, "app", "rotate-secret", "nope")
    assert "needs a trunk username" in error_of(
        run, "trunk", "add", "--app", app_id, "t", "--host", "h", "--password", "p"
    )
    assert "needs a trunk password (--password)" in error_of(
        run, "trunk", "add", "--app", app_id, "t", "--host", "h", "--username", "acme"
    )
    for number in ("0901234567", "84901234567", "113", "19001234"):
        assert "looks like a phone number" in error_of(run, *add, "--app", app_id, number)
    assert json_of(run, *add, "--app", app_id, "1001")["sip_user"] == "1001"
    assert "does not exist" in error_of(run, "trunk", "remove", "t", "--app", app_id)


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
    assert json_of(run, "--config", str(cfg), "db", "init")["revision"]
    assert json_of(run, "--config", str(cfg), "app", "create", "a")["name"] == "a"
    assert (tmp_path / "from-file" / "tongdai.sqlite3").exists()
    assert "does not exist" in error_of(run, "--config", str(tmp_path / "missing.toml"), "app",
                                        "list")


def test_unreachable_database(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGDAI_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/x")
    err = error_of(run, "app", "list")
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
