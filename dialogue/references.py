"""Case references ("AB-12345") from what a caller said, as Whisper wrote it, or typed on the keypad.

A spoken reference is two letters then five digits, possibly split and mixed with filler words:
"my number is A. B. 1-2-3-4-5", "ab 12 345", "alpha bravo one two three four five",
"c'est le pé a douze trois quatre cinq". The text becomes a stream of letters, digits and other
words; the reference is the first run of exactly five digits directly preceded by at least two
letters (the last two are kept). Not handled on purpose: "thousand/hundred" numbers and
letter names that are also common words ("bee", "see", "are").
"""

from __future__ import annotations

import re
import unicodedata

REFERENCE_PATTERN = re.compile(r"^[A-Z]{2}-[0-9]{5}$")
DTMF_PATTERN = re.compile(r"^[0-9]{5}$")
LETTERS, DIGITS = "letters", "digits"

NATO = {
    "alpha": "a", "alfa": "a", "bravo": "b", "charlie": "c", "delta": "d", "echo": "e", "foxtrot": "f",
    "golf": "g", "hotel": "h", "india": "i", "juliet": "j", "juliett": "j", "kilo": "k", "lima": "l",
    "mike": "m", "november": "n", "oscar": "o", "papa": "p", "quebec": "q", "romeo": "r", "sierra": "s",
    "tango": "t", "uniform": "u", "victor": "v", "whiskey": "w", "whisky": "w", "xray": "x", "yankee": "y",
    "zulu": "z",
}  # fmt: skip
# French letter names as Whisper spells them; only the accented forms, "de"/"te" are common words.
FRENCH_LETTER_NAMES = {"bé": "b", "cé": "c", "dé": "d", "gé": "g", "pé": "p", "té": "t", "vé": "v", "zède": "z"}

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
REPEATERS = {"double": 2, "triple": 3}
# Two-letter words that are too common to be a spoken letter pair (case prefixes such as MA or PA are not here).
TWO_LETTER_WORDS = frozenset(
    str.split(
        """am an as at be by do go he hi if in is it me my no of ok on or so to up us we ai au ca ce de du en es et
    il je la le ne ni nu ou sa se si ta te tu"""
    )
)

Item = tuple[str, str]  # (LETTERS | DIGITS | "word", text)


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _number_at(words: list[str], index: int, language: str) -> tuple[int, int] | None:
    """A number spelled in words starting at `index` -> (value, words used), e.g. "dix sept" -> (17, 2)."""
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
        extra = _number_at(words, index + used, language)
        if extra is not None and extra[0] < 20:
            return value + extra[0], used + extra[1]
    if rest and rest[0] in units and units[rest[0]] > 0:
        return value + units[rest[0]], used + 1
    return value, used


def _letter(word: str, raw: str, language: str) -> str | None:
    if raw in FRENCH_LETTER_NAMES and language == "fr":
        return FRENCH_LETTER_NAMES[raw]
    if word in NATO:
        return NATO[word]
    if word.isalpha() and (len(word) == 1 or (len(word) == 2 and word not in TWO_LETTER_WORDS)):
        return word
    return None


def _drop_elisions(text: str) -> str:
    """Drop the letters of "it's", "we'd", "c'est", "l'acte": they are not spoken letters."""
    text = re.sub(r"(\w)['’](s|re|d|ll|m|ve|t)\b", r"\1", text)
    return re.sub(r"\b(c|l|d|j|n|s|m|t|qu|jusqu|lorsqu|puisqu)['’]", " ", text)


def _items(text: str, language: str) -> list[Item]:
    cleaned = _drop_elisions(text.lower().replace("x-ray", "xray"))
    raw_words = re.findall(r"[^\W\d_]+|\d+", cleaned)
    words = [_plain(word) for word in raw_words]
    items: list[Item] = []
    index = 0
    while index < len(words):
        word, repeat = words[index], 1
        if word in REPEATERS and index + 1 < len(words):
            repeat, index = REPEATERS[word], index + 1
            word = words[index]
        number = None if word.isdigit() else _number_at(words, index, language)
        previous_is_digit = bool(items) and items[-1][0] == DIGITS
        if word.isdigit():
            items.append((DIGITS, word * repeat))
        elif number is not None:
            items.append((DIGITS, str(number[0]) * repeat))
            index += number[1] - 1
        elif word in ("oh", "o") and previous_is_digit and language == "en":
            items.append((DIGITS, "0" * repeat))
        elif (letter := _letter(word, raw_words[index], language)) is not None:
            items.append((LETTERS, letter * repeat))
        else:
            items.append(("word", word))
        index += 1
    return items


def _runs(items: list[Item]) -> list[Item]:
    """Merge neighbouring items of the same kind: [(L,"a"), (L,"b"), (D,"12"), (D,"345")] -> [(L,"ab"), (D,"12345")]."""
    runs: list[Item] = []
    for kind, text in items:
        if runs and runs[-1][0] == kind and kind != "word":
            runs[-1] = (kind, runs[-1][1] + text)
        else:
            runs.append((kind, text))
    return runs


def normalise_reference(text: str, language: str = "en") -> str | None:
    """Spoken reference -> "AB-12345", or None when the text holds no complete reference."""
    if language not in UNITS:
        raise ValueError(f"unsupported language {language!r}: use en or fr")
    runs = _runs(_items(text, language))
    for position in range(1, len(runs)):
        (kind_before, letters), (kind, digits) = runs[position - 1], runs[position]
        if kind == DIGITS and kind_before == LETTERS and len(digits) == 5 and len(letters) >= 2:
            return f"{letters[-2:].upper()}-{digits}"
    return None


def reference_from_dtmf(digits: str) -> str | None:
    """Keypad entry "12345#" -> "12345"; None unless exactly five digits (an ending "#" is allowed)."""
    entry = digits.strip().removesuffix("#")
    return entry if DTMF_PATTERN.match(entry) else None


def speakable_reference(reference: str, language: str) -> str:
    """Reference "AB-12345" -> "A, B, 1, 2, 3, 4, 5": one character at a time, so TTS never reads "twelve thousand"."""
    if language not in UNITS:
        raise ValueError(f"unsupported language {language!r}: use en or fr")
    if not (REFERENCE_PATTERN.match(reference) or DTMF_PATTERN.match(reference)):
        raise ValueError(f"not a case reference: {reference!r} (expected AB-12345 or 12345)")
    return ", ".join(char for char in reference if char != "-")
