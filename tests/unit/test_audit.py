"""The hash-chained audit log: an intact log verifies; editing, deleting or reordering entries is reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voicebot.audit import Audit


@pytest.fixture
def audit(tmp_path: Path) -> Audit:
    log = Audit(tmp_path / "operations.db")
    log.record("alice", "login", "alice", None, {"ip": "127.0.0.1"})
    log.record("alice", "agent_status", "agent-1", {"status": "offline"}, {"status": "available"})
    log.record("bob", "rule_save", "rules", {"version": 1}, {"version": 2})
    log.record("alice", "callback_done", "callback-7", {"done": False}, {"done": True})
    return log


def _sql(audit: Audit, statement: str, *params: object) -> None:
    with sqlite3.connect(audit.db_path) as conn:
        conn.execute(statement, params)


def test_intact_log_verifies_and_lists_newest_first(audit: Audit) -> None:
    assert audit.verify() == []
    entries = audit.entries(limit=3)
    assert [e.id for e in entries] == [4, 3, 2]
    assert entries[2].before == {"status": "offline"}
    assert entries[2].after == {"status": "available"}
    assert entries[0].prev_hash == entries[1].hash


def test_edited_field_is_reported(audit: Audit) -> None:
    _sql(audit, "UPDATE audit_log SET after = ? WHERE id = 2", '{"status":"paused"}')
    problems = audit.verify()
    assert problems == ["entry 2: edited (its content no longer matches its hash)"]


def test_edited_actor_with_recomputed_hash_breaks_the_chain(audit: Audit) -> None:
    from voicebot.audit import entry_hash

    with sqlite3.connect(audit.db_path) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM audit_log WHERE id = 2").fetchone())
        row["actor"] = "mallory"
        conn.execute("UPDATE audit_log SET actor = ?, hash = ? WHERE id = 2", (row["actor"], entry_hash(row)))
    assert audit.verify() == ["entry 3: previous entry 2 was replaced (chain broken)"]


def test_deleted_row_is_reported(audit: Audit) -> None:
    _sql(audit, "DELETE FROM audit_log WHERE id = 2")
    assert audit.verify() == ["entries 2..2 deleted (missing before entry 3)"]


def test_deleted_last_rows_are_reported(audit: Audit) -> None:
    _sql(audit, "DELETE FROM audit_log WHERE id >= 3")
    assert audit.verify() == ["entries 3..4 deleted (the log's head records entry 4)"]
    next_id = audit.record("alice", "login", "alice")
    assert next_id == 5  # the gap stays visible instead of being refilled
    assert "entries 3..4 deleted (missing before entry 5)" in audit.verify()


def test_reordered_rows_are_reported(audit: Audit) -> None:
    with sqlite3.connect(audit.db_path) as conn:
        conn.execute("UPDATE audit_log SET id = -2 WHERE id = 2")
        conn.execute("UPDATE audit_log SET id = 2 WHERE id = 3")
        conn.execute("UPDATE audit_log SET id = 3 WHERE id = -2")
    assert audit.verify() == [
        "entry 2: holds entry 3's record (entries reordered)",
        "entry 3: holds entry 2's record (entries reordered)",
    ]


def test_entries_keep_chaining_across_instances(tmp_path: Path) -> None:
    db = tmp_path / "operations.db"
    Audit(db).record("a", "x", "t")
    Audit(db).record("b", "y", "t")
    assert Audit(db).verify() == []
    assert [e.actor for e in Audit(db).entries()] == ["b", "a"]
