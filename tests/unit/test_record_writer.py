"""The call records writer: everything emitted is written; emit never waits; a locked, corrupt, missing or
removed store keeps the rows in memory, reports itself unhealthy with an alert, and flushes when it is back."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from voicebot import events as ev
from voicebot.call_records import RecordRows, RowOp
from voicebot.record_writer import RecordWriter

SALT = b"writer-test-salt"


def rows() -> RecordRows:
    return RecordRows(lambda text, language: text, SALT)


def writer(path: Path, **options: Any) -> RecordWriter:
    fast: dict[str, Any] = {"busy_timeout_s": 0.05, "retry_interval_s": 0.1, "alert_interval_s": 60.0}
    return RecordWriter(path, rows(), **(fast | options))


def dtmf_events(call_id: str, count: int) -> Iterator[ev.CallEvent]:
    yield ev.CallStarted(call_id, 0.0, caller="sip:+33100000000@example", language="en")
    for n in range(count):
        yield ev.DtmfReceived(call_id, 0.01 * (n + 1), digit=str(n % 10))


def count(path: Path, table: str, call_id: str | None = None) -> int:
    db = sqlite_utils.Database(path)
    try:
        where = "call_id = ?" if call_id else None
        return db.table(table).count_where(where, [call_id] if call_id else [])
    finally:
        db.conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def realistic_call(call_id: str) -> list[ev.CallEvent]:
    events: list[ev.CallEvent] = [ev.CallStarted(call_id, 0.0, caller=f"sip:{call_id}@example", language="fr")]
    for turn in range(1, 4):
        t = turn * 5.0
        events += [
            ev.SpeechStarted(call_id, t),
            ev.SpeechEnded(call_id, t + 1.5, speech_s=1.5),
            ev.Transcript(call_id, t + 2, turn=turn, text="je voudrais un rendez-vous", language="fr"),
            ev.DialogueReplied(call_id, t + 2.1, turn=turn, texts=("Bien sûr.",), intent="appointment"),
            ev.BotSpeechStarted(call_id, t + 2.3, turn=turn, text="Bien sûr."),
            ev.TurnTimings(call_id, t + 2.3, turn=turn, asr_ms=400.0, end_of_speech_to_first_audio_ms=800.0),
            ev.BotSpeechEnded(call_id, t + 3.0, turn=turn),
        ]
    return [*events, ev.CallEnded(call_id, 20.0, outcome="hangup-by-caller")]


def test_every_event_of_many_calls_is_written(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    records = writer(path)
    calls = [f"call-{n}" for n in range(400)]
    emitted = 0
    for call_id in calls:
        for event in realistic_call(call_id):
            records.emit(event)
            emitted += 1
    assert records.flush(timeout=30.0)
    stats = records.close()
    assert (stats.written, stats.dropped, stats.pending, stats.healthy) == (emitted, 0, 0, True)
    assert count(path, "calls") == 400 and count(path, "turns") == 400 * 3
    db = sqlite_utils.Database(path)
    assert db.execute("SELECT count(*) FROM calls WHERE outcome = 'resolved' AND turns = 3").fetchone()[0] == 400


def test_close_writes_what_is_queued_and_later_events_are_counted_as_dropped(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    records = writer(path)
    for event in dtmf_events("c1", 2000):
        records.emit(event)
    stats = records.close(timeout=10.0)
    assert (stats.written, stats.pending) == (2001, 0)
    assert count(path, "dtmf") == 2000
    records.emit(ev.DtmfReceived("c1", 99.0, digit="9"))
    assert records.stats().dropped == 1


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the write lock of an existing call records database."""
    path = tmp_path / "calls.db"
    writer(path).close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    yield locker
    if locker.in_transaction:
        locker.execute("ROLLBACK")
    locker.close()


def test_a_locked_store_buffers_alerts_and_flushes_everything_once_released(
    tmp_path: Path, locked: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calls.db"
    records = writer(path)
    caplog.set_level(logging.ERROR, logger="voicebot.records")
    for event in dtmf_events("c1", 500):
        records.emit(event)
    wait_until(lambda: not records.stats().healthy and records.stats().store_errors >= 2)
    stats = records.stats()
    assert stats.pending == 501 and stats.written == 0
    assert stats.last_error is not None and "locked" in stats.last_error
    alerts = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert alerts and str(path) in alerts[0] and "locked" in alerts[0]
    assert len(alerts) == 1  # rate-limited: one alert per alert interval, not one per retry
    assert not records.flush(timeout=0.3)
    locked.execute("ROLLBACK")
    assert records.flush(timeout=10.0)
    stats = records.stats()
    assert (stats.written, stats.pending, stats.dropped, stats.healthy) == (501, 0, 0, True)
    assert count(path, "dtmf", "c1") == 500
    records.close()


def test_emit_never_waits_and_counts_what_does_not_fit(
    tmp_path: Path, locked: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calls.db"
    caplog.set_level(logging.ERROR, logger="voicebot.records")
    records = RecordWriter(path, rows(), queue_size=100, buffer_limit=300, busy_timeout_s=0.05, retry_interval_s=0.1)
    started = time.perf_counter()
    emitted = 0
    for event in dtmf_events("c1", 20_000):
        records.emit(event)
        emitted += 1
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0  # a blocking put would wait for ever behind the lock
    wait_until(lambda: any("dropped" in r.getMessage() for r in caplog.records))
    stats = records.stats()
    assert stats.dropped >= emitted - 400 and stats.written == 0
    locked.execute("ROLLBACK")
    assert records.flush(timeout=10.0)
    stats = records.close()
    assert stats.written + stats.dropped == emitted and 100 <= stats.written <= 400
    assert count(path, "dtmf") + count(path, "calls") == stats.written


def test_a_corrupt_file_is_never_overwritten_and_rows_wait_until_it_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    garbage = b"\x00not a database\x01" * 500
    path.write_bytes(garbage)
    records = writer(path)
    for event in dtmf_events("c1", 50):
        records.emit(event)
    wait_until(lambda: records.stats().store_errors >= 3)
    stats = records.stats()
    assert not stats.healthy and stats.pending == 51
    assert stats.last_error is not None and "is not a call records database" in stats.last_error
    assert path.read_bytes() == garbage
    path.rename(tmp_path / "calls.db.corrupt")
    assert records.flush(timeout=10.0)
    assert count(path, "dtmf") == 50 and records.stats().healthy
    assert (tmp_path / "calls.db.corrupt").read_bytes() == garbage
    records.close()


def test_an_unusable_state_directory_buffers_until_it_is_usable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the state directory should be")
    records = writer(state / "calls.db")
    for event in dtmf_events("c1", 20):
        records.emit(event)
    wait_until(lambda: records.stats().store_errors >= 2)
    assert not records.stats().healthy and records.stats().pending == 21
    state.unlink()
    state.mkdir()
    assert records.flush(timeout=10.0)
    assert count(state / "calls.db", "dtmf") == 20
    records.close()


def test_a_removed_database_file_is_recreated_and_later_rows_land_in_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calls.db"
    records = writer(path)
    for event in dtmf_events("before", 10):
        records.emit(event)
    assert records.flush()
    for leftover in tmp_path.glob("calls.db*"):
        leftover.unlink()
    for event in dtmf_events("after", 10):
        records.emit(event)
    assert records.flush()
    records.close()
    assert count(path, "dtmf", "after") == 10 and count(path, "dtmf", "before") == 0
    assert any("was removed or replaced" in r.getMessage() for r in caplog.records)


class RefusedRowRows(RecordRows):
    """Maps a DTMF "X" to a calls row without its start time, which the schema refuses (NOT NULL)."""

    def rows(self, event: ev.CallEvent, wall: float) -> list[RowOp]:
        if isinstance(event, ev.DtmfReceived) and event.digit == "X":
            return [RowOp("calls", "insert", {"call_id": event.call_id, "started": None})]
        return super().rows(event, wall)


def test_a_row_the_database_refuses_is_dropped_without_holding_back_the_others(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    records = RecordWriter(path, RefusedRowRows(lambda text, language: text, SALT))
    for digit in "12X34":
        records.emit(ev.DtmfReceived("c1", 1.0, digit=digit))
    assert records.flush()
    stats = records.close()
    assert (stats.written, stats.dropped, stats.healthy) == (4, 1, True)
    assert count(path, "dtmf") == 4


def test_a_full_disk_keeps_the_rows_in_memory_and_writes_them_when_there_is_room_again(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    script = Path(__file__).resolve().parents[1] / "support" / "records_full_disk.py"
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    full, again = (json.loads(line) for line in done.stdout.splitlines())
    assert full["healthy"] is False and full["pending"] > 0 and full["dropped"] == 0
    assert "disk" in full["error"] or "I/O" in full["error"] or "full" in full["error"]
    assert again == {**again, "step": "space again", "healthy": True, "pending": 0, "dropped": 0}
    assert count(path, "turns", "full-1") == 3000
