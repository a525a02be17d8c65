"""Numbers spelled out in words, in English and French, as Whisper writes them: "dix-sept", "twenty one",
"quatre-vingt-dix-neuf", "fifteenth". Plain Python, used by `dialogue.nlp` (Python 3.10 syntax)."""

from __future__ import annotations

import unicodedata

UNITS = {
    "en": {"zero": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9},
    "fr": {"zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
           "huit": 8, "neuf": 9},
}  # fmt: skip
TEENS = {
    "en": {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
           "seventeen": 17, "eighteen": 18, "nineteen": 19},
    "fr": {"dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16},
}  # fmt: skip
TENS = {
    "en": {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
           "ninety": 90},
    "fr": {"vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60},
}  # fmt: skip
ORDINALS = {  # ordinals that are not "cardinal + th", as the cardinal they stand for
    "en": {"first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight", "ninth": "nine",
           "twelfth": "twelve", "twentieth": "twenty", "thirtieth": "thirty"},
    "fr": {"premier": "un", "premiere": "un"},
}  # fmt: skip
NUMBER_WORDS = {language: frozenset({*UNITS[language], *TEENS[language], *TENS[language], "et"}) for language in UNITS}


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def number_at(words: list[str], index: int, language: str) -> tuple[int, int] | None:
    """A number spelled in words (lowercase, no accents) starting at `index` -> (value, words used),
    e.g. "dix sept" -> (17, 2), "soixante dix huit" -> (78, 3); below one hundred only."""
    units, teens, tens = UNITS[language], TEENS[language], TENS[language]
    word = words[index]
    after = words[index + 1 : index + 4]
    if language == "fr" and word == "quatre" and after[:1] in (["vingt"], ["vingts"]):
        value, used = 80, 2
    elif language == "fr" and word == "dix" and after[:1] and after[0] in ("sept", "huit", "neuf"):
        return 10 + units[after[0]], 2
    elif word in tens:
        value, used = tens[word], 1
    elif word in teens:
        return teens[word], 1
    elif word in units:
        return units[word], 1
    else:
        return None
    rest = words[index + used : index + used + 3]
    if rest[:2] == ["et", "un"] or rest[:2] == ["et", "une"]:
        return value + 1, used + 2
    if rest and value in (60, 80) and language == "fr":
        extra = number_at(words, index + used, language)
        if extra is not None and extra[0] < 20:
            return value + extra[0], used + extra[1]
    if rest and rest[0] in units and units[rest[0]] > 0:
        return value + units[rest[0]], used + 1
    return value, used


def as_cardinal(word: str, language: str) -> str:
    """ "fifteenth" -> "fifteen", "first" -> "one", "premier" -> "un"."""
    cardinal = ORDINALS[language].get(word)
    if cardinal is None and language == "en" and word.endswith("th"):
        cardinal = word[:-2]
    return cardinal or word
