"""`voicebot audit verify` on a real operations database: exit 0 on an intact chain, 1 with the entry named after
an edit or a deletion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voicebot.audit import Audit
from voicebot.cli import main


def filled(tmp_path: Path) -> Path:
    db_path = tmp_path / "operations.db"
    audit = Audit(db_path)
    audit.record("ann", "rules_save", "rules", {"version": 1}, {"version": 2})
    audit.record("cli", "kb_import", "faq.yaml", None, {"added": 3, "replaced": 0})
    audit.record("retention", "retention_apply", "calls", None, {"transcripts": 12})
    return db_path


def test_an_intact_chain_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_path = filled(tmp_path)
    assert main(["audit", "verify", "--db", str(db_path)]) == 0
    assert "chain intact (3 entries)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "tamper",
    [
        'UPDATE audit_log SET after = \'{"added":300,"replaced":0}\' WHERE id = 2',
        "DELETE FROM audit_log WHERE id = 2",
        "DELETE FROM audit_log WHERE id = 3",
    ],
)
def test_an_edited_or_deleted_entry_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: str
) -> None:
    db_path = filled(tmp_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute(tamper)
    assert main(["audit", "verify", "--db", str(db_path)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED:" in out and "entries were edited, deleted or reordered" in out


def test_audit_list_prints_the_entries_oldest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_path = filled(tmp_path)
    assert main(["audit", "list", "--db", str(db_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in lines] == ["rules_save", "kb_import", "retention_apply"]
