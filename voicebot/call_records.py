"""Call events -> row operations on the call records tables (voicebot/call_schema.py). Pure: no database here.

What a person said (transcripts, replies, hand-off summaries, error texts) goes through `redact` first; the caller
is kept only as a salted hash. Events are matched on their class name so that the mapping reads new fields with
defaults. The calls row is rewritten from the call's running summary at each event that changes it; its outcome
is set when the bot session ends and revised by a later QueueLeft (the caller waited for an agent afterwards).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from dialogue.pseudonym import pseudonym
from voicebot.call_schema import iso_ms
from voicebot.events import CallEvent

log = logging.getLogger("voicebot.records")

Value = str | int | float | None
Redact = Callable[[str, str | None], str]
REDACTION_FAILED = "[REDACTION FAILED]"
# QueueLeft.outcome -> calls.outcome
# A queue that failed sent the caller to the queue's fixed line (telephony/worker.py): transferred, with an error.
QUEUE_OUTCOMES = {"connected": "transferred", "abandoned": "abandoned", "callback": "callback", "failed": "transferred"}


@dataclass(frozen=True)
class RowOp:
    """One write: insert a row, upsert it on `key`, update the rows matching `where` (None: IS NULL), or insert
    it unless a row matches `where` (insert_missing). An upsert overwrites the other columns, except those in
    `keep`, which keep a value already there."""

    table: str
    action: Literal["insert", "upsert", "update", "insert_missing"]
    values: Mapping[str, Value]
    key: tuple[str, ...] = ()
    where: Mapping[str, Value] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()

    def sql(self) -> tuple[str, list[Value]]:
        where_shape = tuple((column, value is None) for column, value in self.where.items())
        statement = _statement(self.table, self.action, tuple(self.values), self.key, where_shape, self.keep)
        params = list(self.values.values()) + [v for v in self.where.values() if v is not None]
        return statement, params


def _conditions(where: tuple[tuple[str, bool], ...]) -> str:
    return " AND ".join(f'"{c}" IS NULL' if is_null else f'"{c}" = ?' for c, is_null in where)


@lru_cache(maxsize=256)
def _statement(
    table: str,
    action: str,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    where: tuple[tuple[str, bool], ...],
    keep: frozenset[str],
) -> str:
    if action == "update":
        sets = ", ".join(f'"{c}" = ?' for c in columns)
        return f'UPDATE "{table}" SET {sets} WHERE {_conditions(where)}'
    names = ", ".join(f'"{c}"' for c in columns)
    placeholders = ", ".join("?" for _ in columns)
    if action == "insert_missing":
        missing = f'NOT EXISTS (SELECT 1 FROM "{table}" WHERE {_conditions(where)})'
        return f'INSERT INTO "{table}" ({names}) SELECT {placeholders} WHERE {missing}'
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({placeholders})'
    if action == "insert":
        return insert
    updates = [
        f'"{c}" = COALESCE("{table}"."{c}", excluded."{c}")' if c in keep else f'"{c}" = excluded."{c}"'
        for c in columns
        if c not in key
    ]
    conflict = f" ON CONFLICT ({', '.join(key)}) "
    return insert + conflict + (f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING")


@dataclass
class _Transfer:
    queue: str | None
    reason: str | None
    rule: str | None
    callback: bool
    fixed_number: str | None


@dataclass
class _Call:
    """The running summary of one call (the calls row)."""

    started: float
    language: str | None = None
    caller_hash: str | None = None
    turns: set[int] = field(default_factory=set)
    barge_ins: int = 0
    errors: int = 0
    csat: int | None = None
    transfer: _Transfer | None = None
    queue_outcome: str | None = None
    ended: float | None = None
    duration_s: float | None = None
    end_reason: str | None = None

    def outcome(self) -> str | None:
        if self.ended is None:
            return None
        if self.queue_outcome is not None:
            return QUEUE_OUTCOMES.get(self.queue_outcome, "error")
        if self.transfer is not None:
            if self.end_reason == "hangup-by-caller":  # gone before the transfer was carried out
                return "abandoned"
            return "callback" if self.transfer.callback else "transferred"
        return "error" if self.errors else "resolved"


def caller_hash(caller: str | None, salt: bytes) -> str | None:
    """The caller's keyed pseudonym (the same one the transfer rules count calls by): the number is not kept."""
    if not caller or not caller.strip():
        return None
    return pseudonym(caller.strip(), salt)


class RecordRows:
    """Maps each call event (with the wall time it happened) to the row operations that record it.

    Stateful per call, so events must arrive in order; the summaries of ended calls are kept for a while
    (`remember_ended`) because the queue reports the caller's fate after the bot session ended."""

    def __init__(
        self,
        redact: Redact,
        caller_salt: bytes,
        worker: str | None = None,
        languages: tuple[str, ...] = ("en", "fr"),
        language_threshold: float = 0.6,
        remember_ended: int = 2000,
        max_live: int = 10_000,
    ) -> None:
        self.redact = redact
        self.caller_salt = caller_salt
        self.worker = worker
        self.languages = languages
        self.language_threshold = language_threshold
        self.remember_ended = remember_ended
        self.max_live = max_live
        self._live: OrderedDict[str, _Call] = OrderedDict()
        self._ended: OrderedDict[str, _Call] = OrderedDict()
        self._handlers: dict[str, Callable[[Any, float], list[RowOp]]] = {
            "CallStarted": self._call_started,
            "Transcript": self._transcript,
            "DialogueReplied": self._replied,
            "BargeIn": self._barge_in,
            "TurnTimings": self._timings,
            "DtmfReceived": self._dtmf,
            "CallError": self._error,
            "TransferRequested": self._transfer,
            "QueueJoined": self._queue_joined,
            "QueueLeft": self._queue_left,
            "DisclosurePlayed": self._disclosure,
            "TicketFiled": self._ticket,
            "RatingGiven": self._rating,
            "CallEnded": self._call_ended,
        }

    def rows(self, event: CallEvent, wall: float) -> list[RowOp]:
        """The writes recording `event`, which happened at `wall` (time.time()). Unrecorded kinds give []."""
        handler = self._handlers.get(event.kind)
        return handler(event, wall) if handler is not None else []

    # --- per-call state ---------------------------------------------------------------------------------------

    def _call(self, event: CallEvent, wall: float) -> _Call:
        call = self._live.get(event.call_id) or self._ended.get(event.call_id)
        if call is None:  # first event seen for this call: it started `t` seconds ago
            call = self._live[event.call_id] = _Call(started=wall - float(event.t))
            while len(self._live) > self.max_live:
                self._live.popitem(last=False)
        return call

    def _calls_row(self, call_id: str, call: _Call) -> RowOp:
        transfer = call.transfer
        values: dict[str, Value] = {
            "call_id": call_id,
            "started": iso_ms(call.started),
            "language": call.language,
            "caller_hash": call.caller_hash,
            "worker": self.worker,
            "turns": len(call.turns),
            "barge_ins": call.barge_ins,
            "errors": call.errors,
            "csat": call.csat,
            "reason": transfer.reason if transfer else None,
            "rule": transfer.rule if transfer else None,
            "queue": transfer.queue if transfer else None,
            "ended": iso_ms(call.ended) if call.ended is not None else None,
            "duration_s": call.duration_s,
            "end_reason": call.end_reason,
            "outcome": call.outcome(),
        }
        return RowOp("calls", "upsert", values, key=("call_id",), keep=frozenset({"started", "caller_hash", "worker"}))

    def _clean(self, text: str | None, language: str | None) -> str | None:
        if not text:
            return text
        try:
            return self.redact(text, language)
        except Exception:
            log.exception("redaction failed: the text is not recorded")
            return REDACTION_FAILED

    def _language_of(self, call: _Call, heard: str | None) -> str | None:
        return heard if heard in self.languages else call.language

    # --- handlers ---------------------------------------------------------------------------------------------

    def _call_started(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.started = wall - float(event.t)
        call.language = getattr(event, "language", None) or call.language
        call.caller_hash = caller_hash(getattr(event, "caller", None), self.caller_salt)
        return [self._calls_row(event.call_id, call)]

    def _transcript(self, event: Any, wall: float) -> list[RowOp]:
        if getattr(event, "speculative", False):
            return []
        call = self._call(event, wall)
        language, probability = getattr(event, "language", None), getattr(event, "language_probability", None)
        accepted = bool(getattr(event, "accepted", True))
        if accepted and language in self.languages and (probability or 0.0) >= self.language_threshold:
            call.language = language
        if accepted:  # noise Whisper heard is kept as a row, not counted as a caller turn
            call.turns.add(int(event.turn))
        values: dict[str, Value] = {
            "call_id": event.call_id,
            "turn": int(event.turn),
            "at": iso_ms(wall),
            "t": float(event.t),
            "transcript": self._clean(getattr(event, "text", ""), self._language_of(call, language)),
            "language": language,
            "language_probability": probability,
            "accepted": int(accepted),
            "rejected_because": getattr(event, "rejected_because", None),
        }
        turn = RowOp("turns", "upsert", values, key=("call_id", "turn"))
        return [turn, self._calls_row(event.call_id, call)]

    def _turn_values(self, event: Any, wall: float, **values: Value) -> RowOp:
        """An upsert of some columns of a turn; `at`/`t` are filled only if the transcript did not set them."""
        row: dict[str, Value] = {"call_id": event.call_id, "turn": int(event.turn), "at": iso_ms(wall)}
        row["t"] = float(event.t)
        row.update(values)
        return RowOp("turns", "upsert", row, key=("call_id", "turn"), keep=frozenset({"at", "t"}))

    def _replied(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.turns.add(int(event.turn))  # the dialogue answered it (keys, or speech): a caller turn
        reply = " ".join(text for text in getattr(event, "texts", ()) if text)
        kb_id = getattr(event, "kb_id", None)
        return [
            self._turn_values(
                event,
                wall,
                intent=getattr(event, "intent", None),
                confidence=getattr(event, "confidence", None),
                reply=self._clean(reply, call.language),
                kb_id=str(kb_id) if kb_id is not None else None,
                kb_miss=int(bool(getattr(event, "kb_miss", False))),
            )
        ]

    def _barge_in(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.barge_ins += 1
        return [self._turn_values(event, wall, barge_in=1), self._calls_row(event.call_id, call)]

    def _timings(self, event: Any, wall: float) -> list[RowOp]:
        self._call(event, wall)
        names = ("endpointing_ms", "asr_ms", "asr_wait_ms", "dialogue_ms", "tts_first_audio_ms")
        timings: dict[str, Value] = {name: _number(getattr(event, name, None)) for name in names}
        timings["response_ms"] = _number(getattr(event, "end_of_speech_to_first_audio_ms", None))
        return [self._turn_values(event, wall, **timings)]

    def _dtmf(self, event: Any, wall: float) -> list[RowOp]:
        self._call(event, wall)
        values = _at(event, wall) | {"t": float(event.t), "digit": str(getattr(event, "digit", ""))}
        return [RowOp("dtmf", "insert", values)]

    def _error(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.errors += 1
        error = self._clean(str(getattr(event, "error", "")), call.language)
        values = _at(event, wall) | {"t": float(event.t), "stage": getattr(event, "stage", None), "error": error}
        return [RowOp("errors", "insert", values), self._calls_row(event.call_id, call)]

    def _transfer(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        language = getattr(event, "language", None)
        if language in self.languages:
            call.language = language
        transfer = _Transfer(
            queue=getattr(event, "queue", None),
            reason=getattr(event, "reason", None),
            rule=getattr(event, "rule", None),
            callback=bool(getattr(event, "callback", False)),
            fixed_number=getattr(event, "fixed_number", None),
        )
        call.transfer = transfer
        values = _at(event, wall) | {
            "t": float(event.t),
            "queue": transfer.queue,
            "reason": transfer.reason,
            "rule": transfer.rule,
            "priority": int(getattr(event, "priority", 0) or 0),
            "language": language,
            "summary": self._clean(getattr(event, "summary", ""), self._language_of(call, language)),
            "callback": int(transfer.callback),
            "fixed_number": transfer.fixed_number,
        }
        return [RowOp("transfers", "insert", values), self._calls_row(event.call_id, call)]

    def _queue_joined(self, event: Any, wall: float) -> list[RowOp]:
        self._call(event, wall)
        values = {"call_id": event.call_id, "queue": str(getattr(event, "queue", "")), "entered": iso_ms(wall)}
        return [RowOp("queue_waits", "insert", values)]

    def _queue_left(self, event: Any, wall: float) -> list[RowOp]:
        """Closes the open wait in that queue, or records the whole wait when its start was not recorded."""
        queue, outcome = str(getattr(event, "queue", "")), str(getattr(event, "outcome", ""))
        wait_s = float(getattr(event, "wait_s", 0.0) or 0.0)
        left: dict[str, Value] = {"left": iso_ms(wall), "wait_s": wait_s, "outcome": outcome}
        left["agent"] = getattr(event, "agent", None)
        whole = {"call_id": event.call_id, "queue": queue, "entered": iso_ms(wall - wait_s)} | left
        waits = [
            RowOp("queue_waits", "update", left, where={"call_id": event.call_id, "queue": queue, "left": None}),
            RowOp(
                "queue_waits",
                "insert_missing",
                whole,
                where={"call_id": event.call_id, "queue": queue, "left": left["left"]},
            ),
        ]
        call = self._live.get(event.call_id) or self._ended.get(event.call_id)
        if call is None:  # a call this process did not see (recorded before a restart): revise its outcome only
            revised = {"outcome": QUEUE_OUTCOMES.get(outcome, "error")}
            return [*waits, RowOp("calls", "update", revised, where={"call_id": event.call_id})]
        call.queue_outcome = outcome
        return [*waits, self._calls_row(event.call_id, call)]

    def _disclosure(self, event: Any, wall: float) -> list[RowOp]:
        self._call(event, wall)
        values = _at(event, wall) | {
            "kind": getattr(event, "notice", None),
            "prompt_version": getattr(event, "prompt_version", None),
            "heard_to_end": int(bool(getattr(event, "heard_to_end", False))),
        }
        return [RowOp("disclosures", "insert", values)]

    def _ticket(self, event: Any, wall: float) -> list[RowOp]:
        self._call(event, wall)
        category = getattr(event, "category", None)
        values = _at(event, wall) | {
            "ticket": str(getattr(event, "ticket", "")),
            "category": str(category) if category is not None else None,
        }
        return [RowOp("tickets", "insert", values)]

    def _rating(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.csat = int(getattr(event, "rating", 0))
        rating = RowOp("feedback", "insert", _at(event, wall) | {"rating": call.csat})
        return [rating, self._calls_row(event.call_id, call)]

    def _call_ended(self, event: Any, wall: float) -> list[RowOp]:
        call = self._call(event, wall)
        call.ended, call.duration_s = wall, float(event.t)
        call.end_reason = getattr(event, "outcome", None) or None
        self._live.pop(event.call_id, None)
        self._ended[event.call_id] = call
        while len(self._ended) > self.remember_ended:
            self._ended.popitem(last=False)
        return [self._calls_row(event.call_id, call)]


def _at(event: CallEvent, wall: float) -> dict[str, Value]:
    return {"call_id": event.call_id, "at": iso_ms(wall)}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
