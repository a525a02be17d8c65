"""A tamper-evident audit log in the operations database: every change made through the console (who, when,
what, before and after) as one entry whose hash covers its content and the previous entry's hash.

Editing, deleting or reordering entries breaks the chain, and `verify()` says where. A separate head row remembers
the last entry, so that dropping entries from the end is noticed too. This is evidence, not prevention: whoever can
write the database can rebuild the whole chain; the log makes casual or partial tampering visible."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from dialogue.ops_db import connect

GENESIS_HASH = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(row: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the entry's fields (before/after as their stored JSON text)."""
    fields = {k: row[k] for k in ("id", "at", "actor", "action", "target", "before", "after", "prev_hash")}
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


class Audit:
    def __init__(self, db_path: Path, clock: Callable[[], float] = time.time) -> None:
        self.db_path = db_path
        self.clock = clock
        with connect(db_path) as db:
            _create(db)

    def record(self, actor: str, action: str, target: str, before: Any = None, after: Any = None) -> int:
        """Append one entry; returns its id. Atomic with respect to other processes (BEGIN IMMEDIATE)."""
        with connect(self.db_path) as db:
            last = db.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            head = db.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
            last_id, prev_hash = _chain_end(last, head)
            entry_id = last_id + 1
            row: dict[str, Any] = {
                "id": entry_id,
                "at": self.clock(),
                "actor": actor,
                "action": action,
                "target": target,
                "before": canonical_json(before),
                "after": canonical_json(after),
                "prev_hash": prev_hash,
            }
            row["hash"] = entry_hash(row)
            db.execute(
                "INSERT INTO audit_log (id, at, actor, action, target, before, after, prev_hash, hash)"
                " VALUES (:id, :at, :actor, :action, :target, :before, :after, :prev_hash, :hash)",
                row,
            )
            db.execute(
                "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
                "ON CONFLICT(one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
                (entry_id, row["hash"]),
            )
            return entry_id

    def entries(self, limit: int = 200) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        with connect(self.db_path) as db:
            rows = list(db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", [limit]))
        return [_entry(row) for row in rows]

    def latest(self, action: str) -> AuditEntry | None:
        """The newest entry of this kind of action, if any."""
        with connect(self.db_path) as db:
            rows = list(db.query("SELECT * FROM audit_log WHERE action = ? ORDER BY id DESC LIMIT 1", [action]))
        return _entry(rows[0]) if rows else None

    def verify(self) -> list[str]:
        """One line per problem found (empty: the chain is intact)."""
        with connect(self.db_path) as db:
            rows = list(db.query("SELECT * FROM audit_log ORDER BY id"))
            head = db.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
        return list(_problems(rows, head))


def _create(db: sqlite_utils.Database) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _chain_end(last: tuple[int, str] | None, head: tuple[int, str] | None) -> tuple[int, str]:
    """Where the next entry attaches. The head wins over the table so that an entry deleted from the end leaves a
    visible gap instead of being silently replaced by the next one."""
    candidates = [c for c in (last, head) if c is not None]
    if not candidates:
        return 0, GENESIS_HASH
    last_id, last_hash = max(candidates, key=lambda c: c[0])
    return int(last_id), str(last_hash)


def _entry(row: dict[str, Any]) -> AuditEntry:
    fields = dict(row)
    fields["before"] = json.loads(row["before"])
    fields["after"] = json.loads(row["after"])
    return AuditEntry(**fields)


def _problems(rows: list[dict[str, Any]], head: tuple[int, str] | None) -> Iterator[str]:
    ids = [row["id"] for row in rows]
    previous: dict[str, Any] | None = None
    previous_intact = True
    for row in rows:
        intact = entry_hash(row) == row["hash"]
        if not intact:
            yield _mismatch(row, ids)
        elif previous_intact:
            yield from _link_problem(previous, row)
        previous, previous_intact = row, intact
    yield from _tail_problem(rows, head)


def _mismatch(row: dict[str, Any], ids: list[int]) -> str:
    """An entry whose content no longer matches its hash: moved from another position, or edited."""
    for other_id in ids:
        if other_id != row["id"] and entry_hash({**row, "id": other_id}) == row["hash"]:
            return f"entry {row['id']}: holds entry {other_id}'s record (entries reordered)"
    return f"entry {row['id']}: edited (its content no longer matches its hash)"


def _link_problem(previous: dict[str, Any] | None, row: dict[str, Any]) -> Iterator[str]:
    expected_id = 1 if previous is None else previous["id"] + 1
    expected_hash = GENESIS_HASH if previous is None else previous["hash"]
    if row["id"] != expected_id:
        yield f"entries {expected_id}..{row['id'] - 1} deleted (missing before entry {row['id']})"
    elif row["prev_hash"] != expected_hash:
        yield f"entry {row['id']}: previous entry {expected_id - 1} was replaced (chain broken)"


def _tail_problem(rows: list[dict[str, Any]], head: tuple[int, str] | None) -> Iterator[str]:
    if head is None:
        if rows:
            yield "audit head missing (deleted): the end of the log cannot be checked"
        return
    last_id, last_hash = head
    if not rows or rows[-1]["id"] < last_id:
        first_missing = rows[-1]["id"] + 1 if rows else 1
        yield f"entries {first_missing}..{last_id} deleted (the log's head records entry {last_id})"
    elif rows[-1]["id"] > last_id:
        yield f"entries {last_id + 1}..{rows[-1]['id']} added outside the audit log (the head records {last_id})"
    elif rows[-1]["hash"] != last_hash:
        yield f"entry {last_id}: replaced (the log's head records another hash)"
