"""Prompts: real WAV/MP3/OGG files made by sox, converted once; built-ins; espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
import wave
from array import array
from pathlib import Path

import pytest
from tests.media._rtp import tone_level

from tongdai.media.prompts import (
    BUILTIN,
    NoPrompt,
    Prompt,
    PromptError,
    PromptLibrary,
    builtin_prompt,
)


def samples(prompt: Prompt) -> array[int]:
    out = array("h")
    out.frombytes(prompt.pcm)
    return out


def sox_tone(path: Path, hz: float, seconds: float, *args: str) -> Path:
    """A tone file made by sox; the format follows the suffix (and ``args``)."""
    subprocess.run(["sox", "-n", *args, str(path), "synth", str(seconds), "sine", str(hz),
                    "vol", "0.5"], check=True, capture_output=True)
    return path


@pytest.mark.parametrize(("suffix", "args"), [
    (".wav", ("-r", "44100", "-c", "2", "-b", "16")),
    (".wav", ("-r", "16000", "-c", "1", "-b", "24")),
    (".mp3", ("-r", "44100", "-c", "2")),
    (".ogg", ("-r", "48000", "-c", "1")),
    (".flac", ("-r", "22050", "-c", "1")),
])
def test_uploads_are_converted_to_8khz_mono(tmp_path: Path, suffix: str,
                                            args: tuple[str, ...]) -> None:
    source = sox_tone(tmp_path / f"in{suffix}", 600, 1.5, *args)
    lib = PromptLibrary(tmp_path / "prompts")
    prompt = lib.add("app1", "greeting", source)
    assert abs(prompt.seconds - 1.5) < 0.1
    stored = tmp_path / "prompts" / "app1" / "greeting.wav"
    with wave.open(str(stored)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
    s = samples(prompt)
    middle = s[2000:-2000]
    # sox's "vol 0.5" tone: about 16000 in amplitude, all of it at 600 Hz.
    assert 12000 < tone_level(middle, 600) < 18000
    assert tone_level(middle, 1000) < 300
    again = PromptLibrary(tmp_path / "prompts").get("app1", "greeting")
    assert again == prompt


def test_a_library_gets_names_and_removes(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path / "prompts")
    assert lib.names("app1") == sorted(BUILTIN)
    assert lib.get("app1", "sales") is None
    lib.add("app1", "sales", sox_tone(tmp_path / "a.wav", 500, 0.5, "-r", "8000"))
    lib.add("app1", "welcome", sox_tone(tmp_path / "b.wav", 700, 0.5, "-r", "8000"))
    assert lib.own("app1") == ["sales", "welcome"]
    assert "sales" in lib.names("app1") and "sales" not in lib.names("app2")
    assert lib.get("app2", "sales") is None  # another app's prompts are not yours
    own = lib.get("app1", "welcome")
    assert own is not None and own != builtin_prompt("welcome")  # replaces the built-in
    assert lib.get("app2", "welcome") == builtin_prompt("welcome")
    # Replaced on disk by another process (the CLI): the next get sees the new one.
    PromptLibrary(tmp_path / "prompts").add(
        "app1", "sales", sox_tone(tmp_path / "c.wav", 900, 1.0, "-r", "8000"))
    got = lib.get("app1", "sales")
    assert got is not None and abs(got.seconds - 1.0) < 0.05
    lib.remove("app1", "welcome")
    assert lib.get("app1", "welcome") == builtin_prompt("welcome")
    with pytest.raises(NoPrompt):
        lib.remove("app1", "welcome")
    with pytest.raises(NoPrompt):
        lib.remove("app1", "hold")


@pytest.mark.parametrize("name", ["", "Sales", "a b", "../x", "-x", "x" * 41, "é", "a.wav"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    lib = PromptLibrary(tmp_path / "prompts")
    source = sox_tone(tmp_path / "a.wav", 500, 0.2, "-r", "8000")
    with pytest.raises(PromptError, match="prompt name"):
        lib.add("app1", name, source)
    assert lib.get("app1", name) is None
    with pytest.raises(PromptError):
        lib.add("../etc", "x", source)


def test_bad_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = PromptLibrary(tmp_path / "prompts")
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(PromptError, match="not audio"):
        lib.add("app1", "x", garbage)
    with pytest.raises(PromptError, match="cannot read"):
        lib.add("app1", "x", tmp_path / "missing.wav")
    big = sox_tone(tmp_path / "big.wav", 500, 1.0, "-r", "8000")
    monkeypatch.setattr("tongdai.media.prompts.MAX_SOURCE_BYTES", 1000)
    with pytest.raises(PromptError, match="larger than"):
        lib.add("app1", "x", big)
    monkeypatch.setattr("tongdai.media.prompts.MAX_SOURCE_BYTES", 10 << 20)
    monkeypatch.setattr("tongdai.media.prompts.MAX_SECONDS", 0.5)
    with pytest.raises(PromptError, match="longer than"):
        lib.add("app1", "x", big)
    assert lib.own("app1") == []  # nothing half-written


def test_builtins_work_with_no_upload() -> None:
    for name in BUILTIN:
        prompt = builtin_prompt(name)
        assert prompt.name == name and prompt.seconds > 0.2, name
    for name in ("welcome", "invalid", "goodbye"):
        s = samples(builtin_prompt(name))
        assert max(abs(x) for x in s) > 8000, name  # somebody speaks
    beep = samples(builtin_prompt("beep"))
    assert tone_level(beep, 1000) > 8000
    ring = samples(builtin_prompt("ringback"))
    assert tone_level(ring[:8000], 425) > 5000 and max(ring[8000:]) == 0  # 1 s on, 4 off
    hold = samples(builtin_prompt("hold"))
    assert hold[0] == 0 and abs(hold[-1]) < 300  # loops without a click
    assert builtin_prompt("hold").seconds >= 10
    with pytest.raises(NoPrompt):
        builtin_prompt("nope")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_text_is_spoken_by_espeak(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path / "prompts")
    prompt = lib.add_text("app1", "chao", "Xin chào, cảm ơn quý khách đã gọi.", "vi")
    assert 1.0 < prompt.seconds < 8
    assert max(abs(x) for x in samples(prompt)) > 3000
    assert lib.get("app1", "chao") == prompt
    with pytest.raises(PromptError, match="cannot speak"):
        lib.add_text("app1", "x", "hello", "zz")
    with pytest.raises(PromptError, match="language"):
        lib.add_text("app1", "x", "hello", "vi; rm -rf")
    with pytest.raises(PromptError, match="empty"):
        lib.add_text("app1", "x", "  ", "vi")


def test_without_espeak_the_error_says_so(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PromptError, match="espeak-ng is not installed"):
        PromptLibrary(tmp_path / "prompts").add_text("app1", "x", "hello", "en")
