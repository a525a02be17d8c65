"""Prometheus metrics: call events move the exposed values; worker processes writing to one multiprocess folder
are added up by the console's /metrics; the records writer's health shows there too."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from voicebot import events as ev
from voicebot.config import REPO_ROOT, Settings
from voicebot.console.app import create_app
from voicebot.console.settings import ConsoleSettings
from voicebot.metrics import (
    LATENCY_BUCKETS_S,
    MULTIPROCESS_ENV,
    MetricsSink,
    count_records_dropped,
    metrics_response,
    prepare_multiprocess_dir,
    process_exited,
    set_records_health,
)

from .test_console_auth import db_path

__all__ = ["db_path"]  # the console's operations database fixture

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# A worker process: `calls` calls with one turn each, the last `open_calls` of them still up when it exits.
WRITER = """
import os, sys
from voicebot import events as ev
from voicebot.metrics import MetricsSink, set_records_health

name, calls, open_calls, store_up, pending = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sink = MetricsSink()
for i in range(calls):
    call_id = f"{name}-{i}"
    sink.emit(ev.CallStarted(call_id, 0.0))
    sink.emit(ev.TurnTimings(call_id, 3.0, turn=1, endpointing_ms=360, asr_ms=820, asr_wait_ms=120, dialogue_ms=90,
                             tts_first_audio_ms=240, end_of_speech_to_first_audio_ms=810))
    if i < calls - open_calls:
        sink.emit(ev.CallEnded(call_id, 9.0, outcome="hangup-by-caller"))
set_records_health(store_up == "up", int(pending))
print(os.getpid())
"""


def scrape(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled child never touched (Prometheus' own reading of an absent series)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def exposed() -> Samples:
    body, content_type = metrics_response()
    assert content_type.startswith("text/plain; version=")
    return scrape(body.decode())


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)


def test_a_call_with_a_turn_a_transfer_and_a_queue_wait_moves_every_metric(single_process: None) -> None:
    sink, before = MetricsSink(), exposed()
    sink.emit(ev.CallStarted("m-1", 0.0, caller="sip:alice@example.org"))
    during = exposed()
    sink.emit(ev.TurnTimings("m-1", 4.2, turn=1, endpointing_ms=360, asr_ms=820, asr_wait_ms=0, dialogue_ms=90,
                             tts_first_audio_ms=240, end_of_speech_to_first_audio_ms=1250))  # fmt: skip
    sink.emit(ev.BargeIn("m-1", 5.0, turn=1))
    sink.emit(ev.CallError("m-1", 6.0, stage="asr", error="timeout"))
    sink.emit(ev.TransferRequested("m-1", 7.0, reason="explicit_request", rule=None))
    sink.emit(ev.TransferRequested("m-1", 7.5, reason="dtmf", rule="keypad-zero"))
    sink.emit(ev.QueueJoined("m-1", 8.0, queue="general-en"))
    sink.emit(ev.CallEnded("m-1", 8.1, outcome="transferred"))
    waiting = exposed()
    sink.emit(ev.QueueLeft("m-1", 50.0, queue="general-en", outcome="abandoned", wait_s=42.0))
    after = exposed()

    def delta(name: str, samples: Samples = after, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    assert delta("voicebot_calls_active", during) == 1 and delta("voicebot_calls_active") == 0
    assert delta("voicebot_calls_total", outcome="transferred") == 1
    assert delta("voicebot_turns_total") == 1
    assert delta("voicebot_barge_ins_total") == 1
    assert delta("voicebot_errors_total", stage="asr") == 1
    assert delta("voicebot_transfers_total", reason="explicit_request", rule="none") == 1
    assert delta("voicebot_transfers_total", reason="dtmf", rule="keypad-zero") == 1
    assert delta("voicebot_queue_waiting", waiting) == 1 and delta("voicebot_queue_waiting") == 0
    assert delta("voicebot_queue_left_total", outcome="abandoned") == 1
    assert delta("voicebot_queue_wait_seconds_bucket", queue="general-en", le="30.0") == 0
    assert delta("voicebot_queue_wait_seconds_bucket", queue="general-en", le="45.0") == 1
    assert delta("voicebot_queue_wait_seconds_sum", queue="general-en") == pytest.approx(42.0)
    latency = "voicebot_stage_latency_seconds_bucket"
    assert delta(latency, stage="endpointing", le="0.3") == 0 and delta(latency, stage="endpointing", le="0.4") == 1
    assert delta(latency, stage="asr", le="0.75") == 0 and delta(latency, stage="asr", le="1.0") == 1
    assert delta(latency, stage="asr_wait", le="0.05") == 1
    assert delta(latency, stage="response", le="1.0") == 0 and delta(latency, stage="response", le="1.5") == 1
    for stage in ("endpointing", "asr", "asr_wait", "dialogue", "tts_first_audio", "response"):
        assert delta("voicebot_stage_latency_seconds_count", stage=stage) == 1, stage
    assert delta("voicebot_stage_latency_seconds_sum", stage="dialogue") == pytest.approx(0.09)


def test_latency_buckets_span_50_ms_to_10_s(single_process: None) -> None:
    before = exposed()
    MetricsSink().emit(ev.TurnTimings("m-2", 1.0, turn=1, endpointing_ms=12_000, asr_ms=30, dialogue_ms=10_000))
    after = exposed()
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in after
        if name == "voicebot_stage_latency_seconds_bucket" and ("stage", "endpointing") in labels
    )
    assert bounds == [*LATENCY_BUCKETS_S, float("inf")]
    assert bounds[0] == 0.05 and bounds[-2] == 10.0

    def delta(stage: str, le: str) -> float:
        name = "voicebot_stage_latency_seconds_bucket"
        return value(after, name, stage=stage, le=le) - value(before, name, stage=stage, le=le)

    assert (delta("endpointing", "10.0"), delta("endpointing", "+Inf")) == (0, 1)  # 12 s: beyond the last bound
    assert (delta("dialogue", "7.5"), delta("dialogue", "10.0")) == (0, 1)  # 10 s: bounds are inclusive
    assert delta("asr", "0.05") == 1  # 30 ms: in the first bucket


def test_an_event_the_sink_cannot_count_is_logged_not_raised(
    single_process: None, caplog: pytest.LogCaptureFixture
) -> None:
    sink, before = MetricsSink(), exposed()
    with caplog.at_level(logging.ERROR, logger="voicebot.metrics"):
        sink.emit(ev.TurnTimings("m-3", 1.0, turn=1, asr_ms="fast"))  # type: ignore[arg-type]
    assert "metrics: TurnTimings not counted" in caplog.text
    sink.emit(ev.DtmfReceived("m-3", 2.0, digit="5"))  # no metric: ignored
    assert value(exposed(), "voicebot_calls_active") == value(before, "voicebot_calls_active")


def test_records_store_down_and_buffered_records_are_visible(single_process: None) -> None:
    dropped_before = value(exposed(), "voicebot_records_dropped_total", store="calls")
    set_records_health(False, 12)
    count_records_dropped(3)
    down = exposed()
    assert value(down, "voicebot_records_store_up", store="calls") == 0
    assert value(down, "voicebot_records_pending", store="calls") == 12
    assert value(down, "voicebot_records_dropped_total", store="calls") - dropped_before == 3
    set_records_health(True, 0)
    up = exposed()
    assert value(up, "voicebot_records_store_up", store="calls") == 1
    assert value(up, "voicebot_records_pending", store="calls") == 0


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_99999.db").write_bytes(b"left by an earlier run")
    monkeypatch.setenv(MULTIPROCESS_ENV, str(folder))  # restored after the test; prepare sets it again
    prepare_multiprocess_dir(folder)
    yield folder


def run_writers(folder: Path, *args: tuple[str, ...]) -> list[int]:
    """Worker-like processes writing to `folder` at the same time; their pids."""
    env = {**os.environ, MULTIPROCESS_ENV: str(folder)}
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, *a], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for a in args
    ]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * len(processes), outputs
    return [int(out.strip()) for out in outputs]


def test_console_metrics_add_up_the_worker_processes(metrics_dir: Path, db_path: Path) -> None:
    assert os.environ[MULTIPROCESS_ENV] == str(metrics_dir)
    assert not (metrics_dir / "counter_99999.db").exists(), "values of an earlier run must not be added"
    _pid_a, pid_b = run_writers(metrics_dir, ("a", "3", "1", "up", "0"), ("b", "2", "1", "down", "7"))
    assert len(list(metrics_dir.glob("*.db"))) >= 4  # counters, histograms and gauges of both processes

    with TestClient(create_app(ConsoleSettings(), db_path, app_settings=Settings())) as console:
        page = console.get("/metrics")  # no login
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain; version=")
        samples = scrape(page.text)
        assert value(samples, "voicebot_calls_total", outcome="hangup-by-caller") == 3  # 2 + 1
        assert value(samples, "voicebot_turns_total") == 5
        assert value(samples, "voicebot_calls_active") == 2  # one open call in each process
        assert value(samples, "voicebot_stage_latency_seconds_count", stage="asr") == 5
        assert value(samples, "voicebot_stage_latency_seconds_bucket", stage="asr", le="0.75") == 0
        assert value(samples, "voicebot_stage_latency_seconds_bucket", stage="asr", le="1.0") == 5
        assert value(samples, "voicebot_stage_latency_seconds_sum", stage="asr") == pytest.approx(4.1)
        assert value(samples, "voicebot_records_store_up", store="calls") == 0  # b's store is down
        assert value(samples, "voicebot_records_pending", store="calls") == 7
        assert not [key for key in samples if key[0] == "voicebot_calls_active" and key[1]], "one series, no pid"

        process_exited(pid_b)
        samples = scrape(console.get("/metrics").text)
        assert value(samples, "voicebot_calls_active") == 1  # b's open call no longer counts
        assert value(samples, "voicebot_records_store_up", store="calls") == 1
        assert value(samples, "voicebot_records_pending", store="calls") == 0
        assert value(samples, "voicebot_turns_total") == 5  # counters keep what the dead process counted
        assert value(samples, "voicebot_calls_total", outcome="hangup-by-caller") == 3


def test_a_locked_records_store_shows_in_metrics_until_it_is_back(
    single_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records writer built by the composition root reports its store's state to /metrics as it goes."""
    import sqlite3
    import time

    from voicebot.call_records import RecordRows
    from voicebot.compose import RecordsHealth
    from voicebot.record_writer import RecordWriter

    path = tmp_path / "calls.db"
    RecordWriter(path, RecordRows(lambda text, _language: text, b"k")).close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    writer = RecordWriter(path, RecordRows(lambda text, _language: text, b"k"), busy_timeout_s=0.05,
                          on_cycle=RecordsHealth().update)  # fmt: skip
    for n in range(5):
        writer.emit(ev.DtmfReceived("c-locked", float(n), digit="1"))
    deadline = time.monotonic() + 10
    while value(exposed(), "voicebot_records_store_up", store="calls") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = exposed()
    assert value(samples, "voicebot_records_store_up", store="calls") == 0
    assert value(samples, "voicebot_records_pending", store="calls") == 5
    locker.execute("ROLLBACK")
    assert writer.flush(timeout=10)
    while value(exposed(), "voicebot_records_store_up", store="calls") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(exposed(), "voicebot_records_store_up", store="calls") == 1
    writer.close()
    locker.close()
