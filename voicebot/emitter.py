"""Builds a call's events (call id, call-relative time) and hands them to the sink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicebot import events as ev
from voicebot.ports import DialogueReply, EventSink, Handoff, Transcription

# Welcome prompts whose playing is proof the caller was told something: prompt name -> DisclosurePlayed.notice
DISCLOSURE_PROMPTS = {"disclosure": "ai", "recording_notice": "recording"}


@dataclass
class TurnClock:
    """Stage timings of one caller turn, filled as the turn progresses (clock seconds, ms durations)."""

    turn: int
    endpointing_ms: float
    decided_at: float
    asr_ms: float = 0.0
    asr_wait_ms: float = 0.0
    dialogue_ms: float = 0.0


class Emitter:
    def __init__(self, call_id: str, sink: EventSink, clock: Callable[[], float]) -> None:
        self.call_id = call_id
        self.sink = sink
        self.clock = clock
        self.t0 = clock()
        self._seen_slots: dict[str, Any] = {}
        self.notices_heard: dict[str, bool] = {}  # notice -> heard to the end (absent: still playing or never)
        self._pending_notices: dict[str, str] = {}  # notice -> prompt version, while it plays

    def __call__(self, kind: type[ev.CallEvent], **fields: object) -> None:
        event = kind(call_id=self.call_id, t=round(self.clock() - self.t0, 4), **fields)
        self.sink.emit(event)

    def transcript(self, turn: int, t: Transcription) -> None:
        self(
            ev.Transcript,
            turn=turn,
            text=t.text,
            language=t.language,
            language_probability=t.language_probability,
            accepted=t.accepted,
            rejected_because=t.rejected_because,
        )

    def replied(self, turn: int, reply: DialogueReply) -> None:
        self(
            ev.DialogueReplied,
            turn=turn,
            texts=reply.texts,
            intent=reply.intent,
            confidence=reply.confidence,
            slots=dict(reply.slots),
            kb_id=reply.kb_id,
            kb_miss=reply.kb_miss,
        )
        self._slot_facts(reply.slots)

    def _slot_facts(self, slots: dict[str, Any]) -> None:
        """A ticket number or a rating appearing in the dialogue's slots is filed/given on this turn."""
        ticket, rating = slots.get("ticket_number"), slots.get("rating")
        if ticket and ticket != self._seen_slots.get("ticket_number"):
            self(ev.TicketFiled, ticket=str(ticket), category=slots.get("request_category"))
        if isinstance(rating, (int, float)) and 1 <= rating <= 5 and rating != self._seen_slots.get("rating"):
            self(ev.RatingGiven, rating=int(rating))
        self._seen_slots = {"ticket_number": ticket, "rating": rating}

    def disclosure_heard(self, notice: str, prompt_version: str) -> Callable[[asyncio.Future[bool]], None]:
        """A done-callback for a notice prompt's future: logs whether the caller heard it to the end."""
        self._pending_notices[notice] = prompt_version

        def done(heard: asyncio.Future[bool]) -> None:
            if self._pending_notices.pop(notice, None) is None:
                return  # already logged as cut off when the call ended
            complete = not heard.cancelled() and heard.exception() is None and bool(heard.result())
            self._notice(notice, prompt_version, complete)

        return done

    def notices_cut(self) -> None:
        """The call is ending: a notice still playing was not heard to the end (logged before CallEnded)."""
        for notice, prompt_version in list(self._pending_notices.items()):
            del self._pending_notices[notice]
            self._notice(notice, prompt_version, False)

    def _notice(self, notice: str, prompt_version: str, complete: bool) -> None:
        self.notices_heard[notice] = complete
        self(ev.DisclosurePlayed, notice=notice, prompt_version=prompt_version, heard_to_end=complete)

    def transfer(self, handoff: Handoff) -> None:
        self(
            ev.TransferRequested,
            queue=handoff.queue,
            reason=handoff.reason,
            language=handoff.language,
            summary=handoff.summary,
            slots=dict(handoff.slots),
            rule=handoff.rule,
            priority=handoff.priority,
            callback=handoff.callback,
            fixed_number=handoff.fixed_number,
        )

    def timings(self, turn: TurnClock, tts_started: float, first_audio: float | None) -> None:
        reference = first_audio if first_audio is not None else self.clock()
        self(
            ev.TurnTimings,
            turn=turn.turn,
            endpointing_ms=turn.endpointing_ms,
            asr_ms=round(turn.asr_ms, 1),
            asr_wait_ms=round(turn.asr_wait_ms, 1),
            dialogue_ms=round(turn.dialogue_ms, 1),
            tts_first_audio_ms=round((reference - tts_started) * 1000, 1),
            end_of_speech_to_first_audio_ms=round(turn.endpointing_ms + (reference - turn.decided_at) * 1000, 1),
        )
