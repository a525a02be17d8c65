"""Settings with embedded defaults; an optional YAML file (VOICEBOT_CONFIG or --config) overrides them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.console.settings import ConsoleSettings
from voicebot.logs import LoggingSettings
from voicebot.ports import ConfigError
from voicebot.privacy_settings import RecordingSettings, RetentionSettings
from voicebot.sip_settings import SipSettings
from voicebot.yamlfile import read_mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SpeechSettings:
    stt_model: str = "tiny.en"
    stt_threads: int = 2
    beam_size: int = 1
    encoder_window_s: float = 10.0  # 0 = Whisper's full 30 s window (3x slower; see bench/asr_window.py)
    vad: str = "webrtc"  # webrtc (cheap gate) or silero (better turn-taking)
    webrtc_mode: int = 2
    silero_threshold: float = 0.5
    start_ms: int = 60
    speculate_after_ms: int = 60  # start transcribing this far into a silence (dropped if speech resumes)
    end_silence_ms: int = 360  # end of turn; bench/pipeline.py measured this against 400 ms
    min_speech_ms: int = 200
    max_utterance_ms: int = 20000
    language_threshold: float = 0.6  # below this the detected language is not trusted
    language_lock_threshold: float = 0.8  # a detection this sure fixes the call's language (above 1: never)


@dataclass(frozen=True)
class DialogueSettings:
    rasa_url: str = "http://127.0.0.1:5005"
    auth_token: str = "voicebot-local"
    timeout_s: float = 6.0
    project_dir: Path = REPO_ROOT / "dialogue" / "rasa"
    venv_dir: Path = REPO_ROOT / ".venv-rasa"


@dataclass(frozen=True)
class CallSettings:
    default_language: str = "en"
    languages: tuple[str, ...] = ("en", "fr")
    default_queue: str = "general"
    max_unheard_turns: int = 2  # rejected transcripts in a row before the bot says it did not understand
    silence_reprompt_s: float = 10.0  # a silent caller is asked "are you still there?" after this long
    silence_reprompts: int = 2  # ... this many times, then the bot says goodbye and hangs up (0 = never)


@dataclass(frozen=True)
class Settings:
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    dialogue: DialogueSettings = field(default_factory=DialogueSettings)
    call: CallSettings = field(default_factory=CallSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    models_dir: Path = REPO_ROOT / ".cache" / "models"
    prompts_file: Path = REPO_ROOT / "data" / "prompts.yaml"
    voices_file: Path = REPO_ROOT / "voices" / "voices.yaml"
    agents_file: Path = REPO_ROOT / "data" / "agents.yaml"  # agents and queues seeded into the agent queue
    cache_dir: Path = REPO_ROOT / ".cache"

    def replace(self, section: str | None = None, **changes: Any) -> Settings:
        if section is None:
            return dataclasses.replace(self, **changes)
        updated = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: updated})


def load_settings(path: str | Path | None = None) -> Settings:
    settings = _with_env(Settings())
    source = path or os.environ.get("VOICEBOT_CONFIG")
    if not source:
        return settings
    p = Path(source)
    return _apply(settings, read_mapping(p, "config file"), p)


def _with_env(settings: Settings) -> Settings:
    if url := os.environ.get("VOICEBOT_RASA_URL"):
        settings = settings.replace("dialogue", rasa_url=url)
    if token := os.environ.get("VOICEBOT_RASA_TOKEN"):
        settings = settings.replace("dialogue", auth_token=token)
    if venv := os.environ.get("VOICEBOT_RASA_VENV"):
        settings = settings.replace("dialogue", venv_dir=Path(venv))
    if models := os.environ.get("VOICEBOT_MODELS_DIR"):
        settings = settings.replace(models_dir=Path(models))
    return settings


def _apply(settings: Settings, raw: dict[str, Any], source: Path) -> Settings:
    for key, value in raw.items():
        current = getattr(settings, key, None)
        if current is None:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: section {key!r} must be a mapping")
            settings = settings.replace(key, **_typed(current, value, f"{source}: {key}"))
        else:
            changes: dict[str, Any] = {key: Path(value)}
            settings = dataclasses.replace(settings, **changes)
    return settings


def _typed(section: Any, values: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(section)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{where}.{name}: unknown setting (known: {', '.join(sorted(known))})")
        current = getattr(section, name)
        if isinstance(current, Path) or (current is None and "Path" in str(known[name].type)):
            value = Path(value)
        elif isinstance(current, tuple):
            value = tuple(value)
        elif not isinstance(value, type(current)) and not (isinstance(current, float) and isinstance(value, int)):
            raise ConfigError(f"{where}.{name}: expected {type(current).__name__}, got {value!r}")
        out[name] = value
    return out
