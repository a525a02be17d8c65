"""Settings and rules changes made outside the console reach the audit log: `serve` records the settings it starts
with when they differ from the last run's (secrets as fingerprints), and `voicebot rules import` records the new
version."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogue.rule_store import DEFAULT_RULES_FILE
from voicebot.audit import Audit
from voicebot.cli import main
from voicebot.config import Settings
from voicebot.settings_audit import record_settings_change


def test_a_settings_change_is_audited_once_with_the_sections_that_changed(tmp_path: Path) -> None:
    audit = Audit(tmp_path / "operations.db")
    settings = Settings()
    assert record_settings_change(audit, settings) is True
    assert record_settings_change(audit, settings) is False  # same settings: nothing new
    changed = settings.replace("sip", max_call_s=300).replace("dialogue", auth_token="s3cret-token")
    assert record_settings_change(audit, changed) is True
    entry = Audit(tmp_path / "operations.db").latest("settings_change")
    assert entry is not None and set(entry.before) == {"sip", "dialogue"}
    assert entry.after["sip"]["max_call_s"] == 300
    assert "s3cret-token" not in str(entry.after) and entry.after["dialogue"]["auth_token"].startswith("sha256:")
    assert audit.verify() == []


def test_rules_import_is_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path))
    edited = tmp_path / "rules.yaml"
    edited.write_text(DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace("priority: 100", "priority: 90", 1))
    assert main(["rules", "import", str(edited), "--author", "sam", "--comment", "lower emergency"]) == 0
    entry = Audit(tmp_path / "operations.db").latest("rules_import")
    assert entry is not None and entry.actor == "sam"
    assert entry.before == {"version": 1}
    assert (entry.after["version"], entry.after["comment"]) == (2, "lower emergency")
