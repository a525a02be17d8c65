"""City hall knowledge base: YAML files imported into SQLite FTS5, searched with spoken questions.

Matching works on normalised text (see `normalise_terms`): spaCy lemmas (lookup tables from
spacy-lookups-data, so "renewing a passport" and "renew passports" meet), lowercase, accents stripped,
punctuation and stop words dropped. A query term of 4+ characters also matches longer terms that start
with it ("recycl" matches "recycle" and "recycling"). The stored terms carry INDEX_VERSION
(`PRAGMA user_version`): a database indexed by another normaliser is re-indexed when opened.

Relevance gate: FTS5 bm25 ranks the candidates, but bm25 alone cannot say "nothing is relevant", so
a candidate is kept only when it covers at least MIN_COVERAGE of the question's information,
weighting each question term by its inverse document frequency (terms unknown to the KB weigh the
most; a term found only in the entry's answer, not its questions, counts half).
"quelle heure est-il à Tokyo" matches the common term "heure" but not the rare "tokyo": rejected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogue.nlp import strip_accents, words_and_lemmas
from dialogue.state import state_dir

LANGUAGES = ("en", "fr")
MIN_COVERAGE = 0.5
ANSWER_ONLY_CREDIT = 0.5
PREFIX_MIN_LEN = 4
VERB_ENDINGS, VERB_PREFIX_MIN_LEN = ("er", "ir"), 7
INDEX_VERSION = 2  # 0: hand-written stemmer (unversioned); 2: spaCy lemmas
QUESTION_WEIGHT, ANSWER_WEIGHT = 2.0, 1.0
REQUIRED_FIELDS = ("id", "language", "questions", "answer", "source", "updated")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
URL_PATTERN = re.compile(r"https?://|www\.|\.(com|org|fr|net)\b", re.IGNORECASE)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = {
    "en": _word_set(
        """a about am an and any are as at be been but by can could did do does for from get got have has hello
        hi how i if im in is it its just know like me my need of okay ok on or our please so some tell thank thanks
        that the there this to uh um want wanna what whats when where which who why will with would you your
        yours we us they them their should much many don doesn didn isn ll ve re"""
    ),
    "fr": _word_set(
        """a ai as au aux avec avez avoir bonjour c ca ce cela ces cest cette comment combien d dans de des dire
        dois doit du elle en est et etre faire faut il ils j je l la le les leur m ma me merci mes moi mon n ne
        nous on ou par pas peut peux plait pour pourquoi pouvez puis qu quand que quel quelle quelles quels qui
        quoi s sa savoir se ses si sil son suis sur svp t ta te tes toi ton tu un une veux voudrais vous votre
        vos nos notre y euh bah ben alors voila sont ont fait va vont veut veulent voulons voulez
        aimerais aimerions voudrions vouloir pouvoir devoir falloir aimer aller"""
    ),
}


class KbError(ValueError):
    """A knowledge base file is invalid; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class KbEntry:
    id: str
    language: str
    questions: tuple[str, ...]
    answer: str
    source: str
    updated: str  # ISO date


@dataclass(frozen=True)
class KbMatch:
    entry: KbEntry
    score: float  # higher = better


@dataclass(frozen=True)
class ImportReport:
    added: int
    replaced: int
    file: str


# --- normalisation -----------------------------------------------------------------------------


def normalise_terms(text: str, language: str) -> list[str]:
    """Spoken or written text -> matching terms, e.g. "C'est quand le ramassage des encombrants ?"
    -> ["ramassage", "encombrant"]. A word is left out when it or its lemma is a stop word."""
    stop_words = STOP_WORDS[check_language(language)]
    terms: list[str] = []
    for word, lemma in words_and_lemmas(text, language):
        if strip_accents(word).strip("'’") in stop_words:
            continue
        # Single letters are contraction leftovers ("there's", "l'état") or spelled letters: no meaning here.
        terms += [term for term in re.findall(r"[a-z0-9]+", strip_accents(lemma)) if len(term) > 1]
    return [term for term in terms if term not in stop_words]


def _prefix(query_term: str) -> str:
    """What a query term matches the start of: a verb lemma without its ending also finds the nouns made
    from it ("mensualiser" -> "mensualis": "mensualisation"; "register" -> "regist": "registration")."""
    if len(query_term) >= VERB_PREFIX_MIN_LEN and query_term.endswith(VERB_ENDINGS):
        return query_term[:-2]
    return query_term


def _term_matches(query_term: str, entry_term: str) -> bool:
    if len(query_term) >= PREFIX_MIN_LEN:
        return entry_term.startswith(_prefix(query_term))
    return entry_term == query_term


def _fts_query(terms: Iterable[str]) -> str:
    parts = [f'"{_prefix(term)}"*' if len(term) >= PREFIX_MIN_LEN else f'"{term}"' for term in dict.fromkeys(terms)]
    return " OR ".join(parts)


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: use one of {', '.join(LANGUAGES)}")
    return language


# --- validation --------------------------------------------------------------------------------


def _text_field(raw: dict[str, Any], field: str, where: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip():
        raise KbError(f"{where}, field '{field}': must be a non-empty text")
    return " ".join(value.split())


def _date_field(raw: dict[str, Any], where: str) -> str:
    value = raw.get("updated")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    try:
        if not DATE_PATTERN.match(str(value)):
            raise ValueError(value)
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise KbError(f"{where}, field 'updated': {value!r} is not a date YYYY-MM-DD") from None


def _questions_field(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("questions")
    if not isinstance(value, list) or not value or not all(isinstance(q, str) and q.strip() for q in value):
        raise KbError(f"{where}, field 'questions': must be a non-empty list of texts")
    return tuple(" ".join(q.split()) for q in value)


def parse_entry(raw: Any, where: str) -> KbEntry:
    if not isinstance(raw, dict):
        raise KbError(f"{where}: must be a mapping with fields {', '.join(REQUIRED_FIELDS)}")
    for field in REQUIRED_FIELDS:
        if field not in raw:
            raise KbError(f"{where}, field '{field}': missing")
    unknown = sorted(set(raw) - set(REQUIRED_FIELDS))
    if unknown:
        raise KbError(f"{where}, field '{unknown[0]}': unknown field (allowed: {', '.join(REQUIRED_FIELDS)})")
    entry_id = _text_field(raw, "id", where)
    if not ID_PATTERN.match(entry_id):
        raise KbError(f"{where}, field 'id': {entry_id!r} must be lowercase letters, digits, '_' or '-'")
    language = _text_field(raw, "language", where)
    if language not in LANGUAGES:
        raise KbError(f"{where}, field 'language': {language!r} is not one of {', '.join(LANGUAGES)}")
    answer = _text_field(raw, "answer", where)
    if URL_PATTERN.search(answer):
        raise KbError(f"{where}, field 'answer': contains a web address, which TTS cannot read well")
    return KbEntry(
        id=entry_id,
        language=language,
        questions=_questions_field(raw, where),
        answer=answer,
        source=_text_field(raw, "source", where),
        updated=_date_field(raw, where),
    )


class _KbLoader(yaml.SafeLoader):
    """Safe loader that leaves dates as text: PyYAML would raise a bare ValueError on "2026-02-30"
    before we could say which entry is wrong."""


def _date_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(node.value)


_KbLoader.add_constructor("tag:yaml.org,2002:timestamp", _date_as_text)


def load_entries(path: Path) -> list[KbEntry]:
    """Parse and validate a whole KB file; raises KbError on the first problem."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_KbLoader)
    except OSError as error:
        raise KbError(f"{path}: cannot read file ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise KbError(f"{path}: YAML syntax error{line}") from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise KbError(f"{path}, field 'entries': missing; expected 'entries:' with a list of entries")
    entries: list[KbEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(document["entries"], start=1):  # 1-based, as people count
        label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else "?"
        entry = parse_entry(raw, f"{path}, entry {index} (id {label})")
        if (entry.id, entry.language) in seen:
            raise KbError(f"{path}, entry {index} (id {entry.id}), field 'id': duplicate in this file")
        seen.add((entry.id, entry.language))
        entries.append(entry)
    return entries


# --- storage and search ------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT NOT NULL, language TEXT NOT NULL, questions TEXT NOT NULL, answer TEXT NOT NULL,
    source TEXT NOT NULL, updated TEXT NOT NULL, question_terms TEXT NOT NULL, answer_terms TEXT NOT NULL,
    PRIMARY KEY (id, language)
);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(
    id UNINDEXED, language UNINDEXED, questions, answer, tokenize = 'unicode61'
);
"""


class KnowledgeBase:
    """Every call reads the database, so entries imported by another instance are seen at once."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path or state_dir() / "kb.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            if _index_version(conn) != INDEX_VERSION:
                self._reindex(conn)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def import_file(self, path: Path) -> ImportReport:
        entries = load_entries(path)
        added = replaced = 0
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for entry in entries:
                    if self._store(conn, entry):
                        replaced += 1
                    else:
                        added += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ImportReport(added=added, replaced=replaced, file=str(path))

    def _reindex(self, conn: sqlite3.Connection) -> None:
        """Recompute every entry's terms from its stored text (an index from an older normaliser finds nothing)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _index_version(conn) != INDEX_VERSION:  # another process may have done it meanwhile
                rows = conn.execute("SELECT id, language, questions, answer, source, updated FROM entries").fetchall()
                for row in rows:
                    self._store(conn, _entry_from_row(list(row)))
                conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _store(conn: sqlite3.Connection, entry: KbEntry) -> bool:
        """Insert or replace one entry; True when it replaced an existing one."""
        key = (entry.id, entry.language)
        existed = conn.execute("DELETE FROM entries WHERE id = ? AND language = ?", key).rowcount > 0
        conn.execute("DELETE FROM entries_fts WHERE id = ? AND language = ?", key)
        questions_terms = " ".join(normalise_terms(" ".join(entry.questions), entry.language))
        answer_terms = " ".join(normalise_terms(entry.answer, entry.language))
        stored = ("\n".join(entry.questions), entry.answer, entry.source, entry.updated, questions_terms, answer_terms)
        conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*key, *stored))
        conn.execute("INSERT INTO entries_fts VALUES (?, ?, ?, ?)", (*key, questions_terms, answer_terms))
        return existed

    def search(self, question: str, language: str, limit: int = 3) -> list[KbMatch]:
        terms = list(dict.fromkeys(normalise_terms(question, check_language(language))))
        if not terms or limit <= 0:
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT e.id, e.language, e.questions, e.answer, e.source, e.updated, e.question_terms, e.answer_terms,"
                f" -bm25(entries_fts, 0, 0, {QUESTION_WEIGHT}, {ANSWER_WEIGHT})"
                " FROM entries_fts f JOIN entries e ON e.id = f.id AND e.language = f.language"
                " WHERE entries_fts MATCH ? AND f.language = ?",
                (_fts_query(terms), language),
            ).fetchall()
            weights = {term: self._idf(conn, term, language) for term in terms}
        matches = []
        for *fields, question_terms, answer_terms, relevance in rows:
            asked = set(question_terms.split())
            coverage = _coverage(weights, asked, set(answer_terms.split()))
            # Words that only occur in an answer ("open", "now") never make an entry relevant on their own.
            if coverage >= MIN_COVERAGE and any(_term_matches(t, known) for t in weights for known in asked):
                matches.append(KbMatch(entry=_entry_from_row(fields), score=round(coverage * relevance, 4)))
        matches.sort(key=lambda match: match.score, reverse=True)
        return matches[:limit]

    @staticmethod
    def _idf(conn: sqlite3.Connection, term: str, language: str) -> float:
        total, with_term = conn.execute(
            "SELECT (SELECT count(*) FROM entries WHERE language = ?),"
            " (SELECT count(*) FROM entries_fts WHERE entries_fts MATCH ? AND language = ?)",
            (language, _fts_query([term]), language),
        ).fetchone()
        return math.log(1.0 + (total - with_term + 0.5) / (with_term + 0.5))

    def ensure_seeded(self, seed_dir: Path) -> None:
        if self.count() == 0:
            for path in sorted(seed_dir.glob("*.yaml")):
                self.import_file(path)

    def count(self, language: str | None = None) -> int:
        with self._connect() as conn:
            if language is None:
                return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
            return int(conn.execute("SELECT count(*) FROM entries WHERE language = ?", (language,)).fetchone()[0])


def _coverage(weights: dict[str, float], question_terms: set[str], answer_terms: set[str]) -> float:
    """Share of the question's weight found in the entry; a term found only in the answer counts for
    ANSWER_ONLY_CREDIT, so a stray word of an answer ("June") does not make the entry relevant."""
    covered = 0.0
    for term, weight in weights.items():
        if any(_term_matches(term, known) for known in question_terms):
            covered += weight
        elif any(_term_matches(term, known) for known in answer_terms):
            covered += weight * ANSWER_ONLY_CREDIT
    return covered / sum(weights.values())


def _index_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _entry_from_row(fields: list[Any]) -> KbEntry:
    entry_id, language, questions, answer, source, updated = fields
    return KbEntry(entry_id, language, tuple(questions.split("\n")), answer, source, updated)
