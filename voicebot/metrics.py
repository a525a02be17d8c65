"""Prometheus metrics: `MetricsSink` turns call events into counters, gauges and latency histograms, and
`metrics_response` renders them for the console's `/metrics`.

The SIP workers are separate processes, so `voicebot serve` uses prometheus_client's multiprocess mode: each
process writes its values to memory-mapped files in `PROMETHEUS_MULTIPROC_DIR` and the console adds them up at
scrape time. prometheus_client picks its mode when it is first imported, from that environment variable, so
this module imports it only on first use: `prepare_multiprocess_dir` must run before (serve does it before it
starts anything). Without the variable (one process, tests) the metrics live in the default registry.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voicebot import events as ev

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A turn's stages take from tens of milliseconds (endpointing, dialogue) to seconds (ASR on a busy machine).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
QUEUE_WAIT_BUCKETS_S = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0)
STAGE_FIELDS = {
    "endpointing": "endpointing_ms",
    "asr": "asr_ms",
    "asr_wait": "asr_wait_ms",
    "dialogue": "dialogue_ms",
    "tts_first_audio": "tts_first_audio_ms",
    "response": "end_of_speech_to_first_audio_ms",
}
RECORDS_STORE = "calls"  # the label of the records writer's metrics (calls.db)
MAX_LABEL_CHARS = 64


class _Families:
    """The metric families, created once per process (after the mode is settled)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.calls_active = Gauge("voicebot_calls_active", "Calls talking with the bot now",
                                  multiprocess_mode="livesum")  # fmt: skip
        self.queue_waiting = Gauge("voicebot_queue_waiting", "Callers waiting in an agent queue now",
                                   multiprocess_mode="livesum")  # fmt: skip
        self.calls = Counter("voicebot_calls", "Bot sessions ended, by outcome", ["outcome"])
        self.turns = Counter("voicebot_turns", "Caller turns answered by the bot")
        self.stage_latency = Histogram("voicebot_stage_latency_seconds", "Latency of each stage of a caller turn",
                                       ["stage"], buckets=LATENCY_BUCKETS_S)  # fmt: skip
        self.transfers = Counter("voicebot_transfers", "Transfers to a person, by reason and rule", ["reason", "rule"])
        self.errors = Counter("voicebot_errors", "Errors during calls, by stage", ["stage"])
        self.barge_ins = Counter("voicebot_barge_ins", "Times a caller interrupted the bot")
        self.queue_wait = Histogram("voicebot_queue_wait_seconds", "Time callers waited in an agent queue",
                                    ["queue"], buckets=QUEUE_WAIT_BUCKETS_S)  # fmt: skip
        self.queue_left = Counter("voicebot_queue_left", "Callers who left an agent queue, by outcome", ["outcome"])
        # livemin: one writer whose store is down is enough to show the store down.
        self.records_store_up = Gauge(
            "voicebot_records_store_up", "1 while the call records store accepts writes, 0 while records are buffered",
            ["store"], multiprocess_mode="livemin",
        )  # fmt: skip
        self.records_pending = Gauge("voicebot_records_pending", "Call records buffered, not yet written",
                                     ["store"], multiprocess_mode="livesum")  # fmt: skip
        self.records_dropped = Counter("voicebot_records_dropped", "Call records lost (buffer full)", ["store"])


@functools.cache
def _families() -> _Families:
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:  # the files are created with the first metric; a missing folder would fail the process
        Path(directory).mkdir(parents=True, exist_ok=True)
    return _Families()


def _label(value: object) -> str:
    return str(value)[:MAX_LABEL_CHARS] if value not in (None, "") else "none"


class MetricsSink:
    """An EventSink updating the metrics: constant time per event, never raises."""

    def __init__(self) -> None:
        self.metrics = _families()
        self._handlers: dict[type[ev.CallEvent], Callable[[Any], None]] = {
            ev.CallStarted: lambda _e: self.metrics.calls_active.inc(),
            ev.CallEnded: self._call_ended,
            ev.TurnTimings: self._turn,
            ev.TransferRequested: lambda e: self.metrics.transfers.labels(_label(e.reason), _label(e.rule)).inc(),
            ev.CallError: lambda e: self.metrics.errors.labels(_label(e.stage)).inc(),
            ev.BargeIn: lambda _e: self.metrics.barge_ins.inc(),
            ev.QueueJoined: lambda _e: self.metrics.queue_waiting.inc(),
            ev.QueueLeft: self._queue_left,
        }

    def emit(self, event: ev.CallEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except Exception:
            log.exception("metrics: %s not counted", event.kind)

    def _call_ended(self, event: ev.CallEnded) -> None:
        self.metrics.calls_active.dec()
        self.metrics.calls.labels(_label(event.outcome)).inc()

    def _turn(self, event: ev.TurnTimings) -> None:
        self.metrics.turns.inc()
        for stage, field in STAGE_FIELDS.items():
            self.metrics.stage_latency.labels(stage).observe(max(0.0, getattr(event, field)) / 1000)

    def _queue_left(self, event: ev.QueueLeft) -> None:
        self.metrics.queue_waiting.dec()
        self.metrics.queue_wait.labels(_label(event.queue)).observe(max(0.0, event.wait_s))
        self.metrics.queue_left.labels(_label(event.outcome)).inc()


# --- the call records writer's health ------------------------------------------------------------------


def set_records_health(healthy: bool, pending: int) -> None:
    """The records store accepts writes (or not) and `pending` records wait in the writer's buffer."""
    try:
        families = _families()
        families.records_store_up.labels(RECORDS_STORE).set(1 if healthy else 0)
        families.records_pending.labels(RECORDS_STORE).set(pending)
    except Exception:  # the writer's thread must go on writing
        log.exception("metrics: records health not updated")


def count_records_dropped(n: int) -> None:
    try:
        if n > 0:
            _families().records_dropped.labels(RECORDS_STORE).inc(n)
    except Exception:
        log.exception("metrics: %d dropped records not counted", n)


# --- processes and exposition --------------------------------------------------------------------------


def prepare_multiprocess_dir(path: Path) -> None:
    """Create `path` empty (values of an earlier run would be added to this run's) and point this process and
    the processes it starts from now on at it. Call it before anything imports prometheus_client."""
    values = sys.modules.get("prometheus_client.values")
    if values is not None and values.ValueClass is values.MutexValue:
        log.warning("prometheus_client was loaded before %s was set: this process's own metrics are not shared",
                    MULTIPROCESS_ENV)  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(path)


def process_exited(pid: int) -> None:
    """A process that wrote metrics has ended: its live gauges (calls active, queue waiting) no longer count.
    Its counters and histograms keep counting."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)


def metrics_response() -> tuple[bytes, str]:
    """The exposition text of every process (or of this one without multiprocess mode) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

    directory = os.environ.get(MULTIPROCESS_ENV)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client's multiprocess docs require
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST
