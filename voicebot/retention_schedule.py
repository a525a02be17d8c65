"""The retention policy applied on a schedule inside `voicebot serve` (a background thread, hourly by default)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from voicebot.config import Settings
from voicebot.ports import ConfigError
from voicebot.retention import Retention, RetentionReport

log = logging.getLogger("voicebot.retention")

FIRST_RUN_AFTER_S = 60.0  # let the workers and the console start first


class RetentionSchedule:
    def __init__(
        self,
        retention: Callable[[], Retention],
        every_s: float,
        first_after_s: float = FIRST_RUN_AFTER_S,
    ) -> None:
        self._retention = retention
        self.every_s = every_s
        self.first_after_s = first_after_s
        self.runs = 0
        self.last: RetentionReport | ConfigError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionSchedule:
        every_s = settings.retention.run_every_s
        if every_s < 60:
            raise ConfigError(f"retention.run_every_s is {every_s}: use at least 60 (seconds; default 3600)")
        return cls(lambda: Retention.from_settings(settings), float(every_s))

    def start(self) -> RetentionSchedule:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stops after the run in progress (each data type is one transaction: none is left half-done)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        wait = self.first_after_s
        while not self._stop.wait(wait):
            self.run_once()
            wait = self.every_s

    def run_once(self) -> None:
        try:
            report = self._retention().apply()
        except ConfigError as exc:  # a refused policy or a locked database: the hotline goes on, the alert stays
            log.error("ALERT retention not applied: %s", exc)
            self.last = exc
        except Exception as exc:
            log.exception("ALERT retention failed")
            self.last = ConfigError(str(exc))
        else:
            deleted = ", ".join(f"{kind} {report.total(kind)}" for kind in report.counts) or "nothing"
            log.info("retention applied: %s (details in the audit log)", deleted)
            self.last = report
        self.runs += 1


def start_retention_schedule(settings: Settings) -> RetentionSchedule:
    return RetentionSchedule.from_settings(settings).start()
