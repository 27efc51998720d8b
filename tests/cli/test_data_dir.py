"""Which database the CLI uses, that it says so, and that it never makes one silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tongdai.cli import main


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TONGDAI_"):
            monkeypatch.delenv(name)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _init(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, err = _run(capsys, "--data-dir", str(data_dir), "db", "init")
    assert code == 0, err
    assert "schema revision" in out


@pytest.mark.parametrize("argv", [["app", "list"], ["device", "list", "--json"],
                                  ["cdr", "list", "--app", "x"], ["registration", "list"]])
def test_a_missing_database_is_refused_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == ""
    db = tmp_path / "elsewhere" / "tongdai-data" / "tongdai.sqlite3"
    assert err == (
        f"tongdai: there is no tongdai database at {db} (data dir from the default); point "
        "--data-dir, TONGDAI_DATA_DIR or a config file at the server's data dir, or create a "
        "database with 'tongdai db init'\n"
    )
    assert list((tmp_path / "elsewhere").iterdir()) == []  # nothing made


def test_an_empty_database_file_is_not_a_tongdai_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tongdai.sqlite3").touch()
    code, _, err = _run(capsys, "--data-dir", str(data), "app", "list")
    assert code == 1 and "there is no tongdai database at" in err


@pytest.mark.parametrize("command", [["db", "init"], ["db", "upgrade"]])
def test_db_init_and_upgrade_create_the_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    code, out, _ = _run(capsys, *command, "--data-dir", str(tmp_path / "new"))
    assert code == 0
    db = tmp_path / "new" / "tongdai.sqlite3"
    assert out.splitlines()[0] == f"database: {db} (data dir from --data-dir)"
    assert db.is_file()
    code, out, _ = _run(capsys, "app", "list", "--data-dir", str(tmp_path / "new"), "--json")
    assert (code, json.loads(out)) == (0, [])  # --json: only the JSON value


def test_lookup_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir, then TONGDAI_DATA_DIR, then the config file (--config, then
    TONGDAI_CONFIG, then ./tongdai.toml), then ./tongdai-data."""
    here = tmp_path / "elsewhere"
    dirs = {name: tmp_path / name for name in ("flag", "env", "explicit", "named", "local")}
    for d in dirs.values():
        _init(capsys, d)
    _init(capsys, here / "tongdai-data")
    for name in ("explicit", "named"):
        (tmp_path / f"{name}.toml").write_text(f'data_dir = "{dirs[name]}"\n')
    (here / "tongdai.toml").write_text(f'data_dir = "{dirs["local"]}"\n')

    def used(*argv: str) -> str:
        code, out, err = _run(capsys, *argv, "app", "list")
        assert code == 0, err
        return out.splitlines()[0]

    monkeypatch.setenv("TONGDAI_CONFIG", str(tmp_path / "named.toml"))
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(dirs["env"]))
    db = "tongdai.sqlite3"
    assert used("--data-dir", str(dirs["flag"])) == (
        f"database: {dirs['flag'] / db} (data dir from --data-dir)")
    assert used() == f"database: {dirs['env'] / db} (data dir from TONGDAI_DATA_DIR)"
    monkeypatch.delenv("TONGDAI_DATA_DIR")
    explicit = tmp_path / "explicit.toml"
    assert used("--config", str(explicit)) == (
        f"database: {dirs['explicit'] / db} (data dir from config file {explicit})")
    assert used() == (
        f"database: {dirs['named'] / db} (data dir from config file {tmp_path / 'named.toml'})")
    monkeypatch.delenv("TONGDAI_CONFIG")
    assert used() == f"database: {dirs['local'] / db} (data dir from config file tongdai.toml)"
    (here / "tongdai.toml").unlink()
    assert used() == f"database: {here / 'tongdai-data' / db} (data dir from the default)"


def test_a_relative_data_dir_in_a_config_file_is_next_to_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "tongdai.toml").write_text('data_dir = "var"\n')
    code, _, err = _run(capsys, "--config", str(etc / "tongdai.toml"), "db", "init")
    assert code == 0, err
    assert (etc / "var" / "tongdai.sqlite3").is_file()
    assert not (tmp_path / "elsewhere" / "var").exists()
