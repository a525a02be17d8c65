"""The statements retention runs, each inside the caller's transaction, each returning how many rows it changed.

calls.db times are ISO-8601 UTC text (compared as text); operations.db times are Unix seconds."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import date
from pathlib import Path

from voicebot.recording_crypto import SUFFIX

log = logging.getLogger(__name__)

# Child tables of a call in calls.db and the column that dates a row whose call row is gone.
CALL_CHILD_TABLES = {
    "turns": "at", "dtmf": "at", "transfers": "at", "queue_waits": "entered", "tickets": "at", "feedback": "at",
    "errors": "at", "disclosures": "at",
}  # fmt: skip
# What a person said or keyed (already redacted, still personal): emptied after transcripts_days.
TRANSCRIPT_COLUMNS = {
    "turns": ("transcript", "reply"), "transfers": ("summary",), "errors": ("error",), "dtmf": ("digit",),
}  # fmt: skip
ERASED_NUMBER = "[PHONE]"
_ENDED_BEFORE = "state = 'ended' AND COALESCE(ended_at, enqueued_at) < :cutoff"
# operations.db: name -> (table, statement); :cutoff is Unix seconds, :cutoff_day the local date (YYYY-MM-DD).
OPS_TRANSCRIPTS = {
    "queue_contexts": (
        "acd_calls",
        f"UPDATE acd_calls SET context = '{{}}' WHERE context != '{{}}' AND {_ENDED_BEFORE}",
    ),
    "callback_numbers": (
        "acd_callbacks",
        f"UPDATE acd_callbacks SET number = '{ERASED_NUMBER}', context = '{{}}' WHERE done_at < :cutoff "
        f"AND (number != '{ERASED_NUMBER}' OR context != '{{}}')",
    ),
    "callers_by_day": ("routing_calls", "DELETE FROM routing_calls WHERE day < :cutoff_day"),
}
OPS_METADATA = {
    "queue_calls": ("acd_calls", f"DELETE FROM acd_calls WHERE {_ENDED_BEFORE}"),
    "queue_ring_failures": ("acd_ring_failures", "DELETE FROM acd_ring_failures WHERE failed_at < :cutoff"),
    "callbacks": ("acd_callbacks", "DELETE FROM acd_callbacks WHERE done_at < :cutoff"),
}
PART_FILE_AGE_S = 86400.0  # a writer's temporary file this old was left by a killed process


def _call_started(table: str) -> str:
    return f"(SELECT started FROM calls c WHERE c.call_id = {table}.call_id)"


def null_old_texts(db: sqlite3.Connection, cutoff_iso: str) -> dict[str, int]:
    """Empties the personal text columns of rows older than the cutoff (their own time, else their call's start)."""
    counts = {}
    for table, columns in TRANSCRIPT_COLUMNS.items():
        cleared = ", ".join(f"{column} = NULL" for column in columns)
        present = " OR ".join(f"{column} IS NOT NULL" for column in columns)
        cursor = db.execute(
            f"UPDATE {table} SET {cleared} WHERE ({present}) AND COALESCE(at, {_call_started(table)}) < ?",
            [cutoff_iso],
        )
        counts[table] = cursor.rowcount
    return counts


def old_recordings(db: sqlite3.Connection, cutoff_iso: str, by_call: bool = False) -> list[tuple[str, str]]:
    """(call_id, path) of recordings made before the cutoff, or (`by_call`) of calls started before it."""
    if by_call:
        where = "call_id IN (SELECT call_id FROM calls WHERE started < ?)"
    else:
        where = f"COALESCE(created, {_call_started('recordings')}) < ?"
    return [(row[0], row[1]) for row in db.execute(f"SELECT call_id, path FROM recordings WHERE {where}", [cutoff_iso])]


def delete_recordings(db: sqlite3.Connection, rows: list[tuple[str, str]], dry_run: bool) -> dict[str, int]:
    """Deletes each file, then its row; a file that cannot be deleted keeps its row (retried on the next run)."""
    files = 0
    gone: list[str] = []
    for call_id, path in rows:
        file = Path(path) if path else None
        try:
            if file is not None and file.exists():
                if not dry_run:
                    file.unlink()
                files += 1
        except OSError as exc:
            log.error("ALERT retention: cannot delete recording %s (%s): its row is kept", file, exc)
            continue
        gone.append(call_id)
    for call_id in gone:
        db.execute("DELETE FROM recordings WHERE call_id = ?", [call_id])
    return {"files": files, "recordings": len(gone)}


def orphan_recording_files(db: sqlite3.Connection, directory: Path, cutoff: float, dry_run: bool) -> int:
    """Recording files older than the cutoff that no row knows of (a writer killed before its insert), and
    temporary files left by a killed writer."""
    if not directory.is_dir():
        return 0
    known = {str(Path(row[0]).resolve()) for row in db.execute("SELECT path FROM recordings WHERE path IS NOT NULL")}
    deleted = 0
    for file in directory.iterdir():
        try:
            age_limit = cutoff if file.name.endswith(SUFFIX) else time.time() - PART_FILE_AGE_S
            stale = file.name.endswith((SUFFIX, ".part")) and file.stat().st_mtime < age_limit
            if stale and str(file.resolve()) not in known:
                if not dry_run:
                    file.unlink()
                deleted += 1
        except OSError as exc:
            log.error("ALERT retention: cannot delete orphan recording file %s (%s)", file, exc)
    return deleted


def delete_old_calls(db: sqlite3.Connection, cutoff_iso: str) -> dict[str, int]:
    """Calls started before the cutoff with all their child rows, and child rows older than it whose call is gone."""
    counts = {}
    old_calls = "SELECT call_id FROM calls WHERE started < :cutoff"
    for table, column in CALL_CHILD_TABLES.items():
        cursor = db.execute(
            f"DELETE FROM {table} WHERE call_id IN ({old_calls}) "
            f"OR ({column} < :cutoff AND call_id NOT IN (SELECT call_id FROM calls))",
            {"cutoff": cutoff_iso},
        )
        counts[table] = cursor.rowcount
    counts["calls"] = db.execute("DELETE FROM calls WHERE started < ?", [cutoff_iso]).rowcount
    return counts


def run_counted(db: sqlite3.Connection, statements: dict[str, tuple[str, str]], cutoff: float) -> dict[str, int]:
    """Runs each statement whose table exists; rows changed per name."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    params = {"cutoff": cutoff, "cutoff_day": date.fromtimestamp(cutoff).isoformat()}
    counts = {}
    for name, (table, sql) in statements.items():
        counts[name] = db.execute(sql, params).rowcount if table in tables else 0
    return counts
