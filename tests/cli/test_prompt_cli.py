"""``tongdai prompt add/list/remove`` on a real data dir, with files made by sox."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.cli.runner import Run, error_of, json_of


@pytest.fixture
def app(run: Run) -> str:
    return str(json_of(run, "app", "create", "Shop")["app_id"])


def test_add_list_remove(run: Run, app: str, tmp_path: Path) -> None:
    mp3 = tmp_path / "menu.mp3"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(mp3), "synth", "2", "sine",
                    "500"], check=True, capture_output=True)
    d = json_of(run, "prompt", "add", "--app", app, "menu", str(mp3))
    assert d == {"app_id": app, "name": "menu", "seconds": pytest.approx(2.0, abs=0.1),
                 "source": "file"}
    assert (tmp_path / "data" / "prompts" / app / "menu.wav").is_file()
    rows = json_of(run, "prompt", "list", "--app", app)
    by_name = {r["name"]: r["source"] for r in rows}
    assert by_name == {"menu": "app", "welcome": "built-in", "invalid": "built-in",
                       "goodbye": "built-in", "hold": "built-in", "beep": "built-in",
                       "ringback": "built-in", "busy": "built-in"}
    code, out, _ = run("prompt", "list", "--app", app)
    assert code == 0 and "menu" in out and "built-in" in out
    json_of(run, "prompt", "add", "--app", app, "hold", str(mp3))
    rows = json_of(run, "prompt", "list", "--app", app)
    assert {r["name"]: r["source"] for r in rows}["hold"] == "app (replaces the built-in)"
    assert json_of(run, "prompt", "remove", "--app", app, "menu") == {
        "removed": "menu", "app_id": app}
    assert "no prompt 'menu'" in error_of(run, "prompt", "remove", "--app", app, "menu")
    assert "no prompt 'welcome'" in error_of(run, "prompt", "remove", "--app", app, "welcome")


def test_errors_are_one_sentence(run: Run, app: str, tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    assert "not audio tongdai can read" in error_of(run, "prompt", "add", "--app", app,
                                                    "x", str(bad))
    assert "cannot read" in error_of(run, "prompt", "add", "--app", app, "x",
                                     str(tmp_path / "missing.wav"))
    assert "prompt name" in error_of(run, "prompt", "add", "--app", app, "Bad Name",
                                     str(bad))
    assert "either an audio FILE or --text" in error_of(run, "prompt", "add", "--app", app,
                                                        "x")
    assert "either an audio FILE or --text" in error_of(
        run, "prompt", "add", "--app", app, "x", str(bad), "--text", "hi")
    assert "no-such-app" in error_of(run, "prompt", "list", "--app", "no-such-app")
    assert json_of(run, "prompt", "list", "--app", app)[0]["source"] == "built-in"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_add_text(run: Run, app: str) -> None:
    d = json_of(run, "prompt", "add", "--app", app, "hello", "--text", "Xin chào")
    assert d["source"] == "text (vi)" and d["seconds"] > 0.3
    d = json_of(run, "prompt", "add", "--app", app, "hi", "--text", "Hello", "--lang", "en")
    assert d["source"] == "text (en)"
    assert "cannot speak language 'qq'" in error_of(run, "prompt", "add", "--app", app, "x",
                                                    "--text", "Hello", "--lang", "qq")
