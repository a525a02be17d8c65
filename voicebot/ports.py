"""Ports between the call pipeline and its engines, dialogue backend and event sinks.

Engines are synchronous and small; the asyncio CallSession offloads them to threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from voicebot.audio import AudioChunk
from voicebot.events import CallEvent


class EngineError(RuntimeError):
    """An engine failed while processing (inside a call this becomes a CallError + transfer)."""


class ConfigError(ValueError):
    """A user-facing configuration problem: unknown model, voice or file. Message names the fix."""


# --- VAD -----------------------------------------------------------------------------------------


class VoiceActivityDetector(Protocol):
    """Classifies fixed-size frames of 16-bit mono PCM at `rate`."""

    rate: int
    frame_ms: int

    def is_speech(self, frame: bytes) -> bool: ...

    def reset(self) -> None: ...


# --- STT -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str | None = None
    language_probability: float | None = None
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    rejected_because: str | None = None  # set when a hallucination guard dropped the text

    @property
    def accepted(self) -> bool:
        return self.rejected_because is None and bool(self.text.strip())


class SpeechToText(Protocol):
    multilingual: bool

    def transcribe(self, audio: AudioChunk, language: str | None = None) -> Transcription:
        """`audio` is mono 16 kHz; `language` forces decoding in that language when given."""
        ...


# --- TTS -----------------------------------------------------------------------------------------


class TextToSpeech(Protocol):
    language: str
    rate: int

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        """Yields one chunk per sentence, as soon as each is ready."""
        ...


class VoiceCatalogue(Protocol):
    def voice_for(self, language: str) -> TextToSpeech: ...


# --- Dialogue ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialogueContext:
    call_id: str
    language: str | None = None
    language_probability: float | None = None
    caller: str | None = None


@dataclass(frozen=True)
class Handoff:
    queue: str = "default"
    reason: str = ""
    language: str | None = None
    summary: str = ""
    slots: dict[str, Any] = field(default_factory=dict)
    # Set by the supervisors' transfer rules (dialogue/transfer_rules.py):
    rule: str | None = None
    rule_version: int | None = None
    priority: int = 0
    announcement: str = ""  # spoken to the caller instead of the dialogue's own words
    callback: bool = False  # offer to call the caller back instead of queueing
    fixed_number: str | None = None  # a fixed destination (an emergency line), not an agent queue

    def with_default_language(self, language: str) -> Handoff:
        return self if self.language else replace(self, language=language)


@dataclass(frozen=True)
class DialogueReply:
    texts: tuple[str, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    handoff: Handoff | None = None
    hangup: bool = False
    kb_id: str | None = None
    kb_miss: bool = False


@dataclass(frozen=True)
class TurnNote:
    """What one caller turn looked like, for the transfer rules."""

    turn: int
    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    intent: str | None = None
    confidence: float | None = None
    dtmf: str | None = None
    handoff_reason: str | None = None


class TransferRouter(Protocol):
    """Decides after each turn whether (and where) the caller goes to a human. Blocking (reads a database):
    the session calls it in a thread. Returns the handoff to carry out, or None to go on with the dialogue."""

    def route(
        self, call_id: str, caller: str | None, turns: tuple[TurnNote, ...], handoff: Handoff | None
    ) -> Handoff | None: ...


class DialogueError(RuntimeError):
    """The dialogue backend is unreachable or answered something unusable."""


class DialogueBackend(Protocol):
    async def send(self, text: str, context: DialogueContext) -> DialogueReply: ...


# --- Events --------------------------------------------------------------------------------------


class EventSink(Protocol):
    def emit(self, event: CallEvent) -> None: ...


# --- Call control (telephony channel side) -------------------------------------------------------


class CallControl(Protocol):
    """What a session may ask of the channel carrying the call."""

    def transfer(self, handoff: Handoff) -> None: ...

    def hangup(self, reason: str) -> None: ...
