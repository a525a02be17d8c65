"""Facts that happen during a call. Sinks (log, JSONL, records) receive them in order.

Every event carries the call id and `t`, seconds since the call started (session clock).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    t: float

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class CallStarted(CallEvent):
    caller: str | None = None
    language: str | None = None
    channel_rate: int = 16000


@dataclass(frozen=True)
class SpeechStarted(CallEvent):
    during_bot_speech: bool = False


@dataclass(frozen=True)
class SpeechPaused(CallEvent):
    """Silence began after speech: speculative transcription starts now."""


@dataclass(frozen=True)
class SpeechResumed(CallEvent):
    """Speech came back before the end of the turn: the speculative transcript is discarded."""


@dataclass(frozen=True)
class SpeechEnded(CallEvent):
    speech_s: float = 0.0
    forced: bool = False  # max utterance length reached


@dataclass(frozen=True)
class Transcript(CallEvent):
    turn: int = 0
    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    accepted: bool = True
    rejected_because: str | None = None
    speculative: bool = False


@dataclass(frozen=True)
class DialogueReplied(CallEvent):
    turn: int = 0
    texts: tuple[str, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    kb_id: str | None = None  # the knowledge-base entry the answer came from
    kb_miss: bool = False  # a question the knowledge base could not answer


@dataclass(frozen=True)
class BotSpeechStarted(CallEvent):
    turn: int = 0
    text: str = ""
    prompt: str | None = None  # name of a cached static prompt, if it was one


@dataclass(frozen=True)
class BotSpeechEnded(CallEvent):
    turn: int = 0
    interrupted: bool = False


@dataclass(frozen=True)
class BargeIn(CallEvent):
    turn: int = 0


@dataclass(frozen=True)
class DtmfReceived(CallEvent):
    digit: str = ""


@dataclass(frozen=True)
class TurnTimings(CallEvent):
    """Per-stage latencies of one caller turn, in milliseconds."""

    turn: int = 0
    endpointing_ms: float = 0.0
    asr_ms: float = 0.0
    asr_wait_ms: float = 0.0  # ASR time left after the end of turn was decided (speculation hides the rest)
    dialogue_ms: float = 0.0
    tts_first_audio_ms: float = 0.0
    end_of_speech_to_first_audio_ms: float = 0.0


@dataclass(frozen=True)
class CallError(CallEvent):
    stage: str = ""
    error: str = ""


@dataclass(frozen=True)
class TransferRequested(CallEvent):
    queue: str = "default"
    reason: str = ""
    language: str | None = None
    summary: str = ""
    slots: dict[str, Any] = field(default_factory=dict)
    rule: str | None = None
    priority: int = 0
    callback: bool = False
    fixed_number: str | None = None


@dataclass(frozen=True)
class QueueJoined(CallEvent):
    queue: str = ""


@dataclass(frozen=True)
class QueueLeft(CallEvent):
    queue: str = ""
    outcome: str = ""  # connected, abandoned, callback, failed
    agent: str | None = None
    wait_s: float = 0.0


@dataclass(frozen=True)
class DisclosurePlayed(CallEvent):
    notice: str = "ai"  # ai (the caller talks to a machine), recording (the call is recorded)
    prompt_version: str = ""
    heard_to_end: bool = False


@dataclass(frozen=True)
class TicketFiled(CallEvent):
    ticket: str = ""
    category: str | None = None


@dataclass(frozen=True)
class RatingGiven(CallEvent):
    rating: int = 0


@dataclass(frozen=True)
class CallerSilent(CallEvent):
    reprompt: int = 0


@dataclass(frozen=True)
class HangupRequested(CallEvent):
    reason: str = ""


@dataclass(frozen=True)
class CallEnded(CallEvent):
    outcome: str = ""  # hangup-by-bot, hangup-by-caller, transferred, ended
