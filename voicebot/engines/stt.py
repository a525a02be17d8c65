"""Whisper speech-to-text (faster-whisper / CTranslate2) with hallucination guards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faster_whisper import WhisperModel

from voicebot.audio import PIPELINE_RATE, AudioChunk
from voicebot.engines.whisper_window import ShortWindowEncoder, repeats_itself
from voicebot.models import default_models_dir, resolve_whisper_model
from voicebot.ports import ConfigError, EngineError, Transcription

MIN_AUDIO_S = 0.1
MAX_NEW_TOKENS = 220  # Whisper's decoder holds 448 positions, half of them for the prompt
HARD_LOGPROB_FLOOR = -1.5  # below this the text is a guess whatever no_speech_prob says


@dataclass(frozen=True)
class Guards:
    no_speech_threshold: float
    logprob_threshold: float
    compression_ratio_threshold: float
    logprob_floor: float = HARD_LOGPROB_FLOOR

    def rejection(self, segment: Any) -> str | None:
        """Why a faster-whisper segment must be dropped (quoting the dropped text), or None to keep it."""
        reason = self._reason(segment)
        text = segment.text.strip()
        if reason is None or not text or reason == "empty":
            return reason
        return f"{reason}: {text[:60]!r}"

    def _reason(self, segment: Any) -> str | None:
        if segment.no_speech_prob > self.no_speech_threshold and segment.avg_logprob < self.logprob_threshold:
            return f"no speech (p={segment.no_speech_prob:.2f}, logprob={segment.avg_logprob:.2f})"
        if segment.compression_ratio > self.compression_ratio_threshold:
            return f"repetitive (compression ratio {segment.compression_ratio:.2f})"
        if segment.avg_logprob < self.logprob_floor:
            return f"low confidence (logprob {segment.avg_logprob:.2f})"
        if not segment.text.strip():
            return "empty"
        return None


def _load_model(model: str, models_dir: Path, device: str, compute_type: str, threads: int) -> WhisperModel:
    resolved = resolve_whisper_model(model, models_dir)
    try:
        return WhisperModel(resolved, device=device, compute_type=compute_type, cpu_threads=threads)
    except Exception as exc:  # faster-whisper/ctranslate2/huggingface raise many unrelated types
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"cannot load Whisper model {model!r} ({first_line}): use tiny.en, base, a model directory "
            "or a faster-whisper model name that can be downloaded"
        ) from exc


def _token_budget(duration_s: float) -> int:
    """Generous for real speech (people say < 5 tokens/s), short enough that a decoder loop stays cheap."""
    return min(MAX_NEW_TOKENS, 16 + int(8 * duration_s))


def _looped(result: Transcription) -> bool:
    reason = result.rejected_because or ""
    return reason.startswith("repetitive") or repeats_itself(result.text)


class WhisperSTT:
    """Implements SpeechToText. Greedy, temperature 0, one utterance at a time (no cross-turn context)."""

    def __init__(
        self,
        model: str = "tiny.en",
        models_dir: Path | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 1,
        beam_size: int = 1,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        compression_ratio_threshold: float = 2.4,
        language_threshold: float = 0.5,
        encoder_window_s: float | None = 10.0,
    ) -> None:
        self.model_name = model
        models_dir = models_dir or default_models_dir()
        self._model = _load_model(model, models_dir, device, compute_type, cpu_threads)
        self.multilingual = bool(self._model.model.is_multilingual)
        self._window = ShortWindowEncoder(self._model, encoder_window_s) if encoder_window_s else None
        self.beam_size = beam_size
        self.language_threshold = language_threshold
        self.guards = Guards(no_speech_threshold, logprob_threshold, compression_ratio_threshold)

    def transcribe(self, audio: AudioChunk, language: str | None = None) -> Transcription:
        if audio.rate != PIPELINE_RATE or audio.channels != 1 or audio.width != 2:
            raise ValueError(f"Whisper expects mono 16-bit {PIPELINE_RATE} Hz audio, got {audio.format}")
        language = self._check_language(language)
        if audio.duration_s < MIN_AUDIO_S:
            return Transcription("", language or self._fixed_language(), rejected_because="too short")
        samples = audio.to_float()
        result = self._decode(samples, language)
        if self._window is not None and _looped(result):
            with self._window.full_window():
                result = self._decode(samples, language)
        return result

    def _decode(self, samples: Any, language: str | None) -> Transcription:
        try:
            options = self._options(language, max_new_tokens=_token_budget(len(samples) / PIPELINE_RATE))
            segments, info = self._model.transcribe(samples, **options)
            segments = list(segments)  # decoding happens while iterating
        except Exception as exc:
            raise EngineError(f"Whisper transcription failed: {exc}") from exc
        if self.multilingual:
            detected, probability = info.language, float(info.language_probability)
        else:
            detected, probability = "en", 1.0
        return self._aggregate(segments, detected, probability)

    def _fixed_language(self) -> str | None:
        return None if self.multilingual else "en"

    def _check_language(self, language: str | None) -> str | None:
        if language is None or not self.multilingual:
            return None  # English-only models always decode English
        code = language.lower().split("-")[0].split("_")[0]
        if code not in self._model.supported_languages:
            raise ConfigError(f"Whisper does not know language {language!r} (use an ISO 639-1 code: 'fr')")
        return code

    def _options(self, language: str | None, max_new_tokens: int) -> dict[str, Any]:
        # Guards are applied here, not in faster-whisper, so rejected segments come back with a reason.
        return {
            "language": language,
            "beam_size": self.beam_size,
            "max_new_tokens": max_new_tokens,
            "temperature": 0.0,
            "condition_on_previous_text": False,
            "vad_filter": False,
            "without_timestamps": True,
            "no_speech_threshold": None,
            "log_prob_threshold": None,
            "compression_ratio_threshold": None,
            "language_detection_threshold": self.language_threshold,
        }

    def _aggregate(self, segments: Sequence[Any], language: str, probability: float) -> Transcription:
        if not segments:
            return Transcription("", language, probability, rejected_because="empty")
        verdicts = [(segment, self.guards.rejection(segment)) for segment in segments]
        kept = [segment for segment, reason in verdicts if reason is None]
        measured = kept or list(segments)
        reason = None if kept else "; ".join(dict.fromkeys(r for _, r in verdicts if r))
        return Transcription(
            text=" ".join(segment.text.strip() for segment in kept),
            language=language,
            language_probability=probability,
            no_speech_prob=max(s.no_speech_prob for s in measured),
            avg_logprob=min(s.avg_logprob for s in measured),
            compression_ratio=max(s.compression_ratio for s in measured),
            rejected_because=reason,
        )
