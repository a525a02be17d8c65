"""The `voicebot` command line as a user runs it: real engines, the real Rasa server, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import soundfile as sf

from dialogue.rasa_service import RasaService

REPO = Path(__file__).resolve().parents[2]
DIALOGUES = REPO / "tests" / "dialogues"


def voicebot(*args: str, token: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if token:
        env["VOICEBOT_RASA_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("voicebot: error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.mark.rasa
def test_simulate_default_call_writes_stereo_wav_and_json(rasa_service: RasaService, tmp_path: Path) -> None:
    result = voicebot(
        "simulate",
        "--rate",
        "8000",
        "--codec",
        "pcmu",
        "--rasa-url",
        rasa_service.url,
        "--out",
        str(tmp_path),
        token=rasa_service.auth_token,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(next(tmp_path.glob("sim-*.json")).read_text())
    caller_turns = [t for t in document["turns"] if t["turn"] > 0]
    assert [t["intent"] for t in caller_turns] == ["greet", "faq", "goodbye", "inform"]
    assert all(set(t["timings_ms"]) >= {"asr_ms", "dialogue_ms", "tts_first_audio_ms"} for t in caller_turns)
    assert document["outcome"] == "hangup-by-bot"
    info = sf.info(document["stereo_wav"])
    assert (info.channels, info.samplerate) == (2, 8000)
    events = (tmp_path / "events.jsonl").read_text().splitlines()
    assert json.loads(events[0])["event"] == "CallStarted"


@pytest.mark.rasa
@pytest.mark.parametrize(("folder", "model"), [("en", "tiny.en"), ("fr", "base")])
def test_conversation_tests_pass_and_write_junit(
    rasa_service: RasaService, tmp_path: Path, folder: str, model: str
) -> None:
    junit = tmp_path / "junit.xml"
    dialogues = DIALOGUES / folder
    result = voicebot(
        "test", str(dialogues), "--model", model, "--junit", str(junit), "--rasa-url", rasa_service.url,
        token=rasa_service.auth_token,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == str(len(list(dialogues.glob("*.yaml"))))
    assert suite.get("failures") == "0"
    assert "passed, 0 failed" in result.stdout


@pytest.mark.rasa
def test_a_failing_expectation_fails_the_run(rasa_service: RasaService, tmp_path: Path) -> None:
    dialogue = tmp_path / "wrong.yaml"
    dialogue.write_text(
        "name: wrong expectation\nturns:\n  - say: What are your opening hours?\n"
        "    expect: {intent: goodbye, reply_contains: bananas}\n"
    )
    junit = tmp_path / "junit.xml"
    result = voicebot(
        "test", str(dialogue), "--junit", str(junit), "--rasa-url", rasa_service.url, token=rasa_service.auth_token
    )
    assert result.returncode == 1
    assert "intent 'faq', expected 'goodbye'" in result.stdout
    assert "reply lacks 'bananas'" in result.stdout
    assert ET.parse(junit).getroot().get("failures") == "1"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "not found"),
        (b"", "empty"),
        (b"RIFF\x00\x00garbage-not-audio", "cannot read"),
        (b"just some text\n", "cannot read"),
    ],
    ids=["missing", "empty", "corrupt", "text"],
)
def test_bad_caller_files_get_a_one_line_error(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "caller.wav"
    if content is not None:
        path.write_bytes(content)
    assert_user_error(voicebot("simulate", str(path)), needle, str(path))


def test_unknown_model_gets_a_one_line_error() -> None:
    assert_user_error(
        voicebot("simulate", "--model", "./no/such/model", "--rasa-url", "http://127.0.0.1:9"), "./no/such/model"
    )


def test_rasa_not_running_gets_a_one_line_error() -> None:
    assert_user_error(
        voicebot("simulate", "--rasa-url", "http://127.0.0.1:9"), "Rasa is not reachable", "dialogue serve"
    )


def test_codec_needs_the_telephone_rate() -> None:
    assert_user_error(voicebot("simulate", "--codec", "pcmu"), "--rate 8000")


def test_unknown_voice_in_a_dialogue_is_reported(tmp_path: Path) -> None:
    dialogue = tmp_path / "voice.yaml"
    dialogue.write_text("turns:\n  - say: hello\n    voice: klingon-deluxe\n")
    assert_user_error(voicebot("test", str(dialogue), "--rasa-url", "http://127.0.0.1:9"), "klingon-deluxe")
    broken = tmp_path / "broken.yaml"
    broken.write_text("turns: [\n")
    assert_user_error(voicebot("test", str(broken), "--rasa-url", "http://127.0.0.1:9"), "broken.yaml", "YAML")
