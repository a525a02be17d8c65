import pytest

from tests.unit.test_session import CHANNEL, ScriptedDialogue, make_call, silence, tone
from voicebot.audio import AudioChunk, concat
from voicebot.language import CallLanguage
from voicebot.ports import DialogueReply, Transcription


def heard(language: str, probability: float) -> Transcription:
    return Transcription("text", language, probability)


def test_english_only_asr_always_decodes_english():
    lang = CallLanguage("fr", multilingual_asr=False)
    assert lang.for_asr() == "en"


def test_detection_is_followed_only_when_confident_and_supported():
    lang = CallLanguage("en", multilingual_asr=True)
    assert lang.for_asr() is None
    lang.heard(heard("fr", 0.4))
    assert lang.current == "en"
    lang.heard(heard("de", 0.99))
    assert lang.current == "en"
    lang.heard(heard("fr", 0.8))
    assert (lang.current, lang.probability) == ("fr", 0.8)


def test_a_choice_forces_the_language_from_then_on():
    lang = CallLanguage("en", multilingual_asr=True)
    lang.chosen("fr")
    assert lang.for_asr() == "fr"
    lang.heard(heard("en", 0.99))
    assert (lang.current, lang.probability) == ("fr", 1.0)


def test_configured_language_is_forced_with_full_confidence():
    lang = CallLanguage("fr", multilingual_asr=True, forced=True)
    assert (lang.for_asr(), lang.probability) == ("fr", 1.0)


def test_a_confident_detection_locks_the_language_for_the_rest_of_the_call():
    lang = CallLanguage("en", multilingual_asr=True, lock_threshold=0.8)
    lang.heard(heard("fr", 0.9))
    assert (lang.current, lang.locked, lang.for_asr()) == ("fr", True, "fr")
    lang.heard(heard("en", 0.99))  # a short answer mis-detected later changes nothing
    assert (lang.current, lang.probability, lang.for_asr()) == ("fr", 0.9, "fr")
    lang.chosen("en")  # the caller can still switch explicitly
    assert lang.for_asr() == "en"


def test_a_detection_between_the_thresholds_is_followed_but_detection_goes_on():
    lang = CallLanguage("en", multilingual_asr=True, threshold=0.6, lock_threshold=0.8)
    lang.heard(heard("fr", 0.7))
    assert (lang.current, lang.locked, lang.for_asr()) == ("fr", False, None)
    lang.heard(heard("en", 0.95))
    assert (lang.current, lang.for_asr()) == ("en", "en")


def test_a_lock_threshold_above_one_never_locks():
    lang = CallLanguage("en", multilingual_asr=True, lock_threshold=1.01)
    lang.heard(heard("fr", 0.99))
    assert (lang.current, lang.for_asr()) == ("fr", None)


class DetectingStt:
    """Multilingual fake: detects French on its own, and records the language each turn was decoded in."""

    multilingual = True

    def __init__(self) -> None:
        self.decoded_in: list[str | None] = []

    def transcribe(self, audio: AudioChunk, language: str | None = None) -> Transcription:
        self.decoded_in.append(language)
        return Transcription("bonjour", language or "fr", 1.0 if language else 0.93)


@pytest.mark.parametrize(("lock_threshold", "second_turn"), [(0.9, "fr"), (1.01, None)])
async def test_the_session_decodes_later_turns_in_the_locked_language(lock_threshold: float, second_turn: str | None):
    stt = DetectingStt()
    dialogue = ScriptedDialogue([DialogueReply(("Bonjour.",)), DialogueReply(("Oui.",))])
    session, call, _, _ = make_call(stt, dialogue, language_lock_threshold=lock_threshold)
    await session.start()
    for _ in range(2):
        await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
        await call.wait_until_quiet()
    assert stt.decoded_in == [None, second_turn]
    assert session.language.current == "fr"
