"""spaCy for the dialogue: lemmas for knowledge-base search, and what a caller's words hold (spoken
numbers, phone numbers, dates), in English and French.

Only blank pipelines: `spacy.blank(language)`, the lemmatizer in lookup mode (its tables come from the
`spacy-lookups-data` package, nothing is downloaded) and an EntityRuler for dates. Numbers a caller reads
out ("zéro six douze trente-quatre…", "five five five, one two three…") become a stream of runs (digits,
letters, words) over which a spaCy Matcher finds phone numbers here and case references in
`dialogue.references`. Imported by the Rasa actions: Python 3.10 syntax.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.pipeline import EntityRuler
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

from dialogue.spoken_numbers import NUMBER_WORDS, as_cardinal, number_at, strip_accents

LANGUAGES = ("en", "fr")
LETTERS, DIGITS, PLUS, WORD = "LETTERS", "DIGITS", "PLUS", "WORD"  # kinds of spoken runs (Matcher TAGs)
Item = tuple[str, str]  # (kind, text)
LetterReader = Callable[[str, str, str], "str | None"]  # (plain word, word as written, language) -> letter
Pattern = list[dict[str, Any]]

REPEATERS = {"double": 2, "triple": 3}
PIECES = re.compile(r"\+|[^\W\d_]+|\d+")  # what a token holds: "+", letter runs, digit runs


def _plain_token(token: Token) -> str:
    return strip_accents(token.lower_).replace("’", "'")


@cache
def pipeline(language: str) -> Language:
    """The blank pipeline of `language`: tokenizer, lookup lemmatizer, date EntityRuler (built once)."""
    check_language(language)
    # What the date patterns match: lowercase without accents, and "is made of number words".
    Token.set_extension("plain", getter=_plain_token, force=True)
    Token.set_extension("number_word", getter=_is_number_word, force=True)
    nlp = spacy.blank(language)
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()  # loads the lookup table from spacy-lookups-data; would clear an EntityRuler added before
    ruler = cast(EntityRuler, nlp.add_pipe("entity_ruler"))
    ruler.add_patterns(_date_patterns(nlp, language))
    return nlp


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: use en or fr")
    return language


# --- lemmas -------------------------------------------------------------------------------------


def words_and_lemmas(text: str, language: str) -> list[tuple[str, str]]:
    """(word, lemma) for each word, lowercase, punctuation left out: "Renewing" -> ("renewing", "renew")."""
    nlp = pipeline(language)
    doc = nlp.get_pipe("lemmatizer")(nlp.make_doc(text.lower()))  # the lookup tables are lowercase
    return [(token.text, token.lemma_ or token.text) for token in doc if not (token.is_punct or token.is_space)]


def lemmas(text: str, language: str) -> list[str]:
    """Lowercase lemmas of the words: "cartes d'identité" -> ["carte", "de", "identité"]."""
    return [lemma for _, lemma in words_and_lemmas(text, language)]


# --- spoken numbers, letters and words -----------------------------------------------------------


def spoken_words(text: str, language: str) -> list[str]:
    """The letter and digit runs of spaCy's tokens, lowercase, clitics ("'s", "n't", "c'", "l'") left out:
    "It's PA-12345" -> ["it", "pa", "12345"]."""
    doc = pipeline(language).make_doc(text.lower().replace("x-ray", "xray"))
    return [piece for token in doc if not _is_clitic(token.text) for piece in PIECES.findall(token.text)]


def _is_clitic(word: str) -> bool:
    return word[:1] in ("'", "’") or word[-1:] in ("'", "’") or word in ("n't", "n’t")


def spoken_items(text: str, language: str, read_letter: LetterReader | None = None) -> list[Item]:
    """Each word as a digit string (digits, number words, "double five"), "+", a spelled letter (when
    `read_letter` says so) or a plain word: "p a double five 3" -> [(L,"p"), (L,"a"), (D,"55"), (D,"3")]."""
    raw_words = spoken_words(text, check_language(language))
    words = [strip_accents(word) for word in raw_words]
    items: list[Item] = []
    index = 0
    while index < len(words):
        word, repeat = words[index], 1
        if word in REPEATERS and index + 1 < len(words):
            repeat, index = REPEATERS[word], index + 1
            word = words[index]
        number = None if word.isdigit() else number_at(words, index, language)
        if word.isdigit():
            items.append((DIGITS, word * repeat))
        elif number is not None:
            items.append((DIGITS, str(number[0]) * repeat))
            index += number[1] - 1
        elif word == "+":
            items.append((PLUS, word))
        elif _is_spoken_zero(words, index, items, language, expects_letters=read_letter is not None):
            items.append((DIGITS, "0" * repeat))
        elif read_letter is not None and (letter := read_letter(word, raw_words[index], language)) is not None:
            items.append((LETTERS, letter * repeat))
        else:
            items.append((WORD, word))
        index += 1
    return items


def _is_spoken_zero(words: list[str], index: int, items: list[Item], language: str, expects_letters: bool) -> bool:
    """English "oh" for 0: after a digit, or before one when no spelled letter is expected ("oh seven seven…")."""
    if language != "en" or words[index] not in ("oh", "o"):
        return False
    if items and items[-1][0] == DIGITS:
        return True
    following = words[index + 1 : index + 2]
    if expects_letters or not following:
        return False
    return following[0].isdigit() or number_at(words, index + 1, "en") is not None


def spoken_runs(items: list[Item]) -> list[Item]:
    """Neighbouring digits or letters merged: [(L,"a"), (L,"b"), (D,"12"), (D,"345")] -> [(L,"ab"), (D,"12345")]."""
    runs: list[Item] = []
    for kind, text in items:
        if runs and runs[-1][0] == kind and kind in (LETTERS, DIGITS):
            runs[-1] = (kind, runs[-1][1] + text)
        else:
            runs.append((kind, text))
    return runs


class RunMatcher:
    """A spaCy Matcher over spoken runs: each run is one token whose TAG is its kind (LETTERS, DIGITS,
    PLUS, WORD), so a pattern can say "2+ letters then 5 digits" whatever way they were spoken."""

    def __init__(self, label: str, patterns: list[Pattern]) -> None:
        self.label, self.patterns = label, patterns
        self._matchers: dict[str, Matcher] = {}

    def spans(self, runs: list[Item], language: str) -> list[Span]:
        if not runs:
            return []
        vocab = pipeline(language).vocab
        if language not in self._matchers:
            self._matchers[language] = Matcher(vocab)
            self._matchers[language].add(self.label, self.patterns)
        doc = Doc(vocab, words=[text for _, text in runs], tags=[kind for kind, _ in runs])
        return filter_spans(self._matchers[language](doc, as_spans=True))


# --- phone numbers ------------------------------------------------------------------------------

PHONE_NUMBERS = RunMatcher(
    "PHONE",
    [
        [{"TAG": DIGITS, "LENGTH": {">=": 10, "<=": 11}}],  # national: 01 23 45 67 89, (555) 123-4567, 07700 900123
        [{"TAG": PLUS}, {"TAG": DIGITS, "LENGTH": {">=": 8, "<=": 15}}],  # international: +33 6 12 34 56 78
        [{"TAG": DIGITS, "TEXT": {"REGEX": r"^00\d{8,15}$"}}],  # international: 00 44 7700 900123
    ],
)


def find_phone_numbers(text: str, language: str) -> list[str]:
    """Phone numbers written or read out, digits only (with "+" when said): "06 12 34 56 78",
    "zéro six douze trente-quatre cinquante-six soixante-dix-huit" -> "0612345678"."""
    runs = spoken_runs(spoken_items(text, language))
    return ["".join(token.text for token in span) for span in PHONE_NUMBERS.spans(runs, language)]


# --- dates --------------------------------------------------------------------------------------

MONTHS = {
    "en": ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"),
    "fr": ("janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre", "octobre",
           "novembre", "decembre"),
}  # fmt: skip
WEEKDAYS = {
    "en": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
RELATIVE_DAYS = {
    "en": {"today": 0, "tonight": 0, "tomorrow": 1, "day after tomorrow": 2, "yesterday": -1,
           "day before yesterday": -2},
    "fr": {"aujourd'hui": 0, "ce soir": 0, "demain": 1, "apres demain": 2, "hier": -1, "avant hier": -2},
}  # fmt: skip
DAY_DIGITS = r"^(0?[1-9]|[12]\d|3[01])(st|nd|rd|th|er|re|e|eme)?$"  # 15, 15th, 1er, 2e
YEAR_DIGITS = r"^(19|20)\d\d$"
YEAR = {"TEXT": {"REGEX": YEAR_DIGITS}}


@dataclass(frozen=True)
class DateMention:
    text: str  # as said: "March 15th", "demain"
    iso: str | None  # "2026-03-15"; None when it is no real date ("31 February")


@dataclass(frozen=True)
class _Anchor:
    today: dt.date
    past: bool  # a date said without its year (or a weekday) is the latest one up to today, else the next one

    def in_year(self, year: int | None, month: int, day: int) -> dt.date:
        if year is not None:
            return dt.date(year, month, day)
        date = dt.date(self.today.year, month, day)
        if self.past and date > self.today:
            return dt.date(self.today.year - 1, month, day)
        if not self.past and date < self.today:
            return dt.date(self.today.year + 1, month, day)
        return date

    def weekday(self, weekday: int) -> dt.date:
        if self.past:
            return self.today - dt.timedelta(days=(self.today.weekday() - weekday - 1) % 7 + 1)
        return self.today + dt.timedelta(days=(weekday - self.today.weekday() - 1) % 7 + 1)


def find_dates(text: str, language: str, today: dt.date | None = None, past: bool = False) -> list[DateMention]:
    """Dates in what the caller said, resolved against `today`: "15 mars", "March 15th, 2026", "the 1st of
    May", "15/03/2026" (day first, unless only month first is a date), "2026-03-15", "tomorrow", "après-demain",
    "Monday". A weekday or a date without its year is the next one from `today` on (a callback), or with
    `past` the latest one up to `today` ("broken since Monday"); a weekday is never `today` itself."""
    nlp = pipeline(language)
    anchor = _Anchor(today or dt.date.today(), past)
    doc = nlp.get_pipe("entity_ruler")(nlp.make_doc(text))
    return [DateMention(span.text, _resolve(span, language, anchor)) for span in doc.ents]


def _resolve(span: Span, language: str, anchor: _Anchor) -> str | None:
    kind = span.ent_id_
    try:
        if kind == "relative":
            return (anchor.today + dt.timedelta(days=RELATIVE_DAYS[language][_phrase_key(span)])).isoformat()
        if kind == "weekday":
            return anchor.weekday(WEEKDAYS[language].index(span[0]._.plain)).isoformat()
        if kind == "numeric":
            return _numeric_date(re.findall(r"\d+", span.text), anchor).isoformat()
        return _calendar_date(span, language, anchor).isoformat()
    except ValueError:  # no such day
        return None


def _phrase_key(span: Span) -> str:
    return " ".join(" ".join(token._.plain for token in span).replace("-", " ").split())


def _numeric_date(parts: list[str], anchor: _Anchor) -> dt.date:
    if len(parts[0]) == 4:
        return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    first, second = int(parts[0]), int(parts[1])
    year = None if len(parts) < 3 else int(parts[2]) + (2000 if len(parts[2]) == 2 else 0)
    day, month = (second, first) if second > 12 >= first else (first, second)
    return anchor.in_year(year, month, day)


def _calendar_date(span: Span, language: str, anchor: _Anchor) -> dt.date:
    month = year = None
    day_words: list[str] = []
    for token in span:
        plain = token._.plain
        if plain in MONTHS[language]:
            month = MONTHS[language].index(plain) + 1
        elif re.match(YEAR_DIGITS, plain):
            year = int(plain)
        elif token._.number_word or re.match(DAY_DIGITS, plain) or plain == "et":
            day_words.extend(PIECES.findall(plain))
    day = _day_number(day_words, language)
    if month is None or day is None:
        raise ValueError(f"no day and month in {span.text!r}")
    return anchor.in_year(year, month, day)


def _day_number(pieces: list[str], language: str) -> int | None:
    digits = [piece for piece in pieces if piece.isdigit()]
    if digits:
        return int(digits[0]) if len(digits) == 1 else None
    words = [as_cardinal(piece, language) for piece in pieces]
    parsed = number_at(words, 0, language) if words else None
    return parsed[0] if parsed is not None and parsed[1] == len(words) else None


def _is_number_word(token: Token) -> bool:
    """A token made of number words only: "quinze", "vingt-deux", "fifteenth", "twenty"."""
    language = token.doc.lang_
    vocabulary = NUMBER_WORDS[language]
    pieces = PIECES.findall(token._.plain)
    cardinals = [as_cardinal(piece, language) for piece in pieces]
    return bool(pieces) and pieces[0] != "et" and all(word in vocabulary for word in cardinals)


def _date_patterns(nlp: Language, language: str) -> list[dict[str, Any]]:
    number = {"_": {"number_word": True}}
    day_token = {"_": {"plain": {"REGEX": DAY_DIGITS}}}
    month = {"_": {"plain": {"IN": list(MONTHS[language])}}}
    link = {"LOWER": {"IN": ["-", "et"]}, "OP": "?"}
    days: list[Pattern] = [[day_token], [number], [number, link, number]]
    patterns: list[Pattern] = []
    for day in days:
        patterns.append([*day, {"LOWER": {"IN": ["of", "de"]}, "OP": "?"}, month, {**YEAR, "OP": "?"}])
        patterns.append([month, {"LOWER": "the", "OP": "?"}, *day])
        patterns.append([month, {"LOWER": "the", "OP": "?"}, *day, {"ORTH": ",", "OP": "?"}, YEAR])
    rules = [{"label": "DATE", "id": "calendar", "pattern": pattern} for pattern in patterns]
    return [*rules, *_relative_day_rules(nlp, language), *_numeric_rules()]


def _relative_day_rules(nlp: Language, language: str) -> list[dict[str, Any]]:
    weekday = {"_": {"plain": {"IN": list(WEEKDAYS[language])}}}
    rules = [{"label": "DATE", "id": "weekday", "pattern": [weekday]}]
    for phrase in RELATIVE_DAYS[language]:
        for written in {phrase, phrase.replace(" ", "-")}:  # "après demain", "après-demain"
            tokens = [{"_": {"plain": token._.plain}} for token in nlp.make_doc(written)]
            rules.append({"label": "DATE", "id": "relative", "pattern": tokens})
    return rules


def _numeric_rules() -> list[dict[str, Any]]:
    one_token = r"^\d{1,2}/\d{1,2}(/\d\d(\d\d)?)?$|^\d{1,2}\.\d{1,2}\.\d\d(\d\d)?$"  # 15/03, 15/03/2026, 15.03.26
    two_digits = {"TEXT": {"REGEX": r"^\d{1,2}$"}}
    dash = {"ORTH": "-"}
    patterns: list[Pattern] = [
        [{"TEXT": {"REGEX": one_token}}],
        [two_digits, dash, two_digits, dash, YEAR],  # 15-03-2026 (the tokenizer splits at the dashes)
        [YEAR, dash, two_digits, dash, two_digits],  # 2026-03-15
    ]
    return [{"label": "DATE", "id": "numeric", "pattern": pattern} for pattern in patterns]
