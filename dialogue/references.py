"""Case references ("AB-12345") from what a caller said, as Whisper wrote it, or typed on the keypad.

A spoken reference is two letters then five digits, possibly split and mixed with filler words:
"my number is A. B. 1-2-3-4-5", "ab 12 345", "alpha bravo one two three four five",
"c'est le pé a douze trois quatre cinq". spaCy's tokens become a stream of letters, digits and other
words (`dialogue.nlp.spoken_items`); a Matcher over its runs finds five digits directly preceded by at
least two letters (the last two are kept). Not handled on purpose: "thousand/hundred" numbers and
letter names that are also common words ("bee", "see", "are").
"""

from __future__ import annotations

import re

from dialogue.nlp import DIGITS, LETTERS, RunMatcher, check_language, spoken_items, spoken_runs

REFERENCE_PATTERN = re.compile(r"^[A-Z]{2}-[0-9]{5}$")
DTMF_PATTERN = re.compile(r"^[0-9]{5}$")

NATO = {
    "alpha": "a", "alfa": "a", "bravo": "b", "charlie": "c", "delta": "d", "echo": "e", "foxtrot": "f",
    "golf": "g", "hotel": "h", "india": "i", "juliet": "j", "juliett": "j", "kilo": "k", "lima": "l",
    "mike": "m", "november": "n", "oscar": "o", "papa": "p", "quebec": "q", "romeo": "r", "sierra": "s",
    "tango": "t", "uniform": "u", "victor": "v", "whiskey": "w", "whisky": "w", "xray": "x", "yankee": "y",
    "zulu": "z",
}  # fmt: skip
# French letter names as Whisper spells them; only the accented forms, "de"/"te" are common words.
FRENCH_LETTER_NAMES = {"bé": "b", "cé": "c", "dé": "d", "gé": "g", "pé": "p", "té": "t", "vé": "v", "zède": "z"}

# Two-letter words that are too common to be a spoken letter pair (case prefixes such as MA or PA are not here).
TWO_LETTER_WORDS = frozenset(
    str.split(
        """am an as at be by do go he hi if in is it me my no of ok on or so to up us we ai au ca ce de du en es et
    il je la le ne ni nu ou sa se si ta te tu"""
    )
)
REFERENCES = RunMatcher("REFERENCE", [[{"TAG": LETTERS, "LENGTH": {">=": 2}}, {"TAG": DIGITS, "LENGTH": 5}]])


def _letter(word: str, raw: str, language: str) -> str | None:
    if raw in FRENCH_LETTER_NAMES and language == "fr":
        return FRENCH_LETTER_NAMES[raw]
    if word in NATO:
        return NATO[word]
    if word.isalpha() and (len(word) == 1 or (len(word) == 2 and word not in TWO_LETTER_WORDS)):
        return word
    return None


# "P as in Peter", "P comme Pierre", "P for papa": the spelling aid is dropped, the letter kept.
SPELLING_AID = re.compile(r"\b([A-Za-z])\b[\s,.]+(?:as in|like|for|comme)\s+[^\W\d_]+", re.IGNORECASE)


def reference_candidates(text: str, language: str = "en") -> list[str]:
    """Every spoken reference in the text, in order, as "AB-12345"."""
    text = SPELLING_AID.sub(r"\1", text)
    runs = spoken_runs(spoken_items(text, check_language(language), read_letter=_letter))
    return [f"{letters.text[-2:].upper()}-{digits.text}" for letters, digits in REFERENCES.spans(runs, language)]


def normalise_reference(text: str, language: str = "en") -> str | None:
    """Spoken reference -> "AB-12345", or None when the text holds no complete reference."""
    candidates = reference_candidates(text, language)
    return candidates[0] if candidates else None


def reference_from_dtmf(digits: str) -> str | None:
    """Keypad entry "12345#" -> "12345"; None unless exactly five digits (an ending "#" is allowed)."""
    entry = digits.strip().removesuffix("#")
    return entry if DTMF_PATTERN.match(entry) else None


def speakable_reference(reference: str, language: str) -> str:
    """Reference "AB-12345" -> "A, B, 1, 2, 3, 4, 5": one character at a time, so TTS never reads "twelve thousand"."""
    check_language(language)
    if not (REFERENCE_PATTERN.match(reference) or DTMF_PATTERN.match(reference)):
        raise ValueError(f"not a case reference: {reference!r} (expected AB-12345 or 12345)")
    return ", ".join(char for char in reference if char != "-")
