"""The language of a call: what Whisper detects, what the caller chose, what was configured."""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.ports import Transcription


@dataclass
class CallLanguage:
    current: str
    multilingual_asr: bool
    supported: tuple[str, ...] = ("en", "fr")
    threshold: float = 0.6
    forced: bool = False  # configured (--lang) or chosen by the caller: Whisper decodes this language
    probability: float | None = None
    # A detection at least this sure fixes the language for the rest of the call (above 1: never). Whisper's
    # language ID is unreliable on short answers ("oui" -> en/th), which then decode as the wrong language.
    lock_threshold: float = 0.8
    locked: bool = False

    def __post_init__(self) -> None:
        if self.forced:
            self.probability = 1.0

    def for_asr(self) -> str | None:
        """The language to force on Whisper, or None to let it detect."""
        if not self.multilingual_asr:
            return "en"
        return self.current if self.forced or self.locked else None

    def heard(self, transcription: Transcription) -> None:
        """Follow Whisper's detection when it is confident and the language is one we serve."""
        if self.forced or self.locked or not self.multilingual_asr:
            return
        probability = transcription.language_probability or 0.0
        if transcription.language in self.supported and probability >= self.threshold:
            self.current, self.probability = transcription.language, probability
            self.locked = probability >= self.lock_threshold

    def chosen(self, language: str) -> None:
        """The dialogue settled the language (the caller said "français" or pressed 1): stick to it."""
        self.current, self.probability, self.forced = language, 1.0, True
