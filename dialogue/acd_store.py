"""The ACD's tables in the operations database and the reads and writes `dialogue.acd.Acd` composes into one
transaction each. Functions here take an open `sqlite_utils.Database` (from `dialogue.ops_db.connect`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, time
from typing import Any

import sqlite_utils

from dialogue.agents import END_OF_DAY, Agent, BusinessHours, QueueSpec

DEFAULT_HANDLE_S = 180.0  # mean talk time assumed until calls of the queue have been seen
HANDLE_SAMPLE = 50  # latest connected calls that the mean handle time is taken from

SCHEMA = """
CREATE TABLE IF NOT EXISTS acd_agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, sip_uri TEXT NOT NULL, languages TEXT NOT NULL, topics TEXT NOT NULL,
    status TEXT NOT NULL, status_since REAL NOT NULL, last_call_ended REAL, wrap_up_until REAL
);
CREATE TABLE IF NOT EXISTS acd_queues (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_calls (
    call_id TEXT PRIMARY KEY, queue TEXT NOT NULL, priority INTEGER NOT NULL, enqueued_at REAL NOT NULL,
    language TEXT NOT NULL, context TEXT NOT NULL, state TEXT NOT NULL, agent_id TEXT,
    offered_at REAL, connected_at REAL, ended_at REAL
);
CREATE INDEX IF NOT EXISTS acd_calls_state ON acd_calls (state, queue);
CREATE TABLE IF NOT EXISTS acd_ring_failures (
    call_id TEXT NOT NULL, agent_id TEXT NOT NULL, failed_at REAL NOT NULL, PRIMARY KEY (call_id, agent_id)
);
CREATE TABLE IF NOT EXISTS acd_callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL, number TEXT NOT NULL, language TEXT NOT NULL,
    context TEXT NOT NULL, created_at REAL NOT NULL, done_at REAL, done_by TEXT
);
"""
CALL_COLUMNS = "call_id, queue, priority, enqueued_at, language, context, state, agent_id"
AGENT_COLUMNS = "id, name, sip_uri, languages, topics, status, status_since, last_call_ended"


@dataclass(frozen=True)
class WaitingCall:
    call_id: str
    queue: str
    priority: int
    enqueued_at: float
    language: str
    context: dict[str, Any]
    state: str  # waiting | ringing | connected | ended
    agent_id: str | None = None  # the agent it rings or is connected to


@dataclass(frozen=True)
class Offer:
    call_id: str
    agent_id: str
    sip_uri: str
    queue: str
    context: dict[str, Any]


@dataclass(frozen=True)
class Callback:
    id: int
    call_id: str
    number: str
    language: str
    context: dict[str, Any]
    created_at: float
    done_at: float | None = None
    done_by: str | None = None


# --- queue specs as JSON ----------------------------------------------------------------------------


def queue_to_json(queue: QueueSpec) -> str:
    hours = queue.hours
    return json.dumps({
        "name": queue.name, "language": queue.language, "topics": list(queue.topics), "priority": queue.priority,
        "max_wait_s": queue.max_wait_s, "wrap_up_s": queue.wrap_up_s, "ring_timeout_s": queue.ring_timeout_s,
        "hours": {
            "weekly": {str(day): [[_clock_text(start), _clock_text(end)] for start, end in ranges]
                       for day, ranges in hours.weekly.items()},
            "holidays": sorted(day.isoformat() for day in hours.holidays),
            "timezone": hours.timezone,
        },
    })  # fmt: skip


def queue_from_json(text: str) -> QueueSpec:
    data = json.loads(text)
    hours = data.pop("hours")
    weekly = {
        int(day): tuple((time.fromisoformat(start), _clock_time(end)) for start, end in ranges)
        for day, ranges in hours["weekly"].items()
    }
    holidays = frozenset(date.fromisoformat(day) for day in hours["holidays"])
    return QueueSpec(
        **{**data, "topics": tuple(data["topics"])}, hours=BusinessHours(weekly, holidays, hours["timezone"])
    )


def _clock_text(moment: time) -> str:
    return "24:00" if moment == END_OF_DAY else moment.strftime("%H:%M")


def _clock_time(text: str) -> time:
    return END_OF_DAY if text == "24:00" else time.fromisoformat(text)


# --- agents ------------------------------------------------------------------------------------------


def agent_row(db: sqlite_utils.Database, agent_id: str) -> Agent | None:
    row = db.execute(f"SELECT {AGENT_COLUMNS} FROM acd_agents WHERE id = ?", [agent_id]).fetchone()
    return _agent(row) if row else None


def require_agent(db: sqlite_utils.Database, agent_id: str) -> Agent:
    agent = agent_row(db, agent_id)
    if not agent:
        raise KeyError(f"no agent {agent_id!r}")
    return agent


def all_agents(db: sqlite_utils.Database) -> list[Agent]:
    return [_agent(row) for row in db.execute(f"SELECT {AGENT_COLUMNS} FROM acd_agents ORDER BY id").fetchall()]


def _agent(row: tuple[Any, ...]) -> Agent:
    agent_id, name, sip_uri, languages, topics, status, since, last_ended = row
    return Agent(
        agent_id, name, sip_uri, tuple(json.loads(languages)), tuple(json.loads(topics)), status, since, last_ended
    )


def insert_agent(db: sqlite_utils.Database, agent: Agent, now: float) -> None:
    db.execute(
        f"INSERT INTO acd_agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [agent.id, agent.name, agent.sip_uri, json.dumps(agent.languages), json.dumps(agent.topics), agent.status,
         agent.status_since or now, agent.last_call_ended],
    )  # fmt: skip


def set_agent_status(db: sqlite_utils.Database, agent: Agent, status: str, now: float) -> None:
    """`status_since` moves only on a real change, so pressing "available" twice does not lose idle time."""
    if agent.status != status:
        db.execute("UPDATE acd_agents SET status = ?, status_since = ? WHERE id = ?", [status, now, agent.id])


def end_wrap_ups(db: sqlite_utils.Database, now: float) -> None:
    """Agents whose wrap-up is over become available, idle since the moment it ended."""
    rows = db.execute("SELECT id, wrap_up_until FROM acd_agents WHERE status = 'wrap_up'").fetchall()
    for agent_id, until in rows:
        if until is not None and until <= now:
            db.execute("UPDATE acd_agents SET status = 'available', status_since = ? WHERE id = ?", [until, agent_id])


# --- queues and calls --------------------------------------------------------------------------------


def all_queues(db: sqlite_utils.Database) -> dict[str, QueueSpec]:
    rows = db.execute("SELECT spec FROM acd_queues ORDER BY name").fetchall()
    return {queue.name: queue for queue in (queue_from_json(row[0]) for row in rows)}


def require_queue(db: sqlite_utils.Database, name: str) -> QueueSpec:
    row = db.execute("SELECT spec FROM acd_queues WHERE name = ?", [name]).fetchone()
    if not row:
        raise KeyError(f"no queue {name!r}")
    return queue_from_json(row[0])


def call_row(db: sqlite_utils.Database, call_id: str) -> WaitingCall | None:
    row = db.execute(f"SELECT {CALL_COLUMNS} FROM acd_calls WHERE call_id = ?", [call_id]).fetchone()
    return _call(row) if row else None


def require_call(db: sqlite_utils.Database, call_id: str) -> WaitingCall:
    call = call_row(db, call_id)
    if not call:
        raise KeyError(f"no call {call_id!r} in the queues")
    return call


def in_queue(db: sqlite_utils.Database, queue: str | None = None) -> list[WaitingCall]:
    """Waiting and ringing calls by queue, then priority (higher first), arrival and insertion order."""
    where, params = ("AND queue = ?", [queue]) if queue else ("", [])
    rows = db.execute(
        f"SELECT {CALL_COLUMNS} FROM acd_calls WHERE state IN ('waiting', 'ringing') {where}"
        " ORDER BY queue, priority DESC, enqueued_at, rowid",
        params,
    ).fetchall()
    return [_call(row) for row in rows]


def connected_calls(db: sqlite_utils.Database) -> list[WaitingCall]:
    rows = db.execute(
        f"SELECT {CALL_COLUMNS} FROM acd_calls WHERE state = 'connected' ORDER BY connected_at"
    ).fetchall()
    return [_call(row) for row in rows]


def _call(row: tuple[Any, ...]) -> WaitingCall:
    call_id, queue, priority, enqueued_at, language, context, state, agent_id = row
    return WaitingCall(call_id, queue, priority, enqueued_at, language, json.loads(context), state, agent_id)


def return_to_queue(db: sqlite_utils.Database, call_id: str, failed_agent_id: str, now: float) -> None:
    """The call waits again at its old place (arrival time kept); the agent is skipped for it this round."""
    db.execute("INSERT OR REPLACE INTO acd_ring_failures VALUES (?, ?, ?)", [call_id, failed_agent_id, now])
    db.execute("UPDATE acd_calls SET state = 'waiting', agent_id = NULL WHERE call_id = ?", [call_id])


def ring_failures(db: sqlite_utils.Database, call_id: str) -> dict[str, float]:
    rows = db.execute("SELECT agent_id, failed_at FROM acd_ring_failures WHERE call_id = ?", [call_id]).fetchall()
    return {agent_id: failed_at for agent_id, failed_at in rows}


def mean_handle_s(db: sqlite_utils.Database, queue: QueueSpec) -> float:
    """Talk time of the queue's latest connected calls plus its wrap-up: how long an agent is taken per call."""
    durations = db.execute(
        "SELECT ended_at - connected_at FROM acd_calls WHERE queue = ? AND connected_at IS NOT NULL"
        " AND ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?",
        [queue.name, HANDLE_SAMPLE],
    ).fetchall()
    talk = sum(row[0] for row in durations) / len(durations) if durations else DEFAULT_HANDLE_S
    return talk + queue.wrap_up_s


def callback_rows(db: sqlite_utils.Database, done: bool) -> list[Callback]:
    order = "done_at IS NOT NULL ORDER BY done_at DESC, id DESC" if done else "done_at IS NULL ORDER BY created_at, id"
    rows = db.execute(
        f"SELECT id, call_id, number, language, context, created_at, done_at, done_by FROM acd_callbacks WHERE {order}"
    ).fetchall()
    return [Callback(row[0], row[1], row[2], row[3], json.loads(row[4]), *row[5:]) for row in rows]


def end_connected_calls(db: sqlite_utils.Database, agent_id: str, now: float) -> None:
    """After a transfer the bot no longer sees the call: it is over when the agent says so (handle times learnt)."""
    db.execute("UPDATE acd_calls SET state = 'ended', ended_at = ? WHERE agent_id = ? AND state = 'connected'",
               [now, agent_id])  # fmt: skip


def finite(seconds: float) -> float | None:
    """JSON has no infinity (an unknown wait)."""
    return seconds if math.isfinite(seconds) else None
