from voicebot.language import CallLanguage
from voicebot.ports import Transcription


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
