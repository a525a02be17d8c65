"""Retention over a seeded calls.db and operations.db with known ages: exact counts per data type, younger rows
kept, the run audited, refused policies, dry runs, a locked database and the schedule inside `serve`."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dialogue.acd import Acd
from dialogue.agents import QueueSpec
from dialogue.routing import CALLS_SCHEMA
from voicebot.audit import Audit
from voicebot.call_schema import iso_ms, open_calls_db
from voicebot.cli_retention import add_retention_parser
from voicebot.ports import ConfigError
from voicebot.retention import DAY_S, Retention, RetentionError, RetentionPolicy
from voicebot.retention_schedule import RetentionSchedule

from .test_console_auth import ALWAYS_OPEN

NOW = time.time()  # the CLI and the schedule apply the policy at the real time: ages are relative to it
TRANSCRIPT_TABLES = {
    "turns": ("transcript", "reply"),
    "transfers": ("summary",),
    "errors": ("error",),
    "dtmf": ("digit",),
}


def ago(days: float) -> float:
    return NOW - days * DAY_S


def seed_call(db: sqlite3.Connection, call_id: str, days: float, turns: int, recording: Path | None = None) -> None:
    at = iso_ms(ago(days))
    db.execute("INSERT INTO calls (call_id, started, outcome) VALUES (?, ?, 'resolved')", [call_id, at])
    for turn in range(1, turns + 1):
        db.execute("INSERT INTO turns (call_id, turn, at, transcript, reply) VALUES (?, ?, ?, 'my name is [NAME]', "
                   "'Hello')", [call_id, turn, at])  # fmt: skip
    db.execute("INSERT INTO dtmf (call_id, at, digit) VALUES (?, ?, '0')", [call_id, at])
    db.execute("INSERT INTO transfers (call_id, at, queue, summary) VALUES (?, ?, 'general', 'wants a person')",
               [call_id, at])  # fmt: skip
    db.execute("INSERT INTO queue_waits (call_id, queue, entered) VALUES (?, 'general', ?)", [call_id, at])
    db.execute("INSERT INTO tickets (call_id, at, ticket) VALUES (?, ?, 'T-000001')", [call_id, at])
    db.execute("INSERT INTO feedback (call_id, at, rating) VALUES (?, ?, 4)", [call_id, at])
    db.execute("INSERT INTO errors (call_id, at, stage, error) VALUES (?, ?, 'asr', 'boom')", [call_id, at])
    db.execute("INSERT INTO disclosures (call_id, at, kind) VALUES (?, ?, 'ai')", [call_id, at])
    if recording is not None:
        recording.parent.mkdir(parents=True, exist_ok=True)
        recording.write_bytes(b"encrypted")
        db.execute("INSERT INTO recordings VALUES (?, ?, 'k1', ?, 9)", [call_id, str(recording), at])


def seed_ops(path: Path) -> None:
    clock = [ago(400)]
    acd = Acd(path, clock=lambda: clock[0])
    acd.seed([], [QueueSpec("general", "en", ALWAYS_OPEN)])
    for call_id, days in (("q-old", 400), ("q-quarter", 100), ("q-fresh", 2)):
        clock[0] = ago(days)
        acd.enqueue(call_id, "general", context={"transcript": "my number is [PHONE]", "summary": "wants a person"})
        acd.call_ended(call_id)
    clock[0] = ago(200)
    acd.enqueue("q-stale", "general", context={"summary": "still waiting"})  # never ended: not touched
    for number, days in (("0611111111", 400), ("0622222222", 100), ("0633333333", 5)):
        clock[0] = ago(days)
        acd.complete_callback(acd.add_callback(f"cb-{days}", number, "fr", {"summary": "call back"}), by="sam")
    acd.add_callback("cb-open", "0644444444", "fr", {"summary": "to do"})  # not done: kept whatever its age
    with sqlite3.connect(path) as conn:
        conn.execute(CALLS_SCHEMA)
        conn.executemany("INSERT INTO routing_calls VALUES (?, 'sip:+33612345678@host', ?)",
                         [("r-old", date.fromtimestamp(ago(100)).isoformat()),
                          ("r-new", date.fromtimestamp(NOW).isoformat())])  # fmt: skip


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    calls_db, ops_db, recordings = tmp_path / "calls.db", tmp_path / "operations.db", tmp_path / "recordings"
    db = open_calls_db(calls_db)
    conn = db.conn
    seed_call(conn, "fresh", 5, 2, recordings / "fresh.vbrec")
    seed_call(conn, "month", 45, 1, recordings / "month.vbrec")
    seed_call(conn, "quarter", 120, 2)
    seed_call(conn, "old", 400, 3, recordings / "old.vbrec")
    conn.execute(
        "INSERT INTO turns (call_id, turn, at, transcript) VALUES ('ghost', 1, ?, 'orphan')", [iso_ms(ago(400))]
    )
    conn.close()
    for name, days in (("lost.vbrec", 40), ("recent-lost.vbrec", 1)):  # files no row knows of
        (recordings / name).write_bytes(b"encrypted")
        os.utime(recordings / name, (ago(days), ago(days)))
    seed_ops(ops_db)
    yield calls_db, ops_db, recordings


def retention(stores: tuple[Path, Path, Path], policy: RetentionPolicy | None = None, **options: object) -> Retention:
    calls_db, ops_db, recordings = stores
    return Retention(policy or RetentionPolicy(), calls_db, ops_db, recordings, **options)  # type: ignore[arg-type]


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def snapshot(stores: tuple[Path, Path, Path]) -> dict[str, object]:
    calls_db, ops_db, recordings = stores
    tables = ("calls", "turns", "dtmf", "transfers", "queue_waits", "tickets", "feedback", "errors", "disclosures",
              "recordings")  # fmt: skip
    state: dict[str, object] = {table: rows(calls_db, f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}
    for table in ("acd_calls", "acd_callbacks", "routing_calls"):
        state[table] = rows(ops_db, f"SELECT * FROM {table} ORDER BY 1")
    state["files"] = sorted(p.name for p in recordings.iterdir())
    return state


EXPECTED = {
    # fresh (5 d) is untouched; month (45 d) loses its recording; quarter (120 d) its texts; old (400 d) everything
    "recordings": {"files": 2, "recordings": 2, "orphan_files": 1},
    "transcripts": {
        **{"turns": 2 + 3 + 1, "transfers": 2, "errors": 2, "dtmf": 2},  # quarter and old (+ the ghost turn)
        **{"queue_contexts": 2, "callback_numbers": 2, "callers_by_day": 1},
    },
    "metadata": {
        **{"turns": 3 + 1, "dtmf": 1, "transfers": 1, "queue_waits": 1, "tickets": 1, "feedback": 1, "errors": 1},
        **{"disclosures": 1, "calls": 1, "recordings": 0, "recording_files": 0},
        **{"queue_calls": 1, "queue_ring_failures": 0, "callbacks": 1},
    },
}


def test_apply_deletes_exactly_what_aged_out_and_audits_the_counts(stores: tuple[Path, Path, Path]) -> None:
    calls_db, ops_db, recordings = stores
    report = retention(stores).apply(NOW)
    assert report.counts == EXPECTED

    kept_calls = [r[0] for r in rows(calls_db, "SELECT call_id FROM calls ORDER BY started DESC")]
    assert kept_calls == ["fresh", "month", "quarter"]
    assert rows(calls_db, "SELECT call_id FROM recordings") == [("fresh",)]
    assert sorted(p.name for p in recordings.iterdir()) == ["fresh.vbrec", "recent-lost.vbrec"]
    texts = rows(calls_db, "SELECT call_id, transcript, reply FROM turns ORDER BY call_id, turn")
    assert texts == [("fresh", "my name is [NAME]", "Hello")] * 2 + [("month", "my name is [NAME]", "Hello")] + [
        ("quarter", None, None)] * 2  # fmt: skip
    for table, columns in TRANSCRIPT_TABLES.items():
        kept = rows(calls_db, f"SELECT DISTINCT call_id, {columns[0]} IS NOT NULL FROM {table} ORDER BY call_id")
        assert kept == [("fresh", 1), ("month", 1), ("quarter", 0)], table
    assert rows(calls_db, "SELECT COUNT(*) FROM queue_waits") == [(3,)]  # metadata of younger calls is kept

    contexts = {str(r[0]): str(r[1]) for r in rows(ops_db, "SELECT call_id, context FROM acd_calls")}
    assert contexts.keys() == {"q-quarter", "q-fresh", "q-stale"} and contexts["q-quarter"] == "{}"
    assert "[PHONE]" in contexts["q-fresh"] and "still waiting" in contexts["q-stale"]
    callbacks = rows(ops_db, "SELECT call_id, number, context FROM acd_callbacks ORDER BY call_id")
    assert callbacks == [("cb-100", "[PHONE]", "{}"), ("cb-5", "0633333333", '{"summary": "call back"}'),
                         ("cb-open", "0644444444", '{"summary": "to do"}')]  # fmt: skip
    assert [r[0] for r in rows(ops_db, "SELECT call_id FROM routing_calls")] == ["r-new"]

    entry = Audit(ops_db).entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("retention", "retention_apply", "call data")
    assert entry.after == {"deleted": EXPECTED}
    assert entry.before == {"policy": {"recordings_days": 30, "transcripts_days": 90, "metadata_days": 365}}
    assert Audit(ops_db).verify() == []

    again = retention(stores).apply(NOW)  # nothing left to delete, and that run is audited too
    assert all(count == 0 for counts in again.counts.values() for count in counts.values())
    assert Audit(ops_db).entries(limit=1)[0].id == entry.id + 1


def test_a_dry_run_counts_the_same_and_deletes_nothing(stores: tuple[Path, Path, Path]) -> None:
    before = snapshot(stores)
    audited = len(Audit(stores[1]).entries())
    report = retention(stores).apply(NOW, dry_run=True)
    assert report.dry_run and report.counts == EXPECTED
    assert snapshot(stores) == before
    assert len(Audit(stores[1]).entries()) == audited


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (RetentionPolicy(metadata_days=0, transcripts_days=0, recordings_days=0), "metadata_days is 0: every call"),
        (RetentionPolicy(transcripts_days=400), r"transcripts_days \(400\) is longer than metadata_days \(365\)"),
        (RetentionPolicy(recordings_days=500), r"recordings_days \(500\) is longer than metadata_days"),
        (RetentionPolicy(transcripts_days=0), "transcripts_days is 0: every transcript"),
    ],
)
def test_a_destructive_policy_is_refused_unless_confirmed(
    stores: tuple[Path, Path, Path], policy: RetentionPolicy, message: str
) -> None:
    before = snapshot(stores)
    with pytest.raises(RetentionError, match=f"{message}.*--confirm-destructive-policy"):
        retention(stores, policy).apply(NOW)
    assert snapshot(stores) == before and Audit(stores[1]).entries() == []
    retention(stores, policy, confirmed=True).apply(NOW)
    assert snapshot(stores) != before


def test_a_negative_period_is_refused_even_when_confirmed(stores: tuple[Path, Path, Path]) -> None:
    with pytest.raises(RetentionError, match=r"retention\.metadata_days is -1: days must be a whole number, 0 or more"):
        retention(stores, RetentionPolicy(metadata_days=-1), confirmed=True).apply(NOW)


def test_a_run_that_would_delete_every_call_is_refused(stores: tuple[Path, Path, Path]) -> None:
    calls_db = stores[0]
    with pytest.raises(RetentionError, match=r"would delete all 4 call records .* check the system clock"):
        retention(stores).apply(NOW + 10 * 365 * DAY_S)  # a clock ten years ahead
    assert len(rows(calls_db, "SELECT * FROM calls")) == 4
    report = retention(stores, confirmed=True).apply(NOW + 10 * 365 * DAY_S)
    assert report.counts["metadata"]["calls"] == 4


def test_a_locked_database_is_retried_then_reported_with_nothing_deleted(stores: tuple[Path, Path, Path]) -> None:
    before = snapshot(stores)
    holder = sqlite3.connect(stores[0], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writes calls.db
    try:
        with pytest.raises(RetentionError, match=r"calls\.db is locked by another process.*after 2 tries"):
            retention(stores, busy_timeout_s=0.1, attempts=2, retry_wait_s=0.05).apply(NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert snapshot(stores) == before
    assert retention(stores).apply(NOW).counts == EXPECTED  # once released, the next run does it all


def test_cli_applies_the_configured_policy(
    stores: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path))
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"retention:\n  metadata_days: 3650\nrecording:\n  dir: {stores[2]}\n")
    parser = argparse.ArgumentParser()
    add_retention_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["retention", "apply", "--dry-run", "--config", str(config)])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "would delete" in table and "dry run: nothing was changed" in table
    assert any(line.split() == ["metadata", "3650", "calls", "0"] for line in table.splitlines())
    assert any(line.split() == ["recordings", "30", "files", "2"] for line in table.splitlines())

    refused = parser.parse_args(["retention", "apply", "--config", str(config)])
    config.write_text("retention:\n  metadata_days: 0\n")
    with pytest.raises(ConfigError, match="metadata_days is 0"):
        refused.func(refused)
    confirmed = parser.parse_args(["retention", "apply", "--confirm-destructive-policy", "--config", str(config)])
    assert confirmed.confirm_destructive_policy is True


def test_the_schedule_applies_the_policy_and_survives_a_refused_one(
    stores: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    policies = iter([RetentionPolicy(metadata_days=0)])  # refused, then the default policy
    schedule = RetentionSchedule(lambda: retention(stores, next(policies, None)), every_s=0.01, first_after_s=0.0)
    with caplog.at_level(logging.ERROR):
        schedule.run_once()
    assert isinstance(schedule.last, ConfigError) and "ALERT retention not applied" in caplog.text
    schedule.start()
    try:
        for _ in range(500):
            if schedule.runs >= 2:
                break
            schedule._stop.wait(0.01)
    finally:
        schedule.stop()
    assert Audit(stores[1]).entries()[0].action == "retention_apply"
    assert len(rows(stores[0], "SELECT * FROM calls")) == 3
