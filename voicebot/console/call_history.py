"""Finished and live calls as the call records database has them (redacted transcripts, stage timings), for the
console's call list and call pages. Read-only: the console never writes call records."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.call_schema import CALLS_DB_NAME

OUTCOMES = ("resolved", "transferred", "abandoned", "callback", "error")
STAGES = (
    ("endpointing_ms", "end of turn"),
    ("asr_wait_ms", "transcription (after end of turn)"),
    ("dialogue_ms", "dialogue"),
    ("tts_first_audio_ms", "speech synthesis (first audio)"),
    ("response_ms", "end of speech → first audio"),
)
CHILD_TABLES = ("transfers", "queue_waits", "dtmf", "errors", "disclosures", "tickets", "feedback")


@dataclass(frozen=True)
class CallFilter:
    outcome: str = ""
    language: str = ""
    day: str = ""  # YYYY-MM-DD
    limit: int = 100

    @classmethod
    def from_query(cls, query: dict[str, str]) -> CallFilter:
        outcome = query.get("outcome", "")
        day = query.get("day", "")
        return cls(
            outcome=outcome if outcome in OUTCOMES else "",
            language=query.get("language", "")[:8],
            day=day if len(day) == 10 and day[4] == "-" and day[7] == "-" else "",
        )


def calls_db_path(ops_db_path: Path) -> Path:
    """The call records live next to the operations database, in the state directory."""
    return ops_db_path.parent / CALLS_DB_NAME


def open_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to the call records (rows by column name); None when there are none yet."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    conn.row_factory = sqlite3.Row
    return conn


def recent_calls(path: Path, wanted: CallFilter) -> list[dict[str, Any]]:
    conn = open_read_only(path)
    if conn is None:
        return []
    where, params = ["1 = 1"], []
    for column, value in (("outcome", wanted.outcome), ("language", wanted.language)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if wanted.day:
        where.append("substr(started, 1, 10) = ?")
        params.append(wanted.day)
    sql = f"SELECT * FROM calls WHERE {' AND '.join(where)} ORDER BY started DESC LIMIT ?"
    try:
        return [dict(row) for row in conn.execute(sql, [*params, wanted.limit])]
    finally:
        conn.close()


def call_record(path: Path, call_id: str) -> dict[str, Any] | None:
    """The call row, its turns (with stage timings) and every child table, or None when it is not recorded."""
    conn = open_read_only(path)
    if conn is None:
        return None
    try:
        call = conn.execute("SELECT * FROM calls WHERE call_id = ?", [call_id]).fetchone()
        if call is None:
            return None
        record: dict[str, Any] = {"call": dict(call)}
        turns = conn.execute("SELECT * FROM turns WHERE call_id = ? ORDER BY turn", [call_id])
        record["turns"] = [dict(row) for row in turns]
        recording = conn.execute("SELECT * FROM recordings WHERE call_id = ?", [call_id]).fetchone()
        record["recording"] = dict(recording) if recording is not None else None
        for table in CHILD_TABLES:
            rows = conn.execute(f"SELECT * FROM {table} WHERE call_id = ? ORDER BY id", [call_id])
            record[table] = [dict(row) for row in rows]
        return record
    finally:
        conn.close()
