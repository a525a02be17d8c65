"""Caller audio → turn boundaries: resampling to the pipeline rate, VAD per frame, endpointing."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voicebot.audio import PIPELINE_RATE, AudioChunk, StreamResampler
from voicebot.ports import VoiceActivityDetector
from voicebot.segmenter import EndpointConfig, Endpointer, Segment

PREROLL_MS = 200  # audio kept from before the detected start of speech


@dataclass(frozen=True)
class Boundary:
    segment: Segment
    audio: AudioChunk | None = None  # the utterance so far, for PAUSED and the end segments
    endpointing_ms: float = 0.0  # silence waited before deciding the end of the turn


class Listener:
    def __init__(
        self,
        vad: VoiceActivityDetector,
        endpoint: EndpointConfig,
        channel_rate: int,
        on_boundary: Callable[[Boundary], None],
    ) -> None:
        self.vad = vad
        self.frame_ms = vad.frame_ms
        self._frame_bytes = vad.rate * vad.frame_ms // 1000 * 2
        self._resampler = StreamResampler(channel_rate, PIPELINE_RATE)
        self._endpointer = Endpointer(endpoint)
        self._preroll: deque[bytes] = deque(maxlen=endpoint.start_frames + PREROLL_MS // vad.frame_ms)
        self._utterance: list[bytes] = []
        self._pending = bytearray()
        self._silent_frames = 0
        self._on_boundary = on_boundary

    @property
    def in_utterance(self) -> bool:
        return self._endpointer.in_utterance

    def feed(self, chunk: AudioChunk) -> None:
        """Raises whatever the VAD raises; the caller decides what a broken VAD means for the call."""
        pcm = self._resampler.process(chunk.to_mono())
        self._pending += pcm.audio
        size = self._frame_bytes
        whole = len(self._pending) - len(self._pending) % size
        frames = [bytes(self._pending[start : start + size]) for start in range(0, whole, size)]
        del self._pending[:whole]
        for frame in frames:
            self._on_frame(frame)

    def _on_frame(self, frame: bytes) -> None:
        speech = self.vad.is_speech(frame)
        if self._endpointer.in_utterance:
            self._utterance.append(frame)
        else:
            self._preroll.append(frame)
        self._silent_frames = 0 if speech else self._silent_frames + 1
        segment = self._endpointer.push(speech)
        if segment is None:
            return
        if segment is Segment.STARTED:
            self._utterance = list(self._preroll)
            self._preroll.clear()
            self._on_boundary(Boundary(segment))
        elif segment is Segment.RESUMED:
            self._on_boundary(Boundary(segment))
        elif segment is Segment.PAUSED:
            self._on_boundary(Boundary(segment, self._audio()))
        else:
            audio, self._utterance = self._audio(), []
            waited = 0.0 if segment is Segment.FORCED_END else float(self._silent_frames * self.frame_ms)
            self._on_boundary(Boundary(segment, audio, waited))

    def _audio(self) -> AudioChunk:
        return AudioChunk(b"".join(self._utterance), PIPELINE_RATE)
