"""Word error rate after a small English text normalisation."""

from __future__ import annotations

import re
from collections.abc import Iterable

import jiwer

_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}

_NOT_WORD = re.compile(r"[^\w\s']")
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def number_words(n: int) -> str:
    """English words for 0..100, e.g. 42 -> 'forty two'."""
    if not 0 <= n <= 100:
        raise ValueError(f"only 0..100 are spelled out, got {n}")
    if n == 100:
        return "one hundred"
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ONES[ones]}"


def _normalise_word(word: str) -> str:
    if word.isascii() and word.isdigit() and int(word) <= 100:
        return number_words(int(word))
    return _ABBREVIATIONS.get(word, word)


def normalise(text: str) -> str:
    """Lowercase, punctuation to spaces (apostrophes inside words kept), numbers 0..100 spelled out."""
    lowered = text.lower().replace("\u2019", "'")
    cleaned = _LOOSE_APOSTROPHE.sub(" ", _NOT_WORD.sub(" ", lowered)).replace("_", " ")
    return " ".join(_normalise_word(word) for word in cleaned.split())


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Total edits over total reference words for (reference, hypothesis) pairs."""
    edits = reference_words = 0
    for reference, hypothesis in pairs:
        out = jiwer.process_words(normalise(reference), normalise(hypothesis))
        edits += out.substitutions + out.deletions + out.insertions
        reference_words += out.hits + out.substitutions + out.deletions
    if reference_words == 0:
        raise ValueError("the references contain no words")
    return edits / reference_words


def word_error_rate(reference: str, hypothesis: str) -> float:
    return corpus_wer([(reference, hypothesis)])
