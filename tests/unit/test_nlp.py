"""spaCy language processing for the dialogue: lemmas, phone numbers and dates in English and French."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dialogue.kb import load_entries, normalise_terms
from dialogue.nlp import find_dates, find_phone_numbers, lemmas, pipeline
from dialogue.state import DATA_DIR, REPO_ROOT

WEDNESDAY = dt.date(2026, 3, 4)


def test_pipelines_are_blank_with_a_lookup_lemmatizer_and_a_date_ruler() -> None:
    for language in ("en", "fr"):
        nlp = pipeline(language)
        assert nlp.pipe_names == ["lemmatizer", "entity_ruler"]
        assert nlp.get_pipe_config("lemmatizer")["mode"] == "lookup"
        assert nlp.meta["name"] == "pipeline" and nlp.lang == language  # spacy.blank, no trained package
    with pytest.raises(ValueError, match="'de'"):
        pipeline("de")


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("en", "Renewing passports", ["renew", "passport"]),
        ("en", "The children went to the libraries", ["the", "child", "go", "to", "the", "library"]),
        ("fr", "Les horaires des cartes d'identité", ["le", "horaire", "un", "carte", "de", "identité"]),
        ("fr", "Les poubelles passent demain", ["le", "poubelle", "passer", "demain"]),
    ],
)
def test_lemmas(language: str, text: str, expected: list[str]) -> None:
    assert lemmas(text, language) == expected


def test_pipelines_build_without_the_network() -> None:
    """Lemma tables come from the installed spacy-lookups-data package: no socket is ever opened."""
    script = (
        "import socket\n"
        "def refuse(*args, **kwargs): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from dialogue.nlp import find_dates, lemmas\n"
        "print(lemmas('renewing passports', 'en'), lemmas('les horaires', 'fr'), len(find_dates('demain', 'fr')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "['renew', 'passport'] ['le', 'horaire'] 1"


def test_the_rasa_env_gives_the_kb_the_same_terms() -> None:
    """`voicebot kb import` indexes in the product venv, the action server searches in the Rasa venv."""
    texts = {
        language: [text for path in sorted((DATA_DIR / "kb").glob(f"*.{language}.yaml"))
                   for entry in load_entries(path) for text in (*entry.questions, entry.answer)]
        for language in ("en", "fr")
    }  # fmt: skip
    script = (
        "import json, sys\n"
        "from dialogue.kb import normalise_terms\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps({lang: [normalise_terms(t, lang) for t in items] for lang, items in texts.items()}))\n"
    )
    rasa_python = Path(os.environ.get("VOICEBOT_RASA_VENV", str(REPO_ROOT / ".venv-rasa"))) / "bin" / "python"
    done = subprocess.run(
        [str(rasa_python), "-c", script], input=json.dumps(texts), capture_output=True, text=True, cwd=REPO_ROOT,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    here = {language: [normalise_terms(text, language) for text in items] for language, items in texts.items()}
    assert json.loads(done.stdout) == here
    assert sum(len(items) for items in texts.values()) > 100


PHONE_NUMBERS = [
    ("en", "my number is 07700 900123", ["07700900123"]),
    ("en", "call me back at (555) 123-4567 please", ["5551234567"]),
    ("en", "it's oh seven seven oh oh, nine oh oh one two three", ["07700900123"]),
    ("en", "five five five, one two three, four five six seven", ["5551234567"]),
    ("en", "+44 7700 900123", ["+447700900123"]),
    ("en", "double oh four four seven seven oh oh nine oh oh one two three", ["00447700900123"]),
    ("fr", "mon numéro c'est le 06 12 34 56 78", ["0612345678"]),
    ("fr", "zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit", ["0612345678"]),
    ("fr", "06.12.34.56.78 ou sinon le 01-23-45-67-89", ["0612345678", "0123456789"]),
    ("fr", "+33 6 12 34 56 78", ["+33612345678"]),
    ("fr", "zéro un quarante-deux, quatre-vingt-dix-neuf, zéro zéro, onze", ["0142990011"]),
]
NOT_PHONE_NUMBERS = [
    ("en", "my reference is PA 12345"),
    ("en", "I called 3 times on March 15th 2026"),
    ("en", "it is 1 2 3 4 5 6 7 8 9"),  # nine digits
    ("fr", "le 15/03/2026 à 10 h 30"),
    ("fr", "appelez le 112 ou le 15"),
    ("fr", ""),
]


@pytest.mark.parametrize(("language", "text", "expected"), PHONE_NUMBERS)
def test_phone_numbers_written_or_read_out(language: str, text: str, expected: list[str]) -> None:
    assert find_phone_numbers(text, language) == expected


@pytest.mark.parametrize(("language", "text"), NOT_PHONE_NUMBERS)
def test_no_phone_number(language: str, text: str) -> None:
    assert find_phone_numbers(text, language) == []


DATES = [  # said on Wednesday 4 March 2026, about the future
    ("en", "call me back on March 15th", [("March 15th", "2026-03-15")]),
    ("en", "on the 1st of May 2027 or the fifteenth of June", [("1st of May 2027", "2027-05-01"),
                                                               ("fifteenth of June", "2026-06-15")]),
    ("en", "March the twenty-first, 2026", [("March the twenty-first, 2026", "2026-03-21")]),
    ("en", "15/03/2026, 03/25/2026 and 2026-04-01", [("15/03/2026", "2026-03-15"), ("03/25/2026", "2026-03-25"),
                                                     ("2026-04-01", "2026-04-01")]),
    ("en", "tomorrow or the day after tomorrow", [("tomorrow", "2026-03-05"), ("day after tomorrow", "2026-03-06")]),
    ("en", "on Monday or on Wednesday", [("Monday", "2026-03-09"), ("Wednesday", "2026-03-11")]),
    ("en", "January 10", [("January 10", "2027-01-10")]),  # already past this year: the next one
    ("en", "on 31 February", [("31 February", None)]),
    ("fr", "rappelez-moi le 15 mars", [("15 mars", "2026-03-15")]),
    ("fr", "le 1er mai 2026 ou le vingt et un juin", [("1er mai 2026", "2026-05-01"),
                                                      ("vingt et un juin", "2026-06-21")]),
    ("fr", "le quinze avril, le trente-et-un décembre", [("quinze avril", "2026-04-15"),
                                                         ("trente-et-un décembre", "2026-12-31")]),
    ("fr", "demain, après-demain ou après demain", [("demain", "2026-03-05"), ("après-demain", "2026-03-06"),
                                                    ("après demain", "2026-03-06")]),
    ("fr", "aujourd’hui ou lundi prochain", [("aujourd’hui", "2026-03-04"), ("lundi", "2026-03-09")]),
    ("fr", "le 15/03/26 ou le 15.03.2026", [("15/03/26", "2026-03-15"), ("15.03.2026", "2026-03-15")]),
    ("fr", "il est 10.30, mon numéro est 06 12 34 56 78", []),
]  # fmt: skip


@pytest.mark.parametrize(("language", "text", "expected"), DATES)
def test_dates_resolve_against_the_reference_day(
    language: str, text: str, expected: list[tuple[str, str | None]]
) -> None:
    assert [(found.text, found.iso) for found in find_dates(text, language, today=WEDNESDAY)] == expected


@pytest.mark.parametrize(
    ("language", "text", "iso"),
    [("en", "dark since Monday", "2026-03-02"), ("en", "since Wednesday", "2026-02-25"),
     ("en", "since December 24th", "2025-12-24"), ("fr", "depuis le 2 mars", "2026-03-02"),
     ("fr", "depuis hier", "2026-03-03"), ("fr", "depuis le 10 mars", "2025-03-10")],
)  # fmt: skip
def test_dates_about_the_past(language: str, text: str, iso: str) -> None:
    assert [found.iso for found in find_dates(text, language, today=WEDNESDAY, past=True)] == [iso]
