"""Case references as Whisper writes them when a caller reads one out, in English and French."""

from __future__ import annotations

import pytest

from dialogue.references import (
    REFERENCE_PATTERN,
    normalise_reference,
    reference_candidates,
    reference_from_dtmf,
    speakable_reference,
)

# (language, what Whisper wrote, expected reference): realistic transcripts of a caller reading a reference.
SPOKEN_VARIANTS = [
    ("en", "A B 1 2 3 4 5", "AB-12345"),
    ("en", "a b one two three four five", "AB-12345"),
    ("en", "AB-12345", "AB-12345"),
    ("en", "ab 12 345", "AB-12345"),
    ("en", "A. B. 1-2-3-4-5", "AB-12345"),
    ("en", "AB 12345", "AB-12345"),
    ("en", "a b 12 345", "AB-12345"),
    ("en", "alpha bravo one two three four five", "AB-12345"),
    ("en", "My number is PA 12345.", "PA-12345"),
    ("en", "It's PA-12345.", "PA-12345"),
    ("en", "the reference is p a twelve three four five", "PA-12345"),
    ("en", "ID one two three forty five", "ID-12345"),
    ("en", "I D, 1, 2, 3, 4, 5.", "ID-12345"),
    ("en", "E.C. 5 4 3 2 1", "EC-54321"),
    ("en", "PE, 0, 0, 7, 1, 2", "PE-00712"),
    ("en", "pa one oh three four five", "PA-10345"),
    ("en", "pa double five three four one", "PA-55341"),
    ("en", "Uh, yeah, it's P A 9 8 7 6 5, thanks.", "PA-98765"),
    ("en", "papa alpha 1 2 3 4 5", "PA-12345"),
    ("en", "Pa12345", "PA-12345"),
    ("en", "EC twenty one three four five", "EC-21345"),
    ("en", "It's MA 24680.", "MA-24680"),
    ("en", "echo charlie four five eight nine one", "EC-45891"),
    ("en", "So the reference is ID-23456, I think.", "ID-23456"),
    ("fr", "a bé un deux trois quatre cinq", "AB-12345"),
    ("fr", "pa douze trois quatre cinq", "PA-12345"),
    ("fr", "C'est le PA 12345.", "PA-12345"),
    ("fr", "c'est le pé a 1 2 3 4 5", "PA-12345"),
    ("fr", "Euh, mon numéro c'est E C 4 5 6 7 8.", "EC-45678"),
    ("fr", "ID soixante-dix-huit quatre cinq six", "ID-78456"),
    ("fr", "PE quatre-vingt-dix-neuf 1 2 3", "PE-99123"),
    ("fr", "le dossier EC vingt et un trois quatre cinq", "EC-21345"),
    ("fr", "P.A. 12 345", "PA-12345"),
    ("fr", "La référence est AB, 1, 2, 3, 4, 5.", "AB-12345"),
    ("fr", "i d zéro zéro un deux trois", "ID-00123"),
    ("fr", "Ah oui, c'est ID-98765.", "ID-98765"),
    ("fr", "pé e douze trente-quatre cinq", "PE-12345"),
    ("fr", "c'est PA, un, deux, trois, quatre, cinq", "PA-12345"),
    ("fr", "Oui alors c'est MA 12077", "MA-12077"),
    ("fr", "E C cinquante-quatre trois vingt et un", "EC-54321"),
]

NO_REFERENCE = [
    ("en", "my reference is 12345"),  # letters missing: ask again rather than guess
    ("en", "it's a 12345"),  # one letter only ("it's" is not a letter S)
    ("en", "a b 1 2 3 4 5 6"),  # six digits
    ("en", "a b 1 2 3 4"),
    ("en", "I don't know my number"),
    ("en", "twenty three"),
    ("fr", "c'est 12345"),
    ("fr", "je n'ai pas le numéro"),
    ("fr", ""),
]


def test_handles_at_least_95_percent_of_spoken_variants() -> None:
    assert len(SPOKEN_VARIANTS) == 40
    failures = [
        (text, expected, normalise_reference(text, language))
        for language, text, expected in SPOKEN_VARIANTS
        if normalise_reference(text, language) != expected
    ]
    handled = 1 - len(failures) / len(SPOKEN_VARIANTS)
    assert handled >= 0.95, failures


@pytest.mark.parametrize(("language", "text"), NO_REFERENCE)
def test_no_reference_gives_none(language: str, text: str) -> None:
    assert normalise_reference(text, language) is None


def test_every_reference_in_a_message_in_order() -> None:
    said = "PA 12345, no sorry, papa echo five four three two one"
    assert reference_candidates(said, "en") == ["PA-12345", "PE-54321"]
    assert reference_candidates("c'est le 06 12 34 56 78, dossier I D 1 2 3 4 5", "fr") == ["ID-12345"]
    assert reference_candidates("call me on 07700 900123", "en") == []


def test_results_follow_the_canonical_pattern() -> None:
    for language, text, _ in SPOKEN_VARIANTS:
        result = normalise_reference(text, language)
        assert result is None or REFERENCE_PATTERN.match(result)


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="'de'"):
        normalise_reference("AB 12345", "de")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [("12345#", "12345"), ("12345", "12345"), (" 00712# ", "00712"), ("1234#", None), ("123456#", None),
     ("12*45#", None), ("", None), ("#", None)],
)  # fmt: skip
def test_reference_from_dtmf(keys: str, expected: str | None) -> None:
    assert reference_from_dtmf(keys) == expected


def test_speakable_reference_reads_one_character_at_a_time() -> None:
    assert speakable_reference("AB-12345", "en") == "A, B, 1, 2, 3, 4, 5"
    assert speakable_reference("PE-00712", "fr") == "P, E, 0, 0, 7, 1, 2"
    assert speakable_reference("12345", "fr") == "1, 2, 3, 4, 5"
    with pytest.raises(ValueError, match="not a case reference"):
        speakable_reference("AB12345", "en")


def test_spelling_aids_are_dropped_and_the_letters_kept() -> None:
    assert normalise_reference("P as in Peter, A as in apple, 1 2 3 4 5", "en") == "PA-12345"
    assert normalise_reference("P comme Pierre, A comme Anatole, un deux trois quatre cinq", "fr") == "PA-12345"
    assert normalise_reference("I have lived at 12 Main Street for 5 years", "en") is None
