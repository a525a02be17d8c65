"""How long call data is kept: recordings, what people said (transcripts), and the call records themselves.

`Retention.apply(now)` deletes what the policy (the `retention` section of the settings) says has aged out and
returns what it deleted, per data type and table; every real run is written to the audit log with those counts.
Each data type is one transaction per database (calls.db, operations.db): a locked database is retried, then
reported with nothing of that type half-deleted. A policy that deletes everything or contradicts itself is refused
unless it is confirmed (`--confirm-destructive-policy`, or `retention.confirm_destructive_policy` for `serve`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dialogue.ops_db import ops_db_path
from dialogue.state import state_dir
from voicebot.audit import Audit
from voicebot.call_schema import CALLS_DB_NAME, RecordsStoreError, iso_ms, open_calls_db
from voicebot.config import Settings
from voicebot.ports import ConfigError
from voicebot.privacy_settings import RetentionSettings
from voicebot.retention_sql import (
    OPS_METADATA,
    OPS_TRANSCRIPTS,
    delete_old_calls,
    delete_recordings,
    null_old_texts,
    old_recordings,
    orphan_recording_files,
    run_counted,
)

log = logging.getLogger(__name__)

DAY_S = 86400.0
CONFIRM_FLAG = "--confirm-destructive-policy"
T = TypeVar("T")
Step = tuple[str, Callable[[sqlite3.Connection], dict[str, int]]]  # (data type, work inside the transaction)


class RetentionError(ConfigError):
    """A retention run that could not be done (locked database, refused policy); the message says what to do."""


@dataclass(frozen=True)
class RetentionPolicy:
    recordings_days: int = 30
    transcripts_days: int = 90
    metadata_days: int = 365

    @classmethod
    def from_settings(cls, settings: RetentionSettings) -> RetentionPolicy:
        return cls(settings.recordings_days, settings.transcripts_days, settings.metadata_days)

    def days(self) -> tuple[int, int, int]:
        return self.recordings_days, self.transcripts_days, self.metadata_days

    def invalid(self) -> list[str]:
        """Never acceptable, confirmed or not."""
        return [
            f"retention.{name} is {days!r}: days must be a whole number, 0 or more"
            for name, days in asdict(self).items()
            if isinstance(days, bool) or not isinstance(days, int) or days < 0
        ]

    def destructive(self) -> list[str]:
        """Acceptable only when confirmed: deletes everything at each run, or promises what it cannot keep."""
        problems = [
            f"retention.{name} is 0: every {what} is deleted at each run"
            for name, what in (
                ("metadata_days", "call record"),
                ("transcripts_days", "transcript, even of calls in progress"),
                ("recordings_days", "recording"),
            )
            if getattr(self, name) == 0
        ]
        for name in ("transcripts_days", "recordings_days"):
            if getattr(self, name) > self.metadata_days:
                problems.append(
                    f"retention.{name} ({getattr(self, name)}) is longer than metadata_days ({self.metadata_days}): "
                    f"they are deleted with their calls after {self.metadata_days} days"
                )
        return problems

    def check(self, confirmed: bool) -> None:
        invalid = self.invalid()
        if invalid:
            raise RetentionError("retention policy refused: " + "; ".join(invalid) + ": fix the `retention` settings")
        destructive = self.destructive()
        if destructive and not confirmed:
            raise RetentionError(
                "retention policy refused: " + "; ".join(destructive) + ": fix the `retention` settings, or confirm "
                f"with {CONFIRM_FLAG} (retention.confirm_destructive_policy: true for `voicebot serve`)"
            )


@dataclass
class RetentionReport:
    dry_run: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # data type -> table (or files) -> rows

    def add(self, data_type: str, counts: dict[str, int]) -> None:
        merged = self.counts.setdefault(data_type, {})
        for what, count in counts.items():
            merged[what] = merged.get(what, 0) + count

    def total(self, data_type: str) -> int:
        return sum(self.counts.get(data_type, {}).values())


class Retention:
    def __init__(
        self,
        policy: RetentionPolicy,
        calls_db: Path,
        ops_db: Path,
        recordings_dir: Path,
        confirmed: bool = False,
        busy_timeout_s: float = 5.0,
        attempts: int = 3,
        retry_wait_s: float = 1.0,
    ) -> None:
        self.policy, self.confirmed = policy, confirmed
        self.calls_db, self.ops_db, self.recordings_dir = calls_db, ops_db, recordings_dir
        self.busy_timeout_s, self.attempts, self.retry_wait_s = busy_timeout_s, attempts, retry_wait_s

    @classmethod
    def from_settings(cls, settings: Settings, confirmed: bool = False) -> Retention:
        retention = settings.retention
        return cls(
            RetentionPolicy.from_settings(retention),
            state_dir() / CALLS_DB_NAME,
            ops_db_path(),
            settings.recording.directory(),
            confirmed or retention.confirm_destructive_policy,
        )

    def apply(self, now: float | None = None, dry_run: bool = False) -> RetentionReport:
        """Deletes (or, dry run, only counts) what has aged out at `now` (Unix time); audited unless a dry run."""
        self.policy.check(self.confirmed)
        now = time.time() if now is None else now
        recordings, transcripts, metadata = (now - days * DAY_S for days in self.policy.days())
        report = RetentionReport(dry_run)
        try:
            if self.calls_db.exists():
                self._retry(self.calls_db, "metadata", lambda: self._refuse_deleting_every_call(metadata))
                self._apply_to(report, self.calls_db, [
                    ("recordings", lambda db: self._recordings(db, recordings, dry_run)),
                    ("transcripts", lambda db: null_old_texts(db, iso_ms(transcripts))),
                    ("metadata", lambda db: self._metadata(db, metadata, dry_run)),
                ])  # fmt: skip
            if self.ops_db.exists():
                self._apply_to(report, self.ops_db, [
                    ("transcripts", lambda db: run_counted(db, OPS_TRANSCRIPTS, transcripts)),
                    ("metadata", lambda db: run_counted(db, OPS_METADATA, metadata)),
                ])  # fmt: skip
        except RetentionError as exc:
            if not dry_run and report.counts:
                self._audit_after_failure(report, exc)
            raise
        if not dry_run:
            self._audit(report)
        return report

    # --- the steps ---------------------------------------------------------------------------------------

    def _recordings(self, db: sqlite3.Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
        counts = delete_recordings(db, old_recordings(db, iso_ms(cutoff)), dry_run)
        counts["orphan_files"] = orphan_recording_files(db, self.recordings_dir, cutoff, dry_run)
        return counts

    def _metadata(self, db: sqlite3.Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
        iso = iso_ms(cutoff)
        files = delete_recordings(db, old_recordings(db, iso, by_call=True), dry_run)
        return {**delete_old_calls(db, iso), "recordings": files["recordings"], "recording_files": files["files"]}

    def _refuse_deleting_every_call(self, cutoff: float) -> None:
        if self.confirmed:
            return
        conn = self._connect(self.calls_db)
        try:
            query = "SELECT COUNT(*), SUM(started < ?), MAX(started) FROM calls"
            total, old, newest = conn.execute(query, [iso_ms(cutoff)]).fetchone()
        finally:
            conn.close()
        if total and old == total:
            raise RetentionError(
                f"retention would delete all {total} call records (the newest started {newest}, older than "
                f"metadata_days={self.policy.metadata_days}): check the system clock and the policy, or confirm "
                f"with {CONFIRM_FLAG}"
            )

    def _apply_to(self, report: RetentionReport, path: Path, steps: list[Step]) -> None:
        """Each data type in its own transaction (retried while the database is locked). A dry run takes them all
        in one transaction, rolled back: later steps count what earlier ones left, exactly as a real run would."""
        units = [steps] if report.dry_run else [[step] for step in steps]
        for unit in units:
            name = "a dry run" if report.dry_run else unit[0][0]

            def attempt(unit: list[Step] = unit) -> list[tuple[str, dict[str, int]]]:
                return self._transaction(path, unit, commit=not report.dry_run)

            for data_type, counts in self._retry(path, name, attempt):
                report.add(data_type, counts)

    # --- transactions, retries, audit --------------------------------------------------------------------

    def _connect(self, path: Path) -> sqlite3.Connection:
        if path == self.calls_db:
            db = open_calls_db(path, busy_timeout_s=self.busy_timeout_s)  # brings the schema up to date first
            conn: sqlite3.Connection = db.conn
        else:
            conn = sqlite3.connect(path, timeout=self.busy_timeout_s, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        return conn

    def _transaction(self, path: Path, steps: list[Step], commit: bool) -> list[tuple[str, dict[str, int]]]:
        """The steps inside one BEGIN IMMEDIATE: committed, or rolled back (on error, or not `commit`)."""
        conn = self._connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = [(data_type, work(conn)) for data_type, work in steps]
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT" if commit else "ROLLBACK")
            return done
        finally:
            conn.close()

    def _retry(self, path: Path, data_type: str, job: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return job()
            except (sqlite3.OperationalError, RecordsStoreError) as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise RetentionError(f"retention of {data_type} failed on {path}: {exc}: check the file") from exc
                if attempt == self.attempts:
                    raise RetentionError(
                        f"{path} is locked by another process: retention of {data_type} was not applied (nothing of "
                        f"it deleted) after {self.attempts} tries: retry later or stop that process"
                    ) from exc
                log.warning("%s is locked: retention of %s retried (%d/%d)", path, data_type, attempt, self.attempts)
                time.sleep(self.retry_wait_s * attempt)
        raise AssertionError("unreachable")

    def _audit(self, report: RetentionReport, error: str | None = None) -> None:
        after: dict[str, Any] = {"deleted": report.counts}
        if error:
            after["error"] = error
        policy = asdict(self.policy)

        def record() -> int:
            return Audit(self.ops_db).record("retention", "retention_apply", "call data", {"policy": policy}, after)

        try:
            self._retry(self.ops_db, "the audit entry", record)
        except RetentionError as exc:
            log.error("ALERT retention deleted %s but could not audit it: %s", report.counts, exc)
            message = f"retention deleted {report.counts} but the audit entry was not written: {exc}"
            raise RetentionError(message) from exc

    def _audit_after_failure(self, report: RetentionReport, failure: RetentionError) -> None:
        """What was deleted before a step failed is audited too (or, if that fails as well, logged)."""
        with contextlib.suppress(RetentionError):  # logged by _audit; the step's own failure is what callers see
            self._audit(report, error=str(failure))
