"""Clock-free endpointing: turns a stream of per-frame speech/non-speech decisions into turn events.

Counts frames only, so it is tested with lists of booleans and driven by any VAD at any frame size.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Segment(enum.Enum):
    STARTED = "started"  # enough consecutive speech frames
    PAUSED = "paused"  # silence long enough to start a speculative transcription
    RESUMED = "resumed"  # speech came back after PAUSED: discard the speculation
    ENDED = "ended"  # silence reached the end-of-turn window
    FORCED_END = "forced_end"  # utterance reached its maximum length
    DISCARDED = "discarded"  # too little speech to be a turn (a cough, a click)


@dataclass(frozen=True)
class EndpointConfig:
    start_frames: int = 3
    speculate_after_frames: int = 5
    end_silence_frames: int = 20
    min_speech_frames: int = 10
    max_utterance_frames: int = 1000

    @classmethod
    def from_ms(
        cls,
        frame_ms: int,
        *,
        start_ms: int = 60,
        speculate_after_ms: int = 60,
        end_silence_ms: int = 360,
        min_speech_ms: int = 200,
        max_utterance_ms: int = 20000,
    ) -> EndpointConfig:
        def frames(ms: int) -> int:
            return max(1, round(ms / frame_ms))

        return cls(
            start_frames=frames(start_ms),
            speculate_after_frames=min(frames(speculate_after_ms), frames(end_silence_ms)),
            end_silence_frames=frames(end_silence_ms),
            min_speech_frames=frames(min_speech_ms),
            max_utterance_frames=frames(max_utterance_ms),
        )


class _State(enum.Enum):
    IDLE = 0
    SPEECH = 1
    TRAILING = 2


class Endpointer:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._state = _State.IDLE
        self._run = 0  # consecutive speech frames while idle
        self._speech_frames = 0
        self._utterance_frames = 0
        self._silence = 0
        self._paused = False

    @property
    def in_utterance(self) -> bool:
        return self._state is not _State.IDLE

    @property
    def utterance_frames(self) -> int:
        """Frames since the start of the current utterance, including the frames that triggered it."""
        return self._utterance_frames

    @property
    def speech_frames(self) -> int:
        return self._speech_frames

    def push(self, is_speech: bool) -> Segment | None:
        if self._state is _State.IDLE:
            return self._idle(is_speech)
        self._utterance_frames += 1
        event = self._speech(is_speech) if self._state is _State.SPEECH else self._trailing(is_speech)
        if event is None and self._utterance_frames >= self.config.max_utterance_frames:
            self.reset()
            return Segment.FORCED_END
        return event

    def _idle(self, is_speech: bool) -> Segment | None:
        self._run = self._run + 1 if is_speech else 0
        if self._run < self.config.start_frames:
            return None
        self._state = _State.SPEECH
        self._speech_frames = self._utterance_frames = self._run
        self._run = 0
        return Segment.STARTED

    def _speech(self, is_speech: bool) -> Segment | None:
        if is_speech:
            self._speech_frames += 1
            return None
        self._state = _State.TRAILING
        self._silence = 0
        return self._trailing(False)

    def _trailing(self, is_speech: bool) -> Segment | None:
        if is_speech:
            self._state = _State.SPEECH
            self._speech_frames += 1
            resumed, self._paused = self._paused, False
            return Segment.RESUMED if resumed else None
        self._silence += 1
        long_enough = self._speech_frames >= self.config.min_speech_frames
        if self._silence >= self.config.end_silence_frames:
            self.reset()
            return Segment.ENDED if long_enough else Segment.DISCARDED
        if long_enough and not self._paused and self._silence >= self.config.speculate_after_frames:
            self._paused = True
            return Segment.PAUSED
        return None
