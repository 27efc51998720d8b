import os
from pathlib import Path

import pytest

from tongdai.cli import main
from tongdai.settings import SettingsError, find_config, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TONGDAI_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert (s.http_host, s.http_port, s.sip_host, s.sip_port) == ("127.0.0.1", 8080,
                                                                  "127.0.0.1", 5060)
    assert s.domain == "127.0.0.1"  # the realm falls back to the SIP host
    assert s.base_url == "http://127.0.0.1:8080"
    assert s.rtp_port_range == (20000, 29999)
    assert s.timezone == "Asia/Ho_Chi_Minh"
    assert s.record_calls_default is True
    assert s.db_url == f"sqlite+aiosqlite:///{(Path('tongdai-data') / 'tongdai.sqlite3').resolve()}"


def test_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('[tongdai]\nhttp_port = 9000\nsip_domain = "pbx.example.vn"\n'
                   'public_url = "https://pbx.example.vn/"\n')
    s = load_settings(cfg)
    assert (s.http_port, s.domain, s.base_url) == (9000, "pbx.example.vn", "https://pbx.example.vn")
    monkeypatch.setenv("TONGDAI_HTTP_PORT", "9100")
    assert load_settings(cfg).http_port == 9100  # the environment wins over the file
    assert load_settings(cfg).sip_domain == "pbx.example.vn"  # the rest still from the file
    top = tmp_path / "top.toml"
    top.write_text("SIP_PORT = 5070\n")  # top level, any case
    assert load_settings(top).sip_port == 5070


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/pbx", "postgresql+asyncpg://u:p@db:5432/pbx"),
        ("postgresql://u@db/pbx", "postgresql+asyncpg://u@db/pbx"),
        ("postgresql+asyncpg://u@db/pbx", "postgresql+asyncpg://u@db/pbx"),
        ("sqlite:////var/lib/tongdai/x.db", "sqlite+aiosqlite:////var/lib/tongdai/x.db"),
    ],
)
def test_database_url(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("TONGDAI_DATABASE_URL", url)
    assert load_settings().db_url == expected


@pytest.mark.parametrize(
    ("env", "value", "words"),
    [
        ("TONGDAI_HTTP_PORT", "http", "TONGDAI_HTTP_PORT"),
        ("TONGDAI_SIP_PORT", "70000", "TONGDAI_SIP_PORT"),
        ("TONGDAI_RTP_PORTS", "20000", "TONGDAI_RTP_PORTS: must be a range"),
        ("TONGDAI_TIMEZONE", "Mars/Olympus", "TONGDAI_TIMEZONE: must be an IANA time zone"),
        ("TONGDAI_DATABASE_URL", "mysql://x", "TONGDAI_DATABASE_URL"),
        ("TONGDAI_LOG_LEVEL", "loud", "TONGDAI_LOG_LEVEL"),
        ("TONGDAI_LOG_FORMAT", "xml", "TONGDAI_LOG_FORMAT: must be text or json"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, words: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = Path("tongdai.toml")
    cfg.write_text("[tongdai]\nsip_port = 99999\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg)
    # The key as written in the file, not an environment variable nobody set.
    assert str(err.value) == (
        "config file tongdai.toml: sip_port: Input should be less than or equal to 65535")
    cfg.write_text("HTTP_PORT = 'x'\n")
    with pytest.raises(SettingsError, match=r"^config file tongdai.toml: http_port: "):
        load_settings(cfg)
    cfg.write_text("no_such_setting = 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg)
    assert str(err.value) == ("config file tongdai.toml: no_such_setting: not a tongdai "
                              "setting (see the settings table in README.md)")
    cfg.write_text("this is [not toml\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(cfg)
    # The environment wins, so a bad value there is named as the variable.
    cfg.write_text("sip_port = 5070\n")
    monkeypatch.setenv("TONGDAI_SIP_PORT", "-1")
    with pytest.raises(SettingsError, match=r"^invalid setting TONGDAI_SIP_PORT: "):
        load_settings(cfg)


def test_find_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config() is None
    Path("tongdai.toml").write_text("")
    assert find_config() == Path("tongdai.toml")
    monkeypatch.setenv("TONGDAI_CONFIG", "/etc/tongdai/pbx.toml")
    assert find_config() == Path("/etc/tongdai/pbx.toml")
    assert find_config(Path("mine.toml")) == Path("mine.toml")
    load_settings()  # TONGDAI_CONFIG is not mistaken for a setting


def test_relative_data_dir_in_a_file(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "tongdai.toml"
    cfg.parent.mkdir()
    cfg.write_text('data_dir = "data"\n')
    assert load_settings(cfg).data_dir == tmp_path / "etc" / "data"
    cfg.write_text(f'data_dir = "{tmp_path / "abs"}"\n')
    assert load_settings(cfg).data_dir == tmp_path / "abs"


@pytest.mark.parametrize("argv", [["app", "list"], ["serve"], ["db", "upgrade", "--json"]])
def test_cli_reports_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    argv: list[str],
) -> None:
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TONGDAI_SIP_PORT", "99999")
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("tongdai: invalid setting TONGDAI_SIP_PORT")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing was opened or created
