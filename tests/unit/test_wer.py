from __future__ import annotations

import pytest

from voicebot.wer import corpus_wer, normalise, number_words, word_error_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ten of Clubs.", "ten of clubs"),
        ("10 of clubs", "ten of clubs"),
        ("4 queen, of clubs!", "four queen of clubs"),
        ("  And so,   my fellow Americans ", "and so my fellow americans"),
        ("Don't stop; it's 'quoted'", "don't stop it's quoted"),
        ("I can\u2019t", "i can't"),
        ("cold-hearted", "cold hearted"),
        ("Mr. John Dashwood", "mister john dashwood"),
        ("21 and 100 and 101", "twenty one and one hundred and 101"),
        ("", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(("n", "words"), [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine")])
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_number_words_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        number_words(101)


def test_word_error_rate_ignores_formatting_only_differences() -> None:
    assert word_error_rate("ten of clubs", "10 of Clubs.") == 0.0


def test_word_error_rate_counts_substitutions_deletions_insertions() -> None:
    # one substitution (five -> nine) and one deletion (of) over four words
    assert word_error_rate("seven of clubs five", "seven clubs nine") == pytest.approx(2 / 4)
    assert word_error_rate("five five", "five five five") == pytest.approx(1 / 2)
    assert word_error_rate("five five", "") == 1.0


def test_corpus_wer_weights_by_reference_words_not_by_utterance() -> None:
    pairs = [("a b c d e f g h i j", "a b c d e f g h i j"), ("yes", "no")]
    assert corpus_wer(pairs) == pytest.approx(1 / 11)


def test_corpus_wer_needs_reference_words() -> None:
    with pytest.raises(ValueError, match="no words"):
        corpus_wer([("", "hello")])
