"""The operations database shared by SIP workers, the console and `voicebot serve`: agents, queues, waiting calls,
transfer rules, callbacks, console users and the audit log. SQLite in WAL mode, one short connection per operation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from dialogue.state import state_dir

OPS_DB_NAME = "operations.db"


def ops_db_path() -> Path:
    return state_dir() / OPS_DB_NAME


@contextmanager
def connect(path: Path) -> Iterator[sqlite_utils.Database]:
    """A transaction that takes the write lock at once (BEGIN IMMEDIATE): a read-modify-write by one process cannot
    interleave with another's. Committed on success, rolled back on error."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield sqlite_utils.Database(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
