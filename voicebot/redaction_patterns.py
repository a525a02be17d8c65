"""What the PII redactor looks for: check-digit validators, regular expressions for written numbers and
e-mails, word lists and spaCy Matcher patterns for the cue phrases (names, birth dates, addresses).

Used by `voicebot.redaction`; kept apart so that module stays about the detection logic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dialogue.spoken_numbers import number_at, strip_accents

Pattern = list[dict[str, Any]]

# --- validators ---------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn check (payment cards): "4111111111111111" -> True. Non-digits are not allowed."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


IBAN_SHAPE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check; spaces and dashes are ignored: "FR76 3000 6000 0112 3456 7890 189" -> True."""
    compact = re.sub(r"[\s-]", "", iban).upper()
    if not IBAN_SHAPE.match(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


NIR_SHAPE = re.compile(r"^[1-478]\d{2}(0[1-9]|1[0-2]|[2-9]\d)(\d{2}|2[AB])\d{6}\d{2}$")


def nir_valid(nir: str) -> bool:
    """French social security number (NIR): 13 characters + key, key = 97 - (number mod 97); Corsica's
    departments 2A/2B count as 19/18. Spaces are ignored: "1 80 03 2A 123 456 xx"."""
    compact = re.sub(r"\s", "", nir).upper()
    if not NIR_SHAPE.match(compact):
        return False
    number = int(compact[:13].replace("2A", "19").replace("2B", "18"))
    return 97 - number % 97 == int(compact[13:])


# --- phone numbers ------------------------------------------------------------------------------------


def phone_shape(digits: str, international: bool, whole_run: bool, north_american: bool) -> bool:
    """Whether a digit string is a phone number: French/UK national (0 + 9 or 10 digits), international
    (+ or 00, then 8-15 digits) or, when `north_american`, 10 digits or 1 + 10. A number cut out of a
    longer run of digits must start like a national number (0)."""
    if international:
        return 8 <= len(digits) <= 15
    if digits.startswith("00"):
        return 10 <= len(digits) <= 17
    if digits[:1] == "0":
        return len(digits) in (10, 11)
    if not (whole_run and north_american):
        return False
    if len(digits) == 10:
        return digits[0] in "23456789"
    return len(digits) == 11 and digits[0] == "1"


def card_shape(digits: str) -> bool:
    """13-19 digits of a major card network (first digit 2-6) passing the Luhn check."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


# --- regular expressions over the text ----------------------------------------------------------------

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
# Country code (possibly spelled "F R"), check digits, then upper-case groups of letters and digits.
IBAN_START = re.compile(r"(?<![\w-])(?:[A-Za-z]{2}|[A-Z] [A-Z]) ?\d{2}")
IBAN_GROUP = re.compile(r"[ -]?[A-Z0-9]{1,5}(?![a-z])")
# A run of digit groups as Whisper writes a spoken number: "06 12 34 56 78", "06.12.34.56.78",
# "+33 (0)6 ...", "(555) 123-4567", "1 80 03 2A 123 456 78", "178042A00401704".
DIGIT_GROUP = r"(?:[1-478]\d{4}2[AB]\d{8}|2[AB]|\(\d{1,4}\)|\d+)"
DIGIT_SEPARATOR = r"(?: ?\(0\) ?| ?[.-] ?| )"
DIGIT_RUN = re.compile(
    rf"(?<![\w+.,/:-])(?P<prefix>(?:\+ ?|(?i:plus) ))?"
    rf"(?P<body>{DIGIT_GROUP}(?:{DIGIT_SEPARATOR}{DIGIT_GROUP})*)(?![\w/:])"
)
GROUP_IN_RUN = re.compile(DIGIT_GROUP)
# Kept whatever else matches them: case references ("AB-12345", "PA 12345") and tickets ("T-000123").
PROTECTED = re.compile(r"(?<![\w-])(?:(?P<letters>[A-Za-z]{2})[ -]?\d{2} ?\d{3}|[Tt]-? ?\d{6,})(?![\w-])")
UK_POSTCODE = re.compile(r"(?<![\w-])[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}(?![\w-])")
SPOKEN_WORD = re.compile(r"[^\W\d_]+|\d+|\+")
SPOKEN_GAP = re.compile(r"^[\s,-]*$")

# --- word lists ---------------------------------------------------------------------------------------

STREET_TYPES_FR = frozenset(
    str.split(
        """rue avenue av boulevard bd place impasse allée allee chemin route quai cours square passage rond-point
        cité cite résidence residence hameau lieu-dit villa sentier voie promenade esplanade parvis faubourg
        montée montee ruelle traverse lotissement domaine"""
    )
)
STREET_TYPES_EN = frozenset(
    str.split(
        """street st road rd avenue ave lane ln drive close court way place crescent terrace square boulevard
        grove gardens hill row mews walk parade highway"""
    )
)
HOUSE_NUMBER_SUFFIXES = frozenset({"bis", "ter", "quater"})
STREET_PARTICLES = frozenset({"de", "du", "des", "la", "le", "les", "l'", "d'", "l’", "d’", "aux", "au", "sur", "sous"})
NAME_PARTICLES = frozenset({"de", "da", "du", "van", "von", "der", "le", "la", "di", "del", "dos", "das", "bin"})
TITLES = frozenset(
    str.split("madame monsieur mademoiselle mme mlle m. mr mr. mrs mrs. ms ms. miss dr dr. docteur maître")
)
# Capitalised words that a name cue may be followed by without a name ("I'm French", "c'est Lundi").
NOT_NAMES = (
    frozenset(
        str.split(
            """i je j' bonjour bonsoir hello hi hey allô allo merci thanks oui non yes no ok okay voilà alors euh
        monday tuesday wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi samedi dimanche
        january february march april may june july august september october november december janvier février
        mars avril mai juin juillet août septembre octobre novembre décembre french english france england
        british american français française anglais anglaise the le la les un une a an sorry pardon excuse désolé
        désolée calling appelle appelais"""
        )
    )
    | TITLES
)
NAME_AFTER = frozenset({"here", "speaking", "from", "calling", "à"})  # "Jennifer Lopez here", "Julien à l'appareil"

# --- spaCy Matcher patterns (token attributes, matched on the blank pipeline's tokens) -----------------

APOSTROPHE_C = {"LOWER": {"IN": ["c'", "c’"]}}
IS_VERB_EN = {"LOWER": {"IN": ["is", "'s", "’s"]}}
IS_VERB_FR: Pattern = [{**APOSTROPHE_C, "OP": "?"}, {"LOWER": "est", "OP": "?"}]
COLON: dict[str, Any] = {"ORTH": {"IN": [":", ","]}, "OP": "?"}


def _words(*words: str) -> Pattern:
    return [{"LOWER": {"IN": word.split("|")}} for word in words]


# Each pattern ends where the name starts; the name itself is read after it (see `voicebot.redaction`).
NAME_CUES: dict[str, list[Pattern]] = {
    "fr": [
        _words("m'|m’|s'|s’", "appelle|appelais"),
        [*_words("nom"), {"LOWER": "de", "OP": "?"}, {"LOWER": "famille", "OP": "?"}, *IS_VERB_FR, COLON],
        [*_words("mon", "prénom|prenom"), *IS_VERB_FR, COLON],
        _words("moi", "c'|c’", "est"),
        _words("ici"),
        _words("je", "suis"),
        _words("de", "la", "part", "de"),
    ],
    "en": [
        [{"LOWER": {"IN": ["name", "surname", "names"]}}, IS_VERB_EN, COLON],
        [{"LOWER": {"IN": ["is", "'s", "’s", "am", "'m", "’m", "are"]}}, *_words("called")],
        [*_words("i"), {"LOWER": {"IN": ["'m", "’m", "am"]}}, {"LOWER": "called", "OP": "?"}],
        _words("this", "is"),
        [*_words("it"), IS_VERB_EN],
        _words("calling", "for"),
    ],
}
# Cues after which only a title or a name said with "here/speaking/from" counts ("it's Monday" is no name).
WEAK_NAME_CUES = frozenset({"ici", "je suis", "this is", "it 's", "it ’s", "i 'm", "i am", "i ’m"})
# Cues after which a name may be written in lower case ("je m'appelle jean dupont"), if it ends the clause.
LOWER_CASE_NAME_CUES = frozenset(
    {"m' appelle", "m’ appelle", "s' appelle", "s’ appelle", "'m called", "’m called", "am called", "is called"}
)
CLAUSE_ENDS = frozenset({"et", "and", "mais", "but"})

BIRTH_CUES: dict[str, list[Pattern]] = {
    "fr": [
        _words("né|née|nés|nées"),
        _words("date", "de", "naissance"),
        _words("anniversaire"),
    ],
    "en": [
        _words("born"),
        _words("date", "of", "birth"),
        _words("birth", "date"),
        _words("dob|d.o.b.|d.o.b"),
        _words("birthday"),
    ],
}
# Dates a birth cue may be followed by that the date EntityRuler does not know: "12 03 1980", "12.03.80".
SPACED_DATES: list[Pattern] = [
    [{"TEXT": {"REGEX": r"^(0?[1-9]|[12]\d|3[01])$"}}, {"TEXT": {"REGEX": r"^(0?[1-9]|1[0-2])$"}},
     {"TEXT": {"REGEX": r"^(19|20)\d\d$"}}],
    [{"TEXT": {"REGEX": r"^(0?[1-9]|[12]\d|3[01])\.(0?[1-9]|1[0-2])\.\d\d$"}}],
]  # fmt: skip
YEAR_AFTER_DATE = re.compile(r",? (?:19|20)\d\d(?!\w)")  # "the 4th of July[, 1976]"
BIRTH_CUE_REACH = 5  # tokens allowed between the cue and the date ("née le", "is the", ":")
SENTENCE_END = frozenset({".", "?", "!", ";"})


def address_anchors(language: str) -> list[Pattern]:
    """House number + street type (FR: "12 bis, rue"; EN: "221B Baker Street", "10 Downing Street")."""
    house = {"TEXT": {"REGEX": r"^\d{1,4}[A-Za-z]?$"}}
    comma = {"ORTH": ",", "OP": "?"}
    if language == "fr":
        suffix = {"LOWER": {"IN": sorted(HOUSE_NUMBER_SUFFIXES)}, "OP": "?"}
        return [[house, suffix, comma, {"LOWER": {"IN": sorted(STREET_TYPES_FR)}}]]
    name_word = {"IS_ALPHA": True, "IS_STOP": False, "OP": "{1,3}"}
    possessive = {"LOWER": {"IN": ["'s", "’s"]}}  # "18 Queen's Road"
    street = {"LOWER": {"IN": sorted(STREET_TYPES_EN)}}
    return [[house, comma, name_word, street], [house, comma, name_word, possessive, street]]


NAMES_BEFORE: list[Pattern] = [  # "Jennifer Lopez here", "Emily Clarke speaking", "Julien Roux à l'appareil"
    [{"IS_TITLE": True, "OP": "{1,3}"}, {"LOWER": {"IN": ["here", "speaking"]}}],
    [{"IS_TITLE": True, "OP": "{1,3}"}, *_words("à", "l'|l’", "appareil")],
]
NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*")
SPELLED_LETTERS = re.compile(r"[,:;]? +((?:[A-Z][ .-]+){2,}[A-Z])(?![\w])")
CITY = r"[A-ZÀ-Ý][\w'’-]*(?: (?:(?:sur|sous|en|le|la|les|de|du) )?[A-ZÀ-Ý][\w'’-]*)*"
UK_POSTCODE_TEXT = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}(?![\w-])"
# What may follow a street: ", 75002 Paris", ", London SW1A 2AA", " LS1 4DY".
POSTCODE_AFTER = re.compile(rf",? ?(?:\d{{5}} {CITY}|(?:[A-Z][a-z]+ (?:[A-Z][a-z]+ )?)?{UK_POSTCODE_TEXT})")
EMAIL_JOIN = r" (?:point|dot|tiret|dash|underscore) "
EMAIL_WORD = r"[\w.-]+"
TOP_LEVEL_DOMAINS = "com|fr|org|net|eu|uk|co|io|info|be|de|ch|gouv"
SPOKEN_EMAIL = re.compile(  # "jean point martin arobase free point fr", "mike dot brown at yahoo dot com"
    rf"(?<![\w.'’-]){EMAIL_WORD}(?:{EMAIL_JOIN}{EMAIL_WORD})* (?:arobase|at) {EMAIL_WORD}(?:{EMAIL_JOIN}{EMAIL_WORD})*"
    rf"(?:\.| (?:point|dot) )(?:{TOP_LEVEL_DOMAINS})(?![\w])",
    re.IGNORECASE,
)


# --- numbers read out in words, as Whisper writes them ---------------------------------------------------

REPEATERS = {"double": 2, "triple": 3}


@dataclass(frozen=True)
class SpokenNumber:
    start: int  # character offsets in the text
    end: int
    digits: str
    in_words: bool  # "douze" rather than "12"


def spoken_number_runs(text: str, language: str) -> Iterator[list[SpokenNumber]]:
    """Numbers said one after the other, with nothing but spaces, commas or dashes between them:
    "zéro six, douze, trente-quatre" -> [0, 6, 12, 34]."""
    run: list[SpokenNumber] = []
    for number in _spoken_numbers(text, language):
        if run and not SPOKEN_GAP.match(text[run[-1].end : number.start]):
            yield run
            run = []
        run.append(number)
    if run:
        yield run


def _spoken_numbers(text: str, language: str) -> Iterator[SpokenNumber]:
    """Each number said in the text, in digits: "soixante-dix-huit" -> "78", "double oh" -> "00"."""
    matches = list(SPOKEN_WORD.finditer(text))
    words = [strip_accents(match.group().lower()) for match in matches]
    index = 0
    while index < len(words):
        first, repeat = index, REPEATERS.get(words[index], 1)
        if repeat > 1 and index + 1 < len(words):
            index += 1
        else:
            repeat = 1
        word = words[index]
        if word.isdigit():
            digits, used = word, 1
        elif language == "en" and word in ("oh", "o") and _zero_in_number(words, index, first):
            digits, used = "0", 1
        elif (number := number_at(words, index, language)) is not None:
            digits, used = str(number[0]), number[1]
        else:
            index += 1
            continue
        last = matches[index + used - 1]
        yield SpokenNumber(matches[first].start(), last.end(), digits * repeat, not word.isdigit())
        index += used


def _zero_in_number(words: list[str], index: int, first: int) -> bool:
    """English "oh" is zero next to other numbers ("oh seven seven", "double oh", "seven oh")."""
    return first < index or _is_number(words, index - 1) or _is_number(words, index + 1)


def _is_number(words: list[str], index: int) -> bool:
    if not 0 <= index < len(words):
        return False
    return words[index].isdigit() or number_at(words, index, "en") is not None
