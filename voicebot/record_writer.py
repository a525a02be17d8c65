"""Writes call events to the call records database without ever blocking the caller's audio.

`emit` stamps the wall time and puts the event in a bounded queue (O(1), never waits; when the queue is full
the event is counted as dropped). A daemon thread wakes every `commit_interval_s` (emit() never wakes it: no
thread switch per event on the audio path), maps what arrived to rows (voicebot/call_records.py, redaction
included) and writes them in one transaction, so a killed process loses at most its last fraction of a second.
When the store fails (locked, corrupt, unwritable, disk full, file removed) the rows wait in a bounded buffer,
an alert naming the file and the error is logged, and the write is retried every `retry_interval_s` until the
store is back.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from voicebot.call_records import RecordRows, RowOp
from voicebot.call_schema import RecordsStoreError, open_calls_db
from voicebot.events import CallEvent

log = logging.getLogger("voicebot.records")

# A row the database refuses (not the store failing): it is dropped, not retried forever.
_BAD_ROW = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)


@dataclass(frozen=True)
class WriterStats:
    written: int  # events whose rows are committed
    dropped: int  # events lost: queue full, writer closed, or rows the database refused
    pending: int  # events queued or buffered, not yet written
    store_errors: int  # failed attempts to open or write the store
    healthy: bool  # the last attempt to write succeeded
    last_error: str | None


class RecordWriter:
    """An EventSink that records calls in `path` (see voicebot/call_schema.py)."""

    def __init__(
        self,
        path: Path,
        rows: RecordRows,
        *,
        queue_size: int = 20_000,
        buffer_limit: int = 100_000,
        batch_max: int = 5_000,
        commit_interval_s: float = 0.1,
        retry_interval_s: float = 1.0,
        alert_interval_s: float = 10.0,
        busy_timeout_s: float = 1.0,
        on_cycle: Callable[[WriterStats], None] | None = None,
    ) -> None:
        self.path = path
        self.on_cycle = on_cycle  # told the stats after each write cycle (for /metrics), on the writer thread
        self.rows = rows
        self.buffer_limit = buffer_limit
        self.batch_max = batch_max
        self.commit_interval_s = commit_interval_s
        self.retry_interval_s = retry_interval_s
        self.alert_interval_s = alert_interval_s
        self.busy_timeout_s = busy_timeout_s
        self._queue: queue.Queue[tuple[float, CallEvent] | threading.Event] = queue.Queue(queue_size)
        self._buffer: list[list[RowOp]] = []  # rows of each event, in order, not yet committed
        self._waiters: list[threading.Event] = []
        self._db: sqlite_utils.Database | None = None
        self._file_id: tuple[int, int] | None = None
        self._drops = _Counter()
        self._written = self._refused = self._store_errors = 0
        self._healthy = True
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._next_retry = 0.0
        self._last_store_alert = self._last_drop_alert = -1e9
        self._drops_reported = 0
        self._deadline = float("inf")
        self._closing = threading.Event()
        self._wake = threading.Event()  # set by flush() and close(); emit() never wakes the thread
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    # --- called from the audio path / event loop --------------------------------------------------------------

    def emit(self, event: CallEvent) -> None:
        if self._closing.is_set():
            self._drops.add()
            return
        try:
            self._queue.put_nowait((time.time(), event))
        except queue.Full:
            self._drops.add()

    # --- called from anywhere ---------------------------------------------------------------------------------

    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            dropped=self._drops.value + self._refused,
            pending=self._queue.qsize() + len(self._buffer),
            store_errors=self._store_errors,
            healthy=self._healthy,
            last_error=self._last_error,
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until every event emitted before this call is written; False if the store did not take them."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> WriterStats:
        """Writes everything still queued (retrying a failing store until `timeout`), then closes the store."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout + 1.0)
        stats = self.stats()
        if stats.pending:
            log.error("call records: %d events could not be written to %s before closing", stats.pending, self.path)
        return stats

    # --- the writer thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        self._open_at_start()
        try:
            drained = True
            while not self._finished():
                if drained:
                    self._wake.wait(self._wait_s())
                    self._wake.clear()
                drained = self._take()
                if self._write_due():
                    self._write_buffer()
                if not self._buffer:
                    self._release_waiters()
                self._report_drops()
                if self.on_cycle is not None:
                    self.on_cycle(self.stats())
        except Exception:
            log.exception("call records writer stopped: events are no longer recorded")
        finally:
            self._close_store()

    def _open_at_start(self) -> None:
        """Opens the store (running its migrations) so that a corrupt or locked file is reported at once."""
        try:
            self._store()
        except (sqlite3.Error, RecordsStoreError, OSError) as exc:
            self._store_failed(exc)

    def _finished(self) -> bool:
        if not self._closing.is_set() or not self._queue.empty():
            return False
        return not self._buffer or time.monotonic() >= self._deadline

    def _write_due(self) -> bool:
        """Write what is buffered; while the store is failing, try again (even with nothing to write) when due."""
        return bool(self._buffer) if self._healthy else time.monotonic() >= self._next_retry

    def _wait_s(self) -> float:
        if not self._healthy:
            return max(0.0, min(self.commit_interval_s, self._next_retry - time.monotonic()))
        return 0.0 if self._closing.is_set() else self.commit_interval_s

    def _take(self) -> bool:
        """Moves up to `batch_max` queued events into the buffer (as rows). True when nothing more can be taken
        now: the queue is empty, or the buffer is full (the queue then fills and emit() counts what it drops)."""
        for _ in range(self.batch_max):
            if len(self._buffer) >= self.buffer_limit:
                return True
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True
            if isinstance(item, threading.Event):
                self._waiters.append(item)
            else:
                self._buffer.append(self._rows_of(*item))
        return False

    def _rows_of(self, wall: float, event: CallEvent) -> list[RowOp]:
        try:
            return self.rows.rows(event, wall)
        except Exception:
            log.exception("call records: cannot map %s of call %s: event not recorded", event.kind, event.call_id)
            return []

    def _release_waiters(self) -> None:
        for waiter in self._waiters:
            waiter.set()
        self._waiters.clear()

    def _write_buffer(self) -> None:
        try:
            db = self._store()
            try:
                self._transaction(db, self._buffer)
                written = len(self._buffer)
            except _BAD_ROW:
                written = self._write_one_by_one(db)
        except (sqlite3.Error, RecordsStoreError, OSError) as exc:
            self._store_failed(exc)
            return
        self._written += written
        self._buffer.clear()
        self._store_back()

    def _transaction(self, db: sqlite_utils.Database, events: list[list[RowOp]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for ops in events:
                for op in ops:
                    db.execute(*op.sql())
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def _write_one_by_one(self, db: sqlite_utils.Database) -> int:
        """A row the database refuses must not hold back the others: each event goes in its own savepoint.
        Returns how many events were written."""
        written = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for ops in self._buffer:
                written += self._write_event(db, ops)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return written

    def _write_event(self, db: sqlite_utils.Database, ops: list[RowOp]) -> int:
        db.execute("SAVEPOINT event")
        try:
            for op in ops:
                db.execute(*op.sql())
        except _BAD_ROW as exc:
            db.execute("ROLLBACK TO event")
            db.execute("RELEASE event")
            self._refused += 1
            log.error("call records: %s refused a row of %s (%s): event not recorded", self.path, ops[0].table, exc)
            return 0
        db.execute("RELEASE event")
        return 1

    def _store(self) -> sqlite_utils.Database:
        if self._db is not None and self._file_id != _file_id(self.path):
            log.error("call records: %s was removed or replaced: opening it again", self.path)
            self._close_store()
        if self._db is None:
            self._db = open_calls_db(self.path, busy_timeout_s=self.busy_timeout_s)
            self._file_id = _file_id(self.path)
        return self._db

    def _close_store(self) -> None:
        if self._db is not None:
            self._db.conn.close()
        self._db, self._file_id = None, None

    def _store_failed(self, exc: Exception) -> None:
        self._close_store()  # reopened on the next try: the file may be replaced, restored or unlocked by then
        self._store_errors += 1
        self._healthy, self._last_error = False, f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        self._next_retry = now + self.retry_interval_s
        if now - self._last_store_alert >= self.alert_interval_s:
            self._last_store_alert = now
            log.error(
                "call records: cannot write to %s (%s): %d events kept in memory, retrying every %g s",
                self.path,
                self._last_error,
                len(self._buffer),
                self.retry_interval_s,
            )
        if len(self._buffer) >= self.buffer_limit:
            log.error("call records: memory buffer full (%d events): new events are being dropped", self.buffer_limit)

    def _store_back(self) -> None:
        if not self._healthy and self._failing_since is not None:
            log.warning(
                "call records: %s is writable again after %.1f s; buffered events written",
                self.path,
                time.monotonic() - self._failing_since,
            )
        self._healthy, self._failing_since = True, None

    def _report_drops(self) -> None:
        dropped = self._drops.value
        now = time.monotonic()
        if dropped > self._drops_reported and now - self._last_drop_alert >= self.alert_interval_s:
            log.error(
                "call records: %d events dropped (queue full or writer closed); %d in total",
                dropped - self._drops_reported,
                dropped,
            )
            self._drops_reported, self._last_drop_alert = dropped, now


def _rollback(db: sqlite_utils.Database) -> None:
    try:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the connection is closed and reopened after any store error


class _Counter:
    """Drops counted from any emitting thread (the lock is held for one increment)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
