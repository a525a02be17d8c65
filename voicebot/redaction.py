"""PII redaction before anything touches disk: what a caller said, in French or English, as Whisper wrote it.

`Redactor().redact(text, language)` replaces personal data with tags: [PHONE], [EMAIL], [IBAN], [CARD],
[NIR], [DOB], [ADDRESS], [NAME]. Structured numbers are found with regular expressions over the text and
kept only when their check passes (IBAN mod-97, card Luhn, NIR key), so a mistyped or made-up number is
left alone; phone numbers are recognised by shape (French, UK, North American, international), written or
read out in words. Birth dates, street addresses and introduced names come from spaCy: the blank pipeline
of `dialogue.nlp` (its date EntityRuler) with Matchers for the cue phrases ("né le", "je m'appelle",
"12 rue", "221B Baker Street"). Case references ("AB-12345") and ticket numbers ("T-000123") are kept,
and so are amounts, times, opening hours and dates that are not birth dates. Nothing is downloaded.

`RedactingFilter` / `install_log_redaction` apply the same to log records.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span

from dialogue.nlp import pipeline
from dialogue.references import TWO_LETTER_WORDS
from voicebot import redaction_patterns as patterns

LANGUAGES = ("fr", "en")
_SPACY_LOCK = threading.Lock()  # spaCy does not promise that a Language or a Matcher is thread-safe
# When two findings overlap, the one of the earlier kind wins (validated numbers first).
KINDS = ("EMAIL", "IBAN", "NIR", "CARD", "PHONE", "DOB", "ADDRESS", "NAME")
VALIDATED = frozenset({"EMAIL", "IBAN", "NIR", "CARD"})  # never dropped for touching a case reference


@dataclass(frozen=True)
class PiiSpan:
    kind: str  # one of KINDS
    start: int  # character offsets in the text
    end: int
    text: str

    @property
    def tag(self) -> str:
        return f"[{self.kind}]"


class Redactor:
    """Finds and replaces PII. Stateless apart from the spaCy pipelines, which load once per process."""

    def find(self, text: str, language: str | None = None) -> list[PiiSpan]:
        """The PII in `text`, in order, without overlaps. `language` "fr" or "en"; anything else (None,
        a language Whisper guessed that the hotline does not speak) looks for both."""
        languages = (language,) if language in LANGUAGES else LANGUAGES
        found = _written_pii(text, north_american="en" in languages)
        protected = list(_protected(_mask(text, found)))
        for each in languages:
            found.extend(_spoken_phones(text, each))
            with _SPACY_LOCK:  # one pipeline per language, shared by the writer, the queue and the log threads
                found.extend(_spacy_pii(text, each))
        return _without_overlaps(found, protected)

    def load(self) -> None:
        """Builds both spaCy pipelines now (seconds on a busy machine) rather than on the first `find`."""
        for language in LANGUAGES:
            _tools(language)

    def redact(self, text: str, language: str | None = None) -> str:
        """`text` with each piece of PII replaced by its tag: "au 06 12 34 56 78" -> "au [PHONE]"."""
        for span in reversed(self.find(text, language)):
            text = text[: span.start] + span.tag + text[span.end :]
        return text


def _span(kind: str, text: str, start: int, end: int) -> PiiSpan:
    return PiiSpan(kind, start, end, text[start:end])


def _mask(text: str, spans: list[PiiSpan]) -> str:
    """`text` with the spans blanked out (same length), so later patterns do not match inside them."""
    for span in spans:
        text = text[: span.start] + "#" * (span.end - span.start) + text[span.end :]
    return text


def _without_overlaps(found: list[PiiSpan], protected: list[tuple[int, int]]) -> list[PiiSpan]:
    def overlaps(span: PiiSpan, start: int, end: int) -> bool:
        return span.start < end and start < span.end

    kept: list[PiiSpan] = []
    for span in sorted(found, key=lambda s: (KINDS.index(s.kind), s.start - s.end, s.start)):
        if span.kind not in VALIDATED and any(overlaps(span, *reference) for reference in protected):
            continue
        if not any(overlaps(span, other.start, other.end) for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


# --- written: e-mails, IBANs, digit runs (cards, NIR, phones), UK postcodes ----------------------------


# The number in a caller's SIP or tel URI (log lines carry them): "sip:+33612345678@host" -> "sip:[PHONE]@host".
_URI_NUMBER = re.compile(r"(?:(?<=\bsip:)|(?<=\bsips:)|(?<=\btel:))\+?\d[\d\-.()]{4,}\d")


def _written_pii(text: str, north_american: bool) -> list[PiiSpan]:
    found = [_span("PHONE", text, *m.span()) for m in _URI_NUMBER.finditer(text)]
    for regex in (patterns.EMAIL, patterns.SPOKEN_EMAIL):
        found.extend(_span("EMAIL", text, *m.span()) for m in regex.finditer(_mask(text, found)))
    found.extend(_ibans(_mask(text, found), text))
    masked = _mask(text, found)
    for start, end in _protected(masked):
        masked = masked[:start] + "#" * (end - start) + masked[end:]
    found.extend(_digit_runs(masked, text, north_american))
    found.extend(_span("ADDRESS", text, *m.span()) for m in patterns.UK_POSTCODE.finditer(masked))
    return found


def _protected(text: str) -> Iterator[tuple[int, int]]:
    """Case references and ticket numbers; "on 07700 900123" is no reference ("on" is a word)."""
    for match in patterns.PROTECTED.finditer(text):
        if match["letters"] is None or match["letters"].lower() not in TWO_LETTER_WORDS:
            yield match.span()


def _ibans(masked: str, text: str) -> Iterator[PiiSpan]:
    for start in patterns.IBAN_START.finditer(masked):
        ends, position = [], start.end()
        while group := patterns.IBAN_GROUP.match(masked, position):
            position = group.end()
            ends.append(position)
        valid = [end for end in reversed(ends) if patterns.iban_valid(masked[start.start() : end])]
        if valid:
            yield _span("IBAN", text, start.start(), valid[0])


def _digit_runs(masked: str, text: str, north_american: bool) -> Iterator[PiiSpan]:
    for run in patterns.DIGIT_RUN.finditer(masked):
        body_start = run.start("body")
        groups = [(body_start + g.start(), body_start + g.end()) for g in patterns.GROUP_IN_RUN.finditer(run["body"])]
        yield from _numbers_in_run(text, groups, run.start(), run["prefix"] is not None, north_american)


def _numbers_in_run(
    text: str, groups: list[tuple[int, int]], start: int, international: bool, north_american: bool
) -> Iterator[PiiSpan]:
    """The whole run as a NIR, card or phone number; else a phone number at its start or end (two numbers
    said one after the other). Nothing is taken from the middle of a run: that is some other identifier."""
    chars = "".join(text[a:b].strip("()") for a, b in groups)
    end = groups[-1][1]
    if patterns.nir_valid(chars):
        yield _span("NIR", text, start, end)
    elif chars.isdigit() and not international and patterns.card_shape(chars):
        yield _span("CARD", text, start, end)
    elif chars.isdigit() and patterns.phone_shape(chars, international, True, north_american):
        yield _span("PHONE", text, start, end)
    elif len(groups) > 2:
        yield from _phone_at_an_end(text, groups, north_american)


def _phone_at_an_end(text: str, groups: list[tuple[int, int]], north_american: bool) -> Iterator[PiiSpan]:
    for size in range(len(groups) - 1, 1, -1):
        for window, rest in ((groups[:size], groups[size:]), (groups[-size:], groups[:-size])):
            digits = "".join(text[a:b].strip("()") for a, b in window)
            if digits.isdigit() and patterns.phone_shape(digits, False, whole_run=False, north_american=False):
                yield _span("PHONE", text, window[0][0], window[-1][1])
                yield from _numbers_in_run(text, rest, rest[0][0], False, north_american)
                return


# --- phone numbers read out in words: "zéro six, douze, trente-quatre…", "five five five, one two…" ------


def _spoken_phones(text: str, language: str) -> Iterator[PiiSpan]:
    for run in patterns.spoken_number_runs(text, language):
        if not any(number.in_words for number in run):  # digits only: the written-number path has seen them
            continue
        international = text[: run[0].start].rstrip().lower().endswith(("plus", "+"))
        digits = "".join(number.digits for number in run)
        if patterns.phone_shape(digits, international, whole_run=True, north_american=language == "en"):
            yield _span("PHONE", text, run[0].start, run[-1].end)


# --- spaCy: birth dates, street addresses, introduced names ---------------------------------------------


@dataclass(frozen=True)
class _Tools:
    nlp: Language
    birth_cues: Matcher
    addresses: Matcher
    name_cues: Matcher


@cache
def _tools(language: str) -> _Tools:
    """The blank pipeline of `dialogue.nlp` (tokenizer + date EntityRuler) and the redaction Matchers."""
    nlp = pipeline(language)
    birth_cues, addresses, name_cues = Matcher(nlp.vocab), Matcher(nlp.vocab), Matcher(nlp.vocab)
    birth_cues.add("BIRTH", patterns.BIRTH_CUES[language])
    birth_cues.add("DATE", patterns.SPACED_DATES)
    for street_language in LANGUAGES:  # "12 rue de la Paix" said in English is still an address
        addresses.add(f"ADDRESS_{street_language}", patterns.address_anchors(street_language), greedy="LONGEST")
    name_cues.add("CUE", patterns.NAME_CUES[language], greedy="LONGEST")
    name_cues.add("TITLE", [[{"LOWER": {"IN": sorted(patterns.TITLES)}}]])
    name_cues.add("BEFORE", patterns.NAMES_BEFORE, greedy="LONGEST")
    return _Tools(nlp, birth_cues, addresses, name_cues)


def _spacy_pii(text: str, language: str) -> Iterator[PiiSpan]:
    tools = _tools(language)
    doc = tools.nlp.get_pipe("entity_ruler")(tools.nlp.make_doc(text))
    yield from _birth_dates(doc, tools.birth_cues)
    yield from _addresses(doc, tools.addresses)
    yield from _names(doc, tools.name_cues)


def _birth_dates(doc: Doc, birth_cues: Matcher) -> Iterator[PiiSpan]:
    matches = [(doc.vocab.strings[label], start, end) for label, start, end in birth_cues(doc)]
    cue_ends = [end for label, _, end in matches if label == "BIRTH"]
    dates = [date for date in doc.ents if date.ent_id_ in ("calendar", "numeric")]
    dates += [doc[start:end] for label, start, end in matches if label == "DATE"]
    for date in dates:
        if any(_reaches(doc, cue_end, date.start) for cue_end in cue_ends):
            year = patterns.YEAR_AFTER_DATE.match(doc.text, date.end_char)
            yield _span("DOB", doc.text, date.start_char, year.end() if year else date.end_char)


def _reaches(doc: Doc, cue_end: int, date_start: int) -> bool:
    """A birth cue ends shortly before the date, in the same sentence ("née le", "date of birth is the")."""
    between = doc[cue_end:date_start]
    return 0 <= len(between) <= patterns.BIRTH_CUE_REACH and not any(
        token.text in patterns.SENTENCE_END for token in between
    )


def _addresses(doc: Doc, anchors: Matcher) -> Iterator[PiiSpan]:
    for match_id, start, end in anchors(doc):
        if doc.vocab.strings[match_id] == "ADDRESS_fr":
            end = _street_name_end(doc, end)
        end_char = doc[end - 1].idx + len(doc[end - 1])
        if postcode := patterns.POSTCODE_AFTER.match(doc.text, end_char):
            end_char = postcode.end()
        yield _span("ADDRESS", doc.text, doc[start].idx, end_char)


def _street_name_end(doc: Doc, index: int) -> int:
    """End of the French street name after its type: "rue [de la Paix]", "avenue [Jean Jaurès]"."""
    end, words = index, 0
    while index < len(doc) and words < 6:
        token = doc[index]
        if token.lower_ in patterns.STREET_PARTICLES or (token.text == "-" and not doc[index - 1].whitespace_):
            index += 1  # kept only if a word follows
        elif _is_name_word(token.text) or token.like_num or (words == 0 and token.is_alpha and not token.is_stop):
            words, index = words + 1, index + 1
            end = index
        else:
            break
    return end


def _names(doc: Doc, cues: Matcher) -> Iterator[PiiSpan]:
    for match_id, start, end in cues(doc):
        label = doc.vocab.strings[match_id]
        if label == "BEFORE":  # "Jennifer Lopez here": the capitalised words before the cue word
            words = [i for i in range(start, end) if doc[i].is_title]
            while words and doc[words[0]].lower_ in patterns.NOT_NAMES:
                words.pop(0)
            if words:
                yield _span("NAME", doc.text, doc[words[0]].idx, doc[words[-1]].idx + len(doc[words[-1]]))
        else:
            yield from _name_after_cue(doc, doc[start:end], titled=label == "TITLE")


def _name_after_cue(doc: Doc, cue: Span, titled: bool) -> Iterator[PiiSpan]:
    index = cue.end
    while index < len(doc) and doc[index].lower_ in patterns.TITLES:
        index, titled = index + 1, True
    cue_text = " ".join(token.lower_ for token in cue)
    words = _name_words(doc, index) or _lower_case_name(doc, index, cue_text)
    if not words or any(doc[i].lower_ in patterns.STREET_TYPES_EN for i in words):
        return
    if cue_text in patterns.WEAK_NAME_CUES and not titled and not _ends_introduction(doc, words[-1] + 1):
        return
    name = doc[index : words[-1] + 1]
    yield _span("NAME", doc.text, name.start_char, name.end_char)
    yield from _name_said_again(doc, name, {doc[i].lower_ for i in words})


def _lower_case_name(doc: Doc, index: int, cue_text: str) -> list[int]:
    """ "je m'appelle jean dupont": after the strongest cues, up to two plain words that end the clause."""
    if not any(cue_text.endswith(cue) for cue in patterns.LOWER_CASE_NAME_CUES):
        return []
    words: list[int] = []
    while index < len(doc) and len(words) < 2 and doc[index].is_alpha and not doc[index].is_stop:
        if doc[index].lower_ in patterns.NOT_NAMES:
            return []
        words, index = [*words, index], index + 1
    ends_clause = index >= len(doc) or doc[index].is_punct or doc[index].lower_ in patterns.CLAUSE_ENDS
    return words if ends_clause else []


def _ends_introduction(doc: Doc, index: int) -> bool:
    """After a weak cue ("I'm", "ici", "this is") a name ends the clause: "I'm Sarah, ...", "X speaking"."""
    return index >= len(doc) or doc[index].is_punct or doc[index].lower_ in patterns.NAME_AFTER


def _name_said_again(doc: Doc, name: Span, name_words: set[str]) -> Iterator[PiiSpan]:
    """What follows a name and repeats it: spelled out ("Nguyen, N G U Y E N") or in full ("David, David Jones")."""
    if spelled := patterns.SPELLED_LETTERS.match(doc.text, name.end_char):
        yield _span("NAME", doc.text, *spelled.span(1))
        return
    if name.end < len(doc) and doc[name.end].text == ",":
        again = _name_words(doc, name.end + 1)
        if again and any(doc[i].lower_ in name_words for i in again):
            yield _span("NAME", doc.text, doc[again[0]].idx, doc[again[-1]].idx + len(doc[again[-1]]))


def _name_words(doc: Doc, index: int) -> list[int]:
    """Token indices of the capitalised name from `index` on: "Jean-Pierre Dupont", "Da Silva", "O'Neill"."""
    words: list[int] = []
    while index < len(doc) and len(words) < 4:
        token = doc[index]
        if _is_name_word(token.text) and token.lower_ not in patterns.NOT_NAMES:
            words.append(index)
        elif not (words and _joins_name(doc, index)):
            break
        index += 1
    return words


def _joins_name(doc: Doc, index: int) -> bool:
    """A hyphen inside a name ("Dubois-Lambert") or a particle before its next part ("Marie de Castro")."""
    token = doc[index]
    if token.text == "-":
        return not doc[index - 1].whitespace_
    following = doc[index + 1] if index + 1 < len(doc) else None
    return token.lower_ in patterns.NAME_PARTICLES and following is not None and _is_name_word(following.text)


def _is_name_word(word: str) -> bool:
    return len(word) > 1 and word[0].isupper() and patterns.NAME_WORD.fullmatch(word) is not None


# --- logs ------------------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Redacts each log record: the message is formatted with its arguments, redacted, and the arguments
    cleared; an exception's traceback text is redacted too. Never drops a record. A record already
    redacted (the filter sits on a logger and on its handlers) is passed through."""

    def __init__(self, redactor: Redactor | None = None, language: str | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()
        self.language = language
        self._busy = threading.local()  # whatever the redactor itself logs is not redacted again

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "pii_redacted", False) or getattr(self._busy, "active", False):
            return True
        self._busy.active = True
        try:
            self._redact(record)
        finally:
            self._busy.active = False
        record.pii_redacted = True
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # arguments that do not fit the format: keep both, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redactor.redact(message, self.language), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text, self.language)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info, self.language)


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Redact what `logger` (the root logger by default) writes: the filter goes on the logger itself (its
    own records) and on each of its handlers (records propagated from child loggers). Installing twice
    does nothing more. A handler added later needs `handler.addFilter(filter)`."""
    target = logger or logging.getLogger()
    existing = [f for f in target.filters if isinstance(f, RedactingFilter)]
    redacting = existing[0] if existing else RedactingFilter()
    for filterer in (target, *target.handlers):
        if not any(isinstance(f, RedactingFilter) for f in filterer.filters):
            filterer.addFilter(redacting)
    return redacting
