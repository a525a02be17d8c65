"""Builds a call's events (call id, call-relative time) and hands them to the sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voicebot import events as ev
from voicebot.ports import EventSink, Handoff, Transcription


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

    def transfer(self, handoff: Handoff) -> None:
        self(
            ev.TransferRequested,
            queue=handoff.queue,
            reason=handoff.reason,
            language=handoff.language,
            summary=handoff.summary,
            slots=dict(handoff.slots),
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
