"""Static prompts (disclosure, greeting, apology, hold...) synthesized once and cached.

The cache is in memory for the process and on disk (keyed by voice, text and rate) across runs, so a
call never waits for TTS to say them — and the apology still plays when the TTS engine is broken.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from voicebot.audio import AudioChunk, AudioFileError, concat, read_wav, write_wav
from voicebot.ports import ConfigError, VoiceCatalogue
from voicebot.yamlfile import read_mapping

log = logging.getLogger(__name__)

REQUIRED_PROMPTS = ("disclosure", "greeting", "apology", "not_understood", "hold", "goodbye")


@dataclass(frozen=True)
class PromptTexts:
    version: int
    texts: dict[str, dict[str, str]]  # language -> prompt name -> text

    @classmethod
    def load(cls, path: Path) -> PromptTexts:
        raw = read_mapping(path, "prompts file")
        version = int(raw.pop("version", 1))
        for language, prompts in raw.items():
            missing = [name for name in REQUIRED_PROMPTS if name not in (prompts or {})]
            if missing:
                raise ConfigError(f"prompts file {path}: language {language!r} lacks {', '.join(missing)}")
        return cls(version, {str(lang): dict(prompts) for lang, prompts in raw.items()})

    def text(self, name: str, language: str) -> str:
        return self.texts.get(language, self.texts.get("en", {})).get(name, "")


class PromptCache:
    def __init__(self, texts: PromptTexts, voices: VoiceCatalogue, rate: int, disk_dir: Path | None) -> None:
        self.texts = texts
        self.voices = voices
        self.rate = rate
        self.disk_dir = disk_dir
        self._memory: dict[tuple[str, str], AudioChunk] = {}

    @property
    def version(self) -> int:
        return self.texts.version

    def languages(self) -> list[str]:
        return list(self.texts.texts)

    def warm(self, languages: list[str] | None = None) -> None:
        for language in languages or self.languages():
            for name in self.texts.texts.get(language, {}):
                self.get(name, language)

    def get(self, name: str, language: str) -> AudioChunk:
        language = language if language in self.texts.texts else "en"
        key = (name, language)
        if key not in self._memory:
            self._memory[key] = self._load_or_synthesize(name, language)
        return self._memory[key]

    def text(self, name: str, language: str) -> str:
        return self.texts.text(name, language)

    def _load_or_synthesize(self, name: str, language: str) -> AudioChunk:
        text = self.texts.text(name, language)
        if not text:
            raise ConfigError(f"no prompt {name!r} for language {language!r}")
        voice = self.voices.voice_for(language)
        voice_id = getattr(voice, "voice_id", f"{type(voice).__name__}:{language}")
        digest = hashlib.sha256(f"{voice_id}|{self.rate}|{text}".encode()).hexdigest()[:16]
        path = self.disk_dir / f"{name}-{language}-{digest}.wav" if self.disk_dir else None
        if path and path.exists():
            try:
                return read_wav(path)
            except AudioFileError:
                log.warning("prompt cache file %s is unreadable: synthesizing again", path)
        chunks = [chunk.to_mono().resample(self.rate) for chunk in voice.synthesize(text)]
        audio = concat(chunks, chunks[0].format) if chunks else AudioChunk.silence(0.2, self.rate)
        if path:
            write_wav(path, audio)
        return audio
