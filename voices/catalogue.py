"""Voice catalogue: which TTS engine speaks which language (voices.yaml), with an eSpeak NG fallback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot.engines.espeak import EspeakTTS
from voicebot.engines.tts import PiperTTS
from voicebot.models import joe_voice_path
from voicebot.ports import ConfigError, TextToSpeech
from voicebot.yamlfile import read_mapping

DEFAULT_VOICES_FILE = Path(__file__).with_name("voices.yaml")
BUILTIN_PIPER_VOICES: dict[str, Callable[[], Path]] = {"joe": joe_voice_path}
ENGINE_KEYS = {"piper": {"engine", "model", "threads"}, "espeak": {"engine", "rate_wpm"}}

log = logging.getLogger("voicebot.voices")


@dataclass(frozen=True)
class VoiceSpec:
    language: str
    engine: str
    model: Path | None = None
    threads: int = 1
    rate_wpm: int = 165

    def build(self) -> TextToSpeech:
        if self.engine == "espeak":
            return EspeakTTS(self.language, rate_wpm=self.rate_wpm)
        assert self.model is not None
        return PiperTTS(self.model, self.language, threads=self.threads)


def normalize_language(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def _resolve_model(value: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: 'model' must be builtin:<name> or a path to a Piper .onnx file")
    if value.startswith("builtin:"):
        name = value.removeprefix("builtin:")
        if name not in BUILTIN_PIPER_VOICES:
            available = ", ".join(sorted(BUILTIN_PIPER_VOICES))
            raise ConfigError(f"{where}: unknown builtin voice {name!r} (available: {available})")
        return BUILTIN_PIPER_VOICES[name]()
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    for needed in (path, Path(f"{path}.json")):
        if not needed.is_file():
            raise ConfigError(f"{where}: Piper voice file not found: {needed}")
    return path


def _positive_int(spec: dict[str, Any], key: str, default: int, where: str) -> int:
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return value


def parse_spec(language: str, spec: Any, source: str, base_dir: Path) -> VoiceSpec:
    where = f"{source} [{language}]"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{engine: piper, model: builtin:joe}}")
    engine = spec.get("engine")
    if engine not in ENGINE_KEYS:
        raise ConfigError(f"{where}: 'engine' must be one of {sorted(ENGINE_KEYS)}, got {engine!r}")
    unknown = set(spec) - ENGINE_KEYS[engine]
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} for engine {engine}")
    language = normalize_language(language)
    if engine == "espeak":
        return VoiceSpec(language, engine, rate_wpm=_positive_int(spec, "rate_wpm", 165, where))
    model = _resolve_model(spec.get("model"), where, base_dir)
    return VoiceSpec(language, engine, model, threads=_positive_int(spec, "threads", 1, where))


def _piper_file_language(path: Path) -> str:
    try:
        config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
        return normalize_language(config.get("language", {}).get("family") or config["espeak"]["voice"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read the language of Piper voice {path}: {exc}") from exc


class Catalogue:
    """Implements VoiceCatalogue. `config` maps language -> voice spec; None loads voices/voices.yaml."""

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        source: str = "voices config",
        base_dir: Path | None = None,
    ) -> None:
        if config is None:
            config, source = _read_yaml(DEFAULT_VOICES_FILE), str(DEFAULT_VOICES_FILE)
            base_dir = DEFAULT_VOICES_FILE.parent
        if not isinstance(config, dict):
            raise ConfigError(f"{source}: expected a mapping of language -> voice")
        base = base_dir or Path.cwd()
        self.specs = {
            normalize_language(str(key)): parse_spec(str(key), spec, source, base) for key, spec in config.items()
        }
        self._voices: dict[str, TextToSpeech] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> Catalogue:
        path = Path(path)
        return cls(_read_yaml(path), source=str(path), base_dir=path.parent)

    def voice_for(self, language: str) -> TextToSpeech:
        wanted = normalize_language(language)
        for key in (wanted, wanted.split("-")[0]):
            if key in self.specs:
                return self._cached(f"spec:{key}", self.specs[key].build)
        self._warn_fallback(wanted)
        return self._cached(f"espeak:{wanted}", lambda: EspeakTTS(wanted))

    def voice_by_name(self, name: str) -> TextToSpeech:
        """A voice by name: joe, espeak:<lang> or a path to a Piper .onnx (tests and tools)."""
        if name in BUILTIN_PIPER_VOICES:
            return self._cached(name, lambda: PiperTTS(BUILTIN_PIPER_VOICES[name](), "en", deterministic=True))
        if name.startswith("espeak:"):
            return self._cached(name, lambda: EspeakTTS(name.removeprefix("espeak:")))
        if name.endswith(".onnx"):
            path = _resolve_model(name, f"voice {name!r}", Path.cwd())
            return self._cached(name, lambda: PiperTTS(path, _piper_file_language(path)))
        raise ConfigError(f"unknown voice {name!r}: use 'joe', 'espeak:<language>' or a Piper .onnx path")

    def _cached(self, key: str, build: Callable[[], TextToSpeech]) -> TextToSpeech:
        with self._lock:
            if key not in self._voices:
                self._voices[key] = build()
            return self._voices[key]

    def _warn_fallback(self, language: str) -> None:
        with self._lock:
            if language in self._warned:
                return
            self._warned.add(language)
        log.warning(
            "no Piper voice is installed for language %r: using the robotic eSpeak NG fallback. "
            "Add one in voices.yaml, e.g. %s: {engine: piper, model: /path/to/<voice>.onnx}",
            language,
            language,
        )


def _read_yaml(path: Path) -> Any:
    return read_mapping(path, "voices file")
