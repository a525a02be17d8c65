"""`voicebot rules test`: conversation dialogues replayed through the real pipeline (Whisper, the Rasa server,
Piper), and which transfer rule fires at which turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dialogue.rasa_service import RasaService

REPO = Path(__file__).resolve().parents[2]
DIALOGUES = REPO / "tests" / "dialogues" / "en"
RULES = """rules:
  - name: fire
    when: {keywords: {en: [fire], fr: [incendie, au feu]}}
    then: {queue: emergency, priority: 100}
  - name: closed-callback
    when: {handoff: true, business_hours: closed}
    then: {callback: true, queue: "general-{language}"}
  - name: keypad-zero
    when: {dtmf: "0"}
    then: {queue: "general-{language}"}
  - name: asked-for-a-person
    when: {explicit_request: true}
    then: {queue: "general-{language}", priority: 5}
"""


def rules_cli(*args: str, state_dir: Path, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VOICEBOT_STATE_DIR": str(state_dir), "VOICEBOT_RASA_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "rules", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )


@pytest.mark.rasa
def test_dry_run_shows_which_rule_fires_at_which_turn(rasa_service: RasaService, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES, encoding="utf-8")
    verdicts_file = tmp_path / "verdicts.json"
    dialogues = [DIALOGUES / name for name in ("keypad_zero.yaml", "emergency.yaml", "handoff_phone_line.yaml")]
    result = rules_cli(
        "test", str(rules_file), "--dialogues", *map(str, dialogues), "--at", "2026-03-04T10:00",
        "--json", str(verdicts_file), "--rasa-url", rasa_service.url,
        state_dir=tmp_path / "state", token=rasa_service.auth_token,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    fired = {(v["dialogue"], v["turn"]): (v["rule"], v["action"]) for v in json.loads(verdicts_file.read_text())}
    assert set(fired) == {
        ("Pressing 0 reaches a person", 1),
        ("An emergency goes straight to a person", 1),
        ("Caller asks for a person over a noisy phone line", 1),
        ("Caller asks for a person over a noisy phone line", 2),
    }
    rule, action = fired["Pressing 0 reaches a person", 1]
    assert (rule, action["queue"]) == ("keypad-zero", "general-en")
    rule, action = fired["An emergency goes straight to a person", 1]
    assert (rule, action["queue"], action["priority"]) == ("fire", "emergency", 100)
    assert fired["Caller asks for a person over a noisy phone line", 1] == (None, None)
    rule, action = fired["Caller asks for a person over a noisy phone line", 2]
    assert (rule, action["queue"], action["priority"]) == ("asked-for-a-person", "general-en", 5)
    table = result.stdout
    assert "keypad-zero fires at turn 1: queue general-en" in table
    assert "fire fires at turn 1: queue emergency (priority 100)" in table
    assert "asked-for-a-person fires at turn 2: queue general-en (priority 5)" in table
    assert "[keys 0]" in table and "request_human (" in table


def test_an_invalid_rules_file_is_refused_before_any_call(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES.replace("keywords", "keywrds"), encoding="utf-8")
    result = rules_cli("test", str(rules_file), "--rasa-url", "http://127.0.0.1:9", state_dir=tmp_path, token="x")
    assert result.returncode == 1
    assert f"{rules_file}:3: rules[1] (fire) .when.keywrds: unknown condition 'keywrds' (did you mean 'keywords'?)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
