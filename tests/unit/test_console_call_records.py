"""The console's call list and call page read the call records: a call written by the real RecordWriter (with the
real redactor) is listed with its outcome and rule, and its page shows the redacted transcript and stage timings."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from voicebot import events as ev
from voicebot.call_records import RecordRows
from voicebot.call_schema import CALLS_DB_NAME
from voicebot.config import Settings
from voicebot.console.app import create_app
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import UserStore
from voicebot.record_writer import RecordWriter
from voicebot.redaction import Redactor

from .test_console_auth import PASSWORD, db_path, log_in

__all__ = ["db_path"]


@pytest.fixture
def supervisor(db_path: Path) -> Iterator[TestClient]:
    UserStore(db_path)
    with TestClient(create_app(ConsoleSettings(), db_path, app_settings=Settings())) as client:
        assert log_in(client, "sam", PASSWORD)[0] == 303
        yield client


def record_a_transferred_call(calls_db: Path) -> None:
    writer = RecordWriter(calls_db, RecordRows(Redactor().redact, b"k" * 32, worker="w0"))
    call = "w0-42"
    for event in (
        ev.CallStarted(call, 0.0, caller="sip:+33612345678@trunk", language="en"),
        ev.DisclosurePlayed(call, 3.1, notice="ai", prompt_version="4", heard_to_end=True),
        ev.Transcript(
            call,
            6.0,
            turn=1,
            text="my number is 06 12 34 56 78 and I want a person",
            language="en",
            language_probability=0.97,
        ),
        ev.DialogueReplied(
            call, 6.4, turn=1, texts=("I'll put you through.",), intent="request_human", confidence=0.93
        ),
        ev.TurnTimings(
            call,
            7.0,
            turn=1,
            endpointing_ms=600,
            asr_ms=812,
            asr_wait_ms=314,
            dialogue_ms=402.5,
            tts_first_audio_ms=288,
            end_of_speech_to_first_audio_ms=1604,
        ),
        ev.TransferRequested(
            call,
            7.5,
            queue="general-en",
            reason="caller_request",
            language="en",
            summary="Caller 06 12 34 56 78 wants a person",
            rule="caller-asks",
            priority=10,
        ),
        ev.CallEnded(call, 9.0, outcome="transferred"),
        ev.QueueJoined(call, 9.1, queue="general-en"),
        ev.QueueLeft(call, 40.0, queue="general-en", outcome="connected", agent="alice", wait_s=30.9),
    ):
        writer.emit(event)
    stats = writer.close(5.0)
    assert stats.healthy and stats.dropped == 0


def test_a_recorded_call_is_listed_and_shows_redacted_turns_with_stage_timings(
    supervisor: TestClient, db_path: Path
) -> None:
    record_a_transferred_call(db_path.parent / CALLS_DB_NAME)
    listing = supervisor.get("/calls")
    assert listing.status_code == 200
    assert "w0-42" in listing.text and "transferred" in listing.text and "caller-asks" in listing.text
    assert "w0-42" not in supervisor.get("/calls?outcome=abandoned").text

    page = supervisor.get("/calls/w0-42")
    assert page.status_code == 200
    text = page.text
    assert "[PHONE]" in text and "06 12 34 56 78" not in text and "33612345678" not in text
    assert "request_human" in text and "I&#39;ll put you through." in text
    for timing in (
        '"timing-endpointing_ms">600<',
        '"timing-asr_wait_ms">314<',
        '"timing-dialogue_ms">402<',
        '"timing-response_ms">1604<',
    ):
        assert timing in text
    assert "alice" in text and "connected" in text  # the queue wait
    assert "general-en" in text


def test_an_empty_installation_shows_no_recorded_call(supervisor: TestClient) -> None:
    page = supervisor.get("/calls")
    assert page.status_code == 200 and "No recorded call matches." in page.text
    assert supervisor.get("/calls/w0-1").status_code == 404


def test_the_reports_page_shows_the_report_charts_and_exports_csv(supervisor: TestClient, db_path: Path) -> None:
    record_a_transferred_call(db_path.parent / CALLS_DB_NAME)
    page = supervisor.get("/reports?since=today")
    assert page.status_code == 200
    assert "1 calls" in page.text and page.text.count("<svg") == 7
    assert "caller_request" in page.text  # the transfer reason table

    export = supervisor.get("/reports/csv?since=today")
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        names = archive.namelist()
        assert "summary.csv" in names and "daily.csv" in names
        assert "caller_request" in archive.read("reasons.csv").decode()
        assert "caller-asks" in archive.read("rules.csv").decode()

    bad = supervisor.get("/reports?since=2026-13-01")
    assert bad.status_code == 400 and "is not a date" in bad.text
