"""Where the dialogue data modules keep their runtime databases (KB, cases, tickets, feedback)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"


def state_dir() -> Path:
    """`$VOICEBOT_STATE_DIR`, else `<repo>/.cache/state`; created on demand."""
    path = Path(os.environ.get("VOICEBOT_STATE_DIR", str(REPO_ROOT / ".cache" / "state")))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def open_database(path: Path) -> Iterator[sqlite_utils.Database]:
    """One short-lived connection per operation, committed on success: safe across processes."""
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        with conn:
            yield sqlite_utils.Database(conn)
    finally:
        conn.close()
