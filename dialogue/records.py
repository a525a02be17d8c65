"""What the assistant writes down: problem reports (tickets) and end-of-call ratings, in SQLite (WAL)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from dialogue.state import open_database, state_dir

LANGUAGES = ("en", "fr")
TICKET_NUMBER_RE = re.compile(r"^T-(\d{6,})$", re.IGNORECASE)

# Canonical category -> what callers say, in English and French (matched without accents, plural "s" allowed).
TICKET_CATEGORIES: dict[str, tuple[str, ...]] = {
    "waste": ("waste", "rubbish", "garbage", "trash", "bin", "litter", "fly tipping", "dumping", "recycling",
              "dechet", "poubelle", "ordure", "encombrant", "depot sauvage", "detritus"),
    "street_light": ("street light", "streetlight", "street lamp", "lamp post", "lamppost", "lighting", "light",
                     "lampadaire", "eclairage", "reverbere", "lumiere"),
    "road": ("road", "pothole", "pot hole", "pavement", "sidewalk", "hole", "route", "nid de poule", "chaussee",
             "trottoir", "trou", "voirie", "bitume"),
    "noise": ("noise", "noisy", "loud", "bruit", "bruyant", "tapage", "nuisance sonore"),
    "other": ("other", "something else", "anything else", "autre", "autre chose"),
}  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, category TEXT NOT NULL, location TEXT NOT NULL,
    description TEXT NOT NULL, language TEXT NOT NULL, call_id TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL, rating INTEGER NOT NULL,
    language TEXT NOT NULL, created TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Ticket:
    number: str  # "T-000123"
    category: str
    location: str
    description: str
    language: str
    call_id: str
    created: str  # ISO timestamp, UTC


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (dt.UTC needs 3.11; Rasa runs 3.10)


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: use en or fr")


class _RecordsDb:
    """Opens a short connection per operation, so one file can serve the CLI and the action server."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path or state_dir() / "records.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with open_database(self.db_path) as db:
            db.conn.execute("PRAGMA journal_mode=WAL")
            db.conn.executescript(SCHEMA)


class TicketStore(_RecordsDb):
    def create(self, category: str, location: str, description: str, language: str, call_id: str) -> Ticket:
        """Store a report; numbers are sequential and never reused (AUTOINCREMENT), even after a delete."""
        if category not in TICKET_CATEGORIES:
            raise ValueError(f"unknown ticket category {category!r}: use one of {', '.join(TICKET_CATEGORIES)}")
        _check_language(language)
        row = {"category": category, "location": location.strip(), "description": description.strip(),
               "language": language, "call_id": call_id, "created": _now()}  # fmt: skip
        with open_database(self.db_path) as db:
            row_id = db.table("tickets").insert(row).last_rowid
        if row_id is None:
            raise RuntimeError(f"{self.db_path}: the ticket was not stored")
        return Ticket(number=f"T-{row_id:06d}", **row)

    def get(self, number: str) -> Ticket | None:
        match = TICKET_NUMBER_RE.match(number.strip())
        if match is None:
            return None
        with open_database(self.db_path) as db:
            rows = list(db.table("tickets").rows_where("id = ?", [int(match.group(1))]))
        if not rows:
            return None
        row = rows[0]
        return Ticket(f"T-{row.pop('id'):06d}", **row)


class FeedbackStore(_RecordsDb):
    def add(self, call_id: str, rating: int, language: str) -> None:
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ValueError(f"rating must be a whole number from 1 to 5, got {rating!r}")
        _check_language(language)
        with open_database(self.db_path) as db:
            db.table("feedback").insert({"call_id": call_id, "rating": rating, "language": language, "created": _now()})

    def ratings(self) -> list[tuple[str, int]]:
        """(call_id, rating) in the order they were given."""
        with open_database(self.db_path) as db:
            return [(row["call_id"], row["rating"]) for row in db.table("feedback").rows_where(order_by="id")]


# --- understanding what the caller said -------------------------------------------------------

NUMBER_WORDS = {
    "en": {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10},
    "fr": {"zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
           "huit": 8, "neuf": 9, "dix": 10},
}  # fmt: skip
OUT_OF = {"en": ("out of",), "fr": ("sur",)}
WEAK_NUMBERS = {"un", "une", "one"}  # also articles: "une note de quatre", "one of the best"


def _plain_words(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return re.findall(r"[a-z]+|\d+", plain)


def parse_rating(text: str, language: str) -> int | None:
    """Caller's answer "5", "five", "cinq", "four out of five", "8 sur 10", keypad "4" -> 1..5; None when unclear."""
    _check_language(language)
    words = _plain_words(text)
    joined = " ".join(words)
    for marker in OUT_OF[language]:
        found = re.search(rf"(\w+) {marker} (\w+)", joined)
        if found:
            score, scale = (_number(word, language) for word in found.groups())
            if score is not None and scale in (5, 10) and 0 < score <= scale:
                return max(1, round(score * 5 / scale + 1e-9)) if scale == 10 else score
    numbers = [(word, _number(word, language)) for word in words]
    strong = [value for word, value in numbers if value is not None and word not in WEAK_NUMBERS]
    weak = [value for word, value in numbers if value is not None and word in WEAK_NUMBERS]
    candidates = strong or weak
    if len(set(candidates)) != 1 or not 1 <= candidates[0] <= 5:
        return None
    return candidates[0]


def _number(word: str, language: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS[language].get(word)


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith(("s", "x")) else word


def _spoken_form(text: str) -> str:
    return " ".join(_singular(word) for word in _plain_words(text))


def normalise_category(text: str) -> str | None:
    """What the caller said ("il y a des poubelles renversées", "broken streetlight") -> canonical category.
    The synonym said first wins; "other" only when nothing more specific was said."""
    spoken = _spoken_form(text)
    best: tuple[int, str] | None = None
    for category, synonyms in TICKET_CATEGORIES.items():
        if category == "other":
            continue
        for synonym in synonyms:
            found = re.search(rf"\b{_spoken_form(synonym)}\b", spoken)
            if found and (best is None or found.start() < best[0]):
                best = (found.start(), category)
    if best is not None:
        return best[1]
    if any(re.search(rf"\b{_spoken_form(synonym)}\b", spoken) for synonym in TICKET_CATEGORIES["other"]):
        return "other"
    return None
