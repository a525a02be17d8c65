"""Call records schema: migrations upgrade a database with rows without losing any, run once, roll back on
failure; a corrupt or foreign file is reported and left untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from voicebot.call_schema import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    RecordsStoreError,
    iso_ms,
    migrate,
    open_calls_db,
)

TABLES = {
    "schema_migrations",
    "calls",
    "turns",
    "dtmf",
    "transfers",
    "queue_waits",
    "tickets",
    "feedback",
    "errors",
    "disclosures",
    "recordings",
}


def autocommit_db(path: Path) -> sqlite_utils.Database:
    return sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))


def all_rows(db: sqlite_utils.Database) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(row) for row in db[name].rows] for name in sorted(TABLES - {"schema_migrations"})}


def seed_v1(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A database at version 1 (as an older voicebot left it), with a row in every table."""
    db = autocommit_db(path)
    assert migrate(db, MIGRATIONS[:1]) == [1]
    at = "2026-03-02T09:15:00.250Z"
    db.execute(
        "INSERT INTO calls (call_id, started, ended, duration_s, language, caller_hash, outcome, reason, rule, queue,"
        " turns, barge_ins, errors, csat, end_reason) VALUES "
        "('c1', ?, ?, 42.5, 'fr', 'ab12cd34ef56ab78', 'transferred', 'asked', 'r1', 'fr-general', 3, 1, 0, 5,"
        " 'transferred')",
        [at, at],
    )
    db.execute(
        "INSERT INTO turns (call_id, turn, at, t, transcript, language, language_probability, accepted, intent,"
        " confidence, reply, kb_id, kb_miss, barge_in, asr_ms, response_ms) VALUES "
        "('c1', 1, ?, 3.2, 'je voudrais un agent', 'fr', 0.91, 1, 'human', 0.99, 'Je vous passe', NULL, 0, 1,"
        " 410.5, 980.0)",
        [at],
    )
    other_rows: dict[str, dict[str, object]] = {
        "dtmf": {"call_id": "c1", "at": at, "t": 5.0, "digit": "0"},
        "transfers": {"call_id": "c1", "at": at, "t": 6.0, "queue": "fr-general", "reason": "asked", "priority": 2},
        "queue_waits": {"call_id": "c1", "queue": "fr-general", "entered": at, "wait_s": 12.0, "outcome": "connected"},
        "tickets": {"call_id": "c1", "at": at, "ticket": "T-000007", "category": "road"},
        "feedback": {"call_id": "c1", "at": at, "rating": 5},
        "errors": {"call_id": "c1", "at": at, "t": 1.0, "stage": "tts", "error": "EngineError: voice"},
        "disclosures": {"call_id": "c1", "at": at, "kind": "ai", "prompt_version": "v1", "heard_to_end": 1},
        "recordings": {"call_id": "c1", "path": "rec/c1.enc", "key_id": "k1", "created": at, "bytes": 1234},
    }
    for table, values in other_rows.items():
        columns = ", ".join(values)
        db.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in values)})", list(values.values()))
    rows = all_rows(db)
    db.conn.close()
    return rows


def test_a_version_1_database_with_rows_is_upgraded_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    before = seed_v1(path)
    db = open_calls_db(path)
    versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    assert versions == [1, 2] == [m.version for m in MIGRATIONS] and LATEST_VERSION == 2
    after = all_rows(db)
    assert after["calls"] == [row | {"worker": None} for row in before["calls"]]
    assert {name: rows for name, rows in after.items() if name != "calls"} == {
        name: rows for name, rows in before.items() if name != "calls"
    }
    assert "idx_calls_worker" in {index.name for index in db.table("calls").indexes}
    db.execute("UPDATE calls SET worker = 'w1' WHERE call_id = 'c1'")
    db.conn.close()
    reopened = open_calls_db(path)
    assert reopened.table("calls").get("c1")["worker"] == "w1"
    assert migrate(reopened) == []


def test_a_new_database_gets_every_table_index_and_version_once(tmp_path: Path) -> None:
    db = autocommit_db(tmp_path / "calls.db")
    assert migrate(db) == [1, 2]
    assert migrate(db) == []
    assert set(db.table_names()) == TABLES
    indexes = {index.columns[0] for name in TABLES for index in db.table(name).indexes if index.origin == "c"}
    assert {"started", "call_id", "at", "worker"} <= indexes
    expected = {
        "calls": "started",
        "turns": "call_id",
        "transfers": "call_id",
        "queue_waits": "call_id",
        "errors": "at",
    }
    for table, column in expected.items():
        assert any(index.columns == [column] for index in db.table(table).indexes), table
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 2


def test_open_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = open_calls_db(tmp_path / "state" / "calls.db", busy_timeout_s=2.5)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    db = autocommit_db(tmp_path / "calls.db")
    migrate(db)
    db.execute("INSERT INTO calls (call_id, started) VALUES ('c1', '2026-01-01T00:00:00.000Z')")

    def half_done(db: sqlite_utils.Database) -> None:
        db.execute("ALTER TABLE calls ADD COLUMN channel TEXT")
        raise RuntimeError("disk trouble in the middle of a migration")

    with pytest.raises(RuntimeError, match="disk trouble"):
        migrate(db, (*MIGRATIONS, Migration(3, "calls.channel", half_done)))
    assert "channel" not in db.table("calls").columns_dict
    assert db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 2
    assert db.table("calls").count == 1
    assert not db.conn.in_transaction


def test_a_corrupt_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    garbage = b"this is not an SQLite file\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(RecordsStoreError) as error:
        open_calls_db(path)
    assert str(error.value) == (
        f"{path} is not a call records database (file is not a database): move it aside or restore a backup"
    )
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.db"]


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_a_damaged_database_is_reported_and_left_untouched(tmp_path: Path, wal: bool) -> None:
    path = tmp_path / "calls.db"
    seed_v1(path)
    if wal:
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchone()
    damaged = bytearray(path.read_bytes())
    damaged[4096:8192] = b"\xff" * 4096  # the second page (a table's root) overwritten
    path.write_bytes(bytes(damaged))
    with pytest.raises(RecordsStoreError, match=r"is not a call records database \(.*malformed.*\): move it aside"):
        open_calls_db(path)
    assert path.read_bytes() == bytes(damaged)


def test_a_database_from_a_newer_voicebot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    open_calls_db(path).execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9, 'future', '2030-01-01T00:00:00.000Z')"
    )
    with pytest.raises(RecordsStoreError, match=r"schema version 9, newer than this voicebot \(2\): upgrade voicebot"):
        open_calls_db(path)


def test_a_locked_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    open_calls_db(path).conn.close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RecordsStoreError, match=r"is locked by another process \(database is locked\)"):
            open_calls_db(path, busy_timeout_s=0.05)
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_times_are_iso_utc_with_milliseconds() -> None:
    assert iso_ms(1_795_900_000.1234) == "2026-11-28T21:06:40.123Z"
    assert iso_ms(0.0) == "1970-01-01T00:00:00.000Z"
