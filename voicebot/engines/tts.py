"""Piper neural TTS (one chunk per sentence) and the sentence splitter shared with the eSpeak engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
from piper.config import PiperConfig, SynthesisConfig
from piper.voice import PiperVoice

from voicebot.audio import AudioChunk
from voicebot.ports import ConfigError, EngineError

# Sentence end: terminal punctuation, optional closing quotes (French « » puts a space before »), then space.
_SENTENCE_END = re.compile(r"[.!?…]+(?:[\s\u00a0\u202f]*[»\"”’)])*(?=\s|$)")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "m", "mme", "mlle", "etc", "e.g", "i.e"})


def _ends_with_abbreviation(piece: str) -> bool:
    words = piece.rstrip(".").split()
    return bool(words) and piece.endswith(".") and words[-1].lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split on . ! ? … (also with French spacing: « Bonjour ! »), keeping the punctuation."""
    sentences: list[str] = []
    pending = ""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = pending + text[start : match.end()]
        start = match.end()
        if _ends_with_abbreviation(piece.strip()):
            pending = piece
            continue
        pending = ""
        if piece.strip():
            sentences.append(piece.strip())
    tail = (pending + text[start:]).strip()
    if tail:
        sentences.append(tail)
    return sentences


def _load_config(model_path: Path) -> PiperConfig:
    config_path = Path(f"{model_path}.json")
    if not model_path.is_file():
        raise ConfigError(f"Piper voice model not found: {model_path} (check the path in voices.yaml)")
    if not config_path.is_file():
        raise ConfigError(f"Piper voice config not found: {config_path} (put it next to the .onnx)")
    try:
        return PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid Piper voice config {config_path}: {exc}") from exc


def _session(model_path: Path, threads: int) -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ConfigError(f"cannot load Piper voice {model_path}: {exc}") from exc


class PiperTTS:
    """A Piper voice; output at the voice's native rate (22050 Hz for joe)."""

    def __init__(self, model_path: Path, language: str, threads: int = 1, deterministic: bool = False) -> None:
        """`deterministic` turns off VITS's sampling noise: the same text always gives the same audio
        (for test callers; the bot's own voice keeps its natural variation)."""
        self.model_path = Path(model_path)
        self._syn_config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if deterministic else None
        config = _load_config(self.model_path)
        # PiperVoice.load() takes no session options; build the voice ourselves to cap the threads.
        self._voice = PiperVoice(config=config, session=_session(self.model_path, threads))
        self.language = language
        self.rate = config.sample_rate

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        if not text.strip():
            return
        try:
            for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
                yield AudioChunk(chunk.audio_int16_bytes, chunk.sample_rate)
        except Exception as exc:
            raise EngineError(f"Piper synthesis failed for {self.model_path.name}: {exc}") from exc
