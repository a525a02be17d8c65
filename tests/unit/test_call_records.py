"""Call events -> call records rows: what each event writes, the outcome rule, redaction and the caller's hash.

The row operations are applied to a real (in-memory) call records database built by the migrations."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import sqlite_utils

from voicebot import events as ev
from voicebot.call_records import REDACTION_FAILED, RecordRows, caller_hash
from voicebot.call_schema import migrate

SALT = b"test-salt"
CALLER = "sip:+33612345678@hotline.example"
WALL0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def tagging_redactor(calls: list[tuple[str, str | None]]) -> Any:
    """Stands in for the redactor: records what it was asked and replaces the phone number."""

    def redact(text: str, language: str | None) -> str:
        calls.append((text, language))
        return text.replace("06 12 34 56 78", "[PHONE]")

    return redact


def record(events: Sequence[ev.CallEvent], rows: RecordRows | None = None) -> sqlite_utils.Database:
    db = sqlite_utils.Database(memory=True)
    db.conn.isolation_level = None
    migrate(db)
    rows = rows or RecordRows(lambda text, language: text, SALT)
    for event in events:
        for op in rows.rows(event, WALL0 + event.t):
            db.execute(*op.sql())
    return db


def call_row(db: sqlite_utils.Database, call_id: str = "c1") -> dict[str, Any]:
    return dict(db.table("calls").get(call_id))


def a_call(*middle: ev.CallEvent, ended: bool = True, end_reason: str | None = None) -> list[ev.CallEvent]:
    """A call; the bot session ends as the session does: "transferred" after a transfer it carried out."""
    start = ev.CallStarted("c1", 0.0, caller=CALLER, language="fr")
    transferred = any(isinstance(event, ev.TransferRequested) for event in middle)
    reason = end_reason or ("transferred" if transferred else "hangup-by-caller")
    end = [ev.CallEnded("c1", 30.0, outcome=reason)] if ended else []
    return [start, *middle, *end]


def test_a_whole_call_is_recorded_in_every_table() -> None:
    db = record(
        a_call(
            ev.DisclosurePlayed("c1", 1.0, notice="ai", prompt_version="ai-v2", heard_to_end=True),
            ev.Transcript(
                "c1", 4.0, turn=1, text="je veux déclarer un nid de poule", language="fr", language_probability=0.93
            ),
            ev.DialogueReplied(
                "c1",
                4.4,
                turn=1,
                texts=("D'accord.", "Où est-il ?"),
                intent="report_problem",
                confidence=0.97,
                kb_id="roads-12",
            ),
            ev.TurnTimings(
                "c1",
                5.0,
                turn=1,
                endpointing_ms=600.0,
                asr_ms=410.0,
                asr_wait_ms=120.0,
                dialogue_ms=90.0,
                tts_first_audio_ms=180.0,
                end_of_speech_to_first_audio_ms=990.0,
            ),
            ev.BargeIn("c1", 5.5, turn=1),
            ev.Transcript(
                "c1",
                9.0,
                turn=2,
                text="hum",
                language="th",
                language_probability=0.4,
                accepted=False,
                rejected_because="low_language_probability",
            ),
            ev.DialogueReplied("c1", 9.3, turn=2, texts=("Je n'ai pas trouvé.",), intent="faq", kb_miss=True),
            ev.DtmfReceived("c1", 12.0, digit="4"),
            ev.TicketFiled("c1", 20.0, ticket="T-000042", category="road"),
            ev.RatingGiven("c1", 28.0, rating=4),
        )
    )
    call = call_row(db)
    assert call == call | {
        "started": "2027-01-15T08:00:00.000Z",
        "ended": "2027-01-15T08:00:30.000Z",
        "duration_s": 30.0,
        "language": "fr",
        "caller_hash": caller_hash(CALLER, SALT),
        "outcome": "resolved",
        "reason": None,
        "turns": 2,
        "barge_ins": 1,
        "errors": 0,
        "csat": 4,
        "end_reason": "hangup-by-caller",
    }
    first, second = (dict(row) for row in db["turns"].rows_where(order_by="turn"))
    assert first == first | {
        "at": "2027-01-15T08:00:04.000Z",
        "t": 4.0,
        "transcript": "je veux déclarer un nid de poule",
        "language": "fr",
        "language_probability": 0.93,
        "accepted": 1,
        "intent": "report_problem",
        "confidence": 0.97,
        "reply": "D'accord. Où est-il ?",
        "kb_id": "roads-12",
        "kb_miss": 0,
        "barge_in": 1,
        "endpointing_ms": 600.0,
        "asr_ms": 410.0,
        "asr_wait_ms": 120.0,
        "dialogue_ms": 90.0,
        "tts_first_audio_ms": 180.0,
        "response_ms": 990.0,
    }
    assert (second["accepted"], second["rejected_because"], second["kb_miss"], second["barge_in"]) == (
        0,
        "low_language_probability",
        1,
        0,
    )
    assert [(r["t"], r["digit"]) for r in db["dtmf"].rows] == [(12.0, "4")]
    assert [(r["ticket"], r["category"]) for r in db["tickets"].rows] == [("T-000042", "road")]
    assert [(r["rating"], r["at"]) for r in db["feedback"].rows] == [(4, "2027-01-15T08:00:28.000Z")]
    disclosure = next(iter(db["disclosures"].rows))
    assert (disclosure["kind"], disclosure["prompt_version"], disclosure["heard_to_end"]) == ("ai", "ai-v2", 1)


def test_a_turn_row_made_before_its_transcript_keeps_the_transcript_time() -> None:
    db = record(
        a_call(
            ev.DialogueReplied("c1", 6.0, turn=1, texts=("Bonjour",), intent="greet"),
            ev.Transcript("c1", 5.0, turn=1, text="bonjour", language="fr", language_probability=0.9),
        )
    )
    turn = dict(db.table("turns").get(("c1", 1)))
    assert (turn["t"], turn["at"], turn["intent"], turn["transcript"]) == (
        5.0,
        "2027-01-15T08:00:05.000Z",
        "greet",
        "bonjour",
    )


def transfer(**fields: Any) -> ev.TransferRequested:
    return ev.TransferRequested("c1", 10.0, queue="fr-general", reason="asked_for_human", **fields)


def left(outcome: str) -> ev.QueueLeft:
    return ev.QueueLeft("c1", 60.0, queue="fr-general", outcome=outcome, agent="alice", wait_s=40.0)


@pytest.mark.parametrize(
    ("middle", "after_end", "outcome"),
    [
        ((), (), "resolved"),
        ((ev.CallError("c1", 3.0, stage="tts", error="boom"),), (), "error"),
        ((ev.CallError("c1", 3.0, stage="asr", error="boom"), transfer()), (), "transferred"),
        ((transfer(),), (), "transferred"),
        ((transfer(), ev.QueueJoined("c1", 20.0, queue="fr-general")), (left("connected"),), "transferred"),
        ((transfer(), ev.QueueJoined("c1", 20.0, queue="fr-general")), (left("abandoned"),), "abandoned"),
        ((transfer(), ev.QueueJoined("c1", 20.0, queue="fr-general")), (left("callback"),), "callback"),
        ((transfer(callback=True),), (), "callback"),
        ((transfer(fixed_number="sip:112@emergency.example", rule="emergency"),), (), "transferred"),
        ((transfer(), ev.QueueJoined("c1", 20.0, queue="fr-general")), (left("failed"),), "transferred"),
    ],
)
def test_outcome_rule(middle: tuple[ev.CallEvent, ...], after_end: tuple[ev.CallEvent, ...], outcome: str) -> None:
    db = record([*a_call(*middle), *after_end])
    assert call_row(db)["outcome"] == outcome


def test_a_caller_who_hangs_up_before_the_transfer_is_carried_out_abandoned() -> None:
    db = record(a_call(transfer(), end_reason="hangup-by-caller"))
    assert call_row(db)["outcome"] == "abandoned"


def test_a_live_call_has_no_outcome_and_the_queue_revises_it_after_the_bot_session() -> None:
    rows = RecordRows(lambda text, language: text, SALT)
    live = record(a_call(transfer(rule="asked-human", priority=3), ended=False), rows)
    assert call_row(live)["outcome"] is None
    db = record(
        [
            *a_call(transfer(rule="asked-human", priority=3), ev.QueueJoined("c1", 20.0, queue="fr-general")),
            left("abandoned"),
        ]
    )
    call = call_row(db)
    assert (call["outcome"], call["reason"], call["rule"], call["queue"]) == (
        "abandoned",
        "asked_for_human",
        "asked-human",
        "fr-general",
    )
    waits = [dict(row) for row in db["queue_waits"].rows]
    assert len(waits) == 1
    assert waits[0] == waits[0] | {
        "entered": "2027-01-15T08:00:20.000Z",
        "left": "2027-01-15T08:01:00.000Z",
        "wait_s": 40.0,
        "outcome": "abandoned",
        "agent": "alice",
    }
    stored = next(iter(db["transfers"].rows))
    assert (stored["rule"], stored["priority"], stored["callback"], stored["fixed_number"]) == (
        "asked-human",
        3,
        0,
        None,
    )


def test_queue_left_for_a_call_recorded_by_another_process_revises_only_its_outcome() -> None:
    db = record(a_call(transfer(), ev.Transcript("c1", 5.0, turn=1, text="a person please")))
    for op in RecordRows(lambda text, language: text, SALT).rows(left("callback"), WALL0 + 60.0):
        db.execute(*op.sql())
    call = call_row(db)
    assert (call["outcome"], call["turns"], call["reason"]) == ("callback", 1, "asked_for_human")
    wait = next(iter(db["queue_waits"].rows))
    assert (wait["entered"], wait["left"], wait["outcome"]) == (
        "2027-01-15T08:00:20.000Z",
        "2027-01-15T08:01:00.000Z",
        "callback",
    )


def test_person_texts_are_redacted_with_the_call_language_and_the_caller_is_only_hashed() -> None:
    asked: list[tuple[str, str | None]] = []
    rows = RecordRows(tagging_redactor(asked), SALT)
    db = record(
        a_call(
            ev.Transcript(
                "c1", 4.0, turn=1, text="rappelez-moi au 06 12 34 56 78", language="fr", language_probability=0.95
            ),
            ev.DialogueReplied("c1", 4.5, turn=1, texts=("Je note le 06 12 34 56 78.",), intent="callback"),
            ev.TransferRequested(
                "c1", 5.0, queue="fr-general", reason="callback", summary="Caller wants a call back on 06 12 34 56 78"
            ),
            ev.CallError("c1", 6.0, stage="dialogue", error="DialogueError: text was 06 12 34 56 78"),
        ),
        rows,
    )
    assert {text for text, _ in asked} == {
        "rappelez-moi au 06 12 34 56 78",
        "Je note le 06 12 34 56 78.",
        "Caller wants a call back on 06 12 34 56 78",
        "DialogueError: text was 06 12 34 56 78",
    }
    assert {language for _, language in asked} == {"fr"}
    assert db.table("turns").get(("c1", 1))["transcript"] == "rappelez-moi au [PHONE]"
    dump = "\n".join(db.conn.iterdump())
    assert "06 12 34 56 78" not in dump
    assert "612345678" not in dump and CALLER not in dump
    assert call_row(db)["caller_hash"] == hmac.new(SALT, CALLER.encode(), hashlib.sha256).hexdigest()[:16]
    assert caller_hash(CALLER, b"another-salt") != caller_hash(CALLER, SALT)
    assert caller_hash(None, SALT) is None and caller_hash("  ", SALT) is None


def test_a_failing_redactor_keeps_the_text_off_disk() -> None:
    def broken(text: str, language: str | None) -> str:
        raise RuntimeError("model missing")

    db = record(
        a_call(ev.Transcript("c1", 4.0, turn=1, text="my card is 4970 1012 3456 7890")), RecordRows(broken, SALT)
    )
    assert db.table("turns").get(("c1", 1))["transcript"] == REDACTION_FAILED


def test_the_call_language_follows_confident_supported_detections_only() -> None:
    db = record(
        a_call(
            ev.Transcript("c1", 3.0, turn=1, text="hello", language="en", language_probability=0.55),
            ev.Transcript("c1", 6.0, turn=2, text="sawadee", language="th", language_probability=0.99),
        )
    )
    assert call_row(db)["language"] == "fr"
    db = record(a_call(ev.Transcript("c1", 3.0, turn=1, text="hello there", language="en", language_probability=0.9)))
    assert call_row(db)["language"] == "en"


@dataclass(frozen=True)
class TransferRequested(ev.CallEvent):
    """An older TransferRequested, without the rule fields: the mapping reads them with defaults."""

    queue: str = "default"
    reason: str = ""
    summary: str = ""


def test_events_without_the_newer_fields_and_unrecorded_kinds() -> None:
    rows = RecordRows(lambda text, language: text, SALT)
    assert rows.rows(ev.SpeechStarted("c1", 1.0), WALL0) == []
    assert rows.rows(ev.Transcript("c1", 1.0, turn=1, text="partial", speculative=True), WALL0) == []
    db = record(a_call(TransferRequested("c1", 5.0, queue="en-general", reason="dtmf_0"), end_reason="transferred"))
    stored = next(iter(db["transfers"].rows))
    assert (stored["queue"], stored["rule"], stored["priority"], stored["callback"]) == ("en-general", None, 0, 0)
    assert call_row(db)["outcome"] == "transferred"


def test_worker_is_recorded_and_an_event_before_call_started_dates_the_call_from_its_clock() -> None:
    rows = RecordRows(lambda text, language: text, SALT, worker="worker-2")
    db = record([ev.DtmfReceived("c9", 7.5, digit="0"), ev.CallEnded("c9", 10.0, outcome="hangup-by-bot")], rows)
    call = call_row(db, "c9")
    assert (call["worker"], call["started"], call["duration_s"]) == ("worker-2", "2027-01-15T08:00:00.000Z", 10.0)
