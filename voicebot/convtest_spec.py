"""Conversation test files: YAML dialogues of caller turns (audio or text to synthesize) and expectations.

name: Opening hours on a phone line
language: en                      # optional: force the call language
channel: {rate: 8000, codec: pcmu} # optional: default 16 kHz linear
turns:
  - say: "What are your opening hours?"   # synthesized with `voice` (default: the language's voice)
    voice: joe
    noise_snr_db: 20                      # optional background noise
    codec: pcma                           # optional: this turn also went through a G.711 line
    expect: {intent: ask_opening_hours, reply_contains: ["Monday"], max_wer: 0.2}
  - recording: jfk                        # a real recording fetched by `make setup`
  - audio: caller.wav                     # a file, relative to this YAML file
  - dtmf: "12345#"                        # key presses (RFC 4733 on a real line)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.ports import ConfigError
from voicebot.yamlfile import read_mapping

EXPECTATION_KEYS = {
    "transcript",
    "max_wer",
    "intent",
    "slots",
    "reply_contains",
    "language",
    "transfer",
    "hangup",
    "accepted",
}
TURN_KEYS = {"say", "voice", "audio", "recording", "dtmf", "noise_snr_db", "codec", "expect", "pause_s"}


@dataclass(frozen=True)
class Expectation:
    transcript: str | None = None
    max_wer: float | None = None
    intent: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    reply_contains: tuple[str, ...] = ()
    language: str | None = None
    transfer: str | bool | None = None  # a queue name, or False for "no transfer"
    hangup: bool | None = None
    accepted: bool | None = None


@dataclass(frozen=True)
class TurnSpec:
    say: str | None = None
    voice: str | None = None
    audio: Path | None = None
    recording: str | None = None
    dtmf: str | None = None
    noise_snr_db: float | None = None
    codec: str | None = None
    pause_s: float = 0.0
    expect: Expectation = field(default_factory=Expectation)

    @property
    def label(self) -> str:
        if self.say is not None:
            return f"say {self.say!r}"
        if self.dtmf is not None:
            return f"dtmf {self.dtmf}"
        return f"recording {self.recording}" if self.recording else f"audio {self.audio}"


@dataclass(frozen=True)
class DialogueSpec:
    name: str
    path: Path
    turns: tuple[TurnSpec, ...]
    language: str | None = None
    rate: int = 16000
    codec: str | None = None


def load_dialogue(path: Path) -> DialogueSpec:
    raw = read_mapping(path, "dialogue file")
    if not isinstance(raw.get("turns"), list) or not raw["turns"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty `turns` list")
    channel = raw.get("channel") or {}
    turns = tuple(_turn(path, i, t) for i, t in enumerate(raw["turns"], start=1))
    return DialogueSpec(
        name=str(raw.get("name", path.stem)),
        path=path,
        turns=turns,
        language=raw.get("language"),
        rate=int(channel.get("rate", 16000)),
        codec=channel.get("codec"),
    )


def _turn(path: Path, index: int, raw: Any) -> TurnSpec:
    where = f"{path}: turn {index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(raw) - TURN_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TURN_KEYS))})"
        )
    sources = [k for k in ("say", "audio", "recording", "dtmf") if k in raw]
    if len(sources) != 1:
        raise ConfigError(f"{where}: give exactly one of say / audio / recording / dtmf")
    if "dtmf" in raw and not all(key in "0123456789*#" for key in str(raw["dtmf"])):
        raise ConfigError(f"{where}: dtmf must be keys 0-9, * and # (got {raw['dtmf']!r})")
    audio = (path.parent / raw["audio"]).resolve() if "audio" in raw else None
    return TurnSpec(
        say=raw.get("say"),
        voice=raw.get("voice"),
        audio=audio,
        recording=raw.get("recording"),
        dtmf=str(raw["dtmf"]) if "dtmf" in raw else None,
        noise_snr_db=raw.get("noise_snr_db"),
        codec=raw.get("codec"),
        pause_s=float(raw.get("pause_s", 0.0)),
        expect=_expectation(where, raw.get("expect") or {}),
    )


def _expectation(where: str, raw: Any) -> Expectation:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: `expect` must be a mapping")
    unknown = set(raw) - EXPECTATION_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown expectation(s) {', '.join(sorted(unknown))}")
    contains = raw.get("reply_contains", ())
    if isinstance(contains, str):
        contains = (contains,)
    max_wer = raw.get("max_wer")
    if max_wer is None and "transcript" in raw:
        max_wer = 0.25
    return Expectation(
        transcript=raw.get("transcript"),
        max_wer=max_wer,
        intent=raw.get("intent"),
        slots=dict(raw.get("slots") or {}),
        reply_contains=tuple(contains),
        language=raw.get("language"),
        transfer=raw.get("transfer"),
        hangup=raw.get("hangup"),
        accepted=raw.get("accepted"),
    )
