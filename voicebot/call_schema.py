"""The call records database (`<state dir>/calls.db`): its tables, its migrations and how to open it.

Migrations are applied in order, each in its own transaction, and never drop a table that holds rows: a later
version adds columns (ALTER TABLE ADD COLUMN) or rebuilds a table by copy-and-rename with a row-count check.
Text columns holding what a person said are redacted before they are written (see voicebot/record_writer.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from voicebot.ports import ConfigError

CALLS_DB_NAME = "calls.db"


class RecordsStoreError(ConfigError):
    """The call records database cannot be used (corrupt, not SQLite, locked, unwritable)."""


def iso_ms(wall: float) -> str:
    """A wall-clock time (time.time()) as ISO-8601 UTC text with milliseconds: 2026-11-28T21:15:54.123Z."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"


SCHEMA_V1 = """
CREATE TABLE calls (
    call_id TEXT PRIMARY KEY, started TEXT NOT NULL, ended TEXT, duration_s REAL,
    language TEXT, caller_hash TEXT,
    outcome TEXT,
    reason TEXT, rule TEXT, queue TEXT,
    turns INTEGER DEFAULT 0, barge_ins INTEGER DEFAULT 0, errors INTEGER DEFAULT 0,
    csat INTEGER,
    end_reason TEXT
);
CREATE TABLE turns (
    call_id TEXT, turn INTEGER, at TEXT, t REAL, transcript TEXT, language TEXT, language_probability REAL,
    accepted INTEGER, rejected_because TEXT, intent TEXT, confidence REAL, reply TEXT,
    kb_id TEXT, kb_miss INTEGER DEFAULT 0,
    barge_in INTEGER DEFAULT 0,
    endpointing_ms REAL, asr_ms REAL, asr_wait_ms REAL, dialogue_ms REAL, tts_first_audio_ms REAL,
    response_ms REAL,
    PRIMARY KEY (call_id, turn)
);
CREATE TABLE dtmf (id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, t REAL, digit TEXT);
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, t REAL, queue TEXT, reason TEXT, rule TEXT,
    priority INTEGER, language TEXT, summary TEXT, callback INTEGER, fixed_number TEXT
);
CREATE TABLE queue_waits (
    id INTEGER PRIMARY KEY, call_id TEXT, queue TEXT, entered TEXT, left TEXT, wait_s REAL,
    outcome TEXT, agent TEXT
);
CREATE TABLE tickets (id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, ticket TEXT, category TEXT);
CREATE TABLE feedback (id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, rating INTEGER);
CREATE TABLE errors (id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, t REAL, stage TEXT, error TEXT);
CREATE TABLE disclosures (
    id INTEGER PRIMARY KEY, call_id TEXT, at TEXT, kind TEXT, prompt_version TEXT, heard_to_end INTEGER
);
CREATE TABLE recordings (call_id TEXT PRIMARY KEY, path TEXT, key_id TEXT, created TEXT, bytes INTEGER);
CREATE INDEX idx_calls_started ON calls(started);
CREATE INDEX idx_turns_call_id ON turns(call_id);
CREATE INDEX idx_transfers_call_id ON transfers(call_id);
CREATE INDEX idx_queue_waits_call_id ON queue_waits(call_id);
CREATE INDEX idx_errors_at ON errors(at);
"""


def _create_schema(db: sqlite_utils.Database) -> None:
    for statement in SCHEMA_V1.split(";"):
        if statement.strip():
            db.execute(statement)


def _add_calls_worker(db: sqlite_utils.Database) -> None:
    """Which worker process handled the call (NULL for calls recorded before version 2)."""
    if "worker" not in db["calls"].columns_dict:
        db.execute("ALTER TABLE calls ADD COLUMN worker TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS idx_calls_worker ON calls(worker)")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "call records schema", _create_schema),
    Migration(2, "calls.worker", _add_calls_worker),
)
LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(db: sqlite_utils.Database) -> set[int]:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return {row[0] for row in db.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(db: sqlite_utils.Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Applies the missing migrations in order, each in its own transaction; returns the versions applied."""
    if db.conn.in_transaction:
        raise RuntimeError("migrate() needs a connection outside any transaction")
    applied: list[int] = []
    for migration in migrations:
        db.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file: re-check under the lock
        try:
            done = applied_versions(db)
            _refuse_newer_schema(db, done, migrations)
            if migration.version not in done:
                migration.apply(db)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [migration.version, migration.name, iso_ms(datetime.now(UTC).timestamp())],
                )
                applied.append(migration.version)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return applied


def _refuse_newer_schema(db: sqlite_utils.Database, done: set[int], migrations: tuple[Migration, ...]) -> None:
    known = max(m.version for m in migrations)
    if done and max(done) > known:
        raise RecordsStoreError(
            f"{_db_path(db)} has call records schema version {max(done)}, newer than this voicebot ({known}): "
            "upgrade voicebot"
        )


def _db_path(db: sqlite_utils.Database) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else "calls database"


def open_calls_db(path: Path, busy_timeout_s: float = 5.0, run_migrations: bool = True) -> sqlite_utils.Database:
    """Opens (creating if needed) the call records database in WAL mode and brings its schema up to date.

    A file that is not an SQLite database is never overwritten: RecordsStoreError says to move it aside."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordsStoreError(f"cannot create the directory of {path} ({exc}): check the state directory") from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: fails here on a non-database file
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no committed row
        db = sqlite_utils.Database(conn)
        if run_migrations:
            migrate(db)
        return db
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise store_error(path, exc) from exc
    except RecordsStoreError:
        if conn is not None:
            conn.close()
        raise


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching to WAL rewrites the file header: check a file not yet in WAL mode first (it was not created
    by open_calls_db), so that a damaged one is reported without being changed."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems)}")
    conn.execute("PRAGMA journal_mode=WAL").fetchone()


def store_error(path: Path, exc: sqlite3.Error) -> RecordsStoreError:
    """A one-line message naming the file, SQLite's error and what to do."""
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        fix = "move it aside or restore a backup"
        return RecordsStoreError(f"{path} is not a call records database ({message}): {fix}")
    if "locked" in message or "busy" in message:
        return RecordsStoreError(f"{path} is locked by another process ({message}): retry or stop that process")
    return RecordsStoreError(f"cannot use the call records database {path} ({message}): check the file and disk")
