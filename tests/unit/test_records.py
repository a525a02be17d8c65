"""Tickets and feedback in SQLite; ratings and categories understood from what callers say."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dialogue.records import (
    TICKET_CATEGORIES,
    FeedbackStore,
    TicketStore,
    normalise_category,
    parse_rating,
)


def test_ticket_numbers_are_sequential_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite"
    first = TicketStore(db).create("road", "rue de la Paix, 12", "nid-de-poule", "fr", "call-1")
    second = TicketStore(db).create("waste", "Station Road", "bins not emptied", "en", "call-2")
    assert (first.number, second.number) == ("T-000001", "T-000002")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tickets WHERE id = 2")
    assert TicketStore(db).create("noise", "Main Street", "loud music", "en", "call-3").number == "T-000003"
    assert TicketStore(db).get("T-000002") is None


def test_ticket_roundtrip(tmp_path: Path) -> None:
    store = TicketStore(tmp_path / "records.sqlite")
    ticket = store.create("street_light", "  avenue Foch ", " lampadaire éteint ", "fr", "call-9")
    assert (ticket.location, ticket.description) == ("avenue Foch", "lampadaire éteint")
    assert ticket.created.endswith("+00:00")
    assert store.get(ticket.number) == ticket
    assert store.get(ticket.number.lower()) == ticket
    assert store.get("T-999999") is None
    assert store.get("ticket one") is None


def test_ticket_refuses_unknown_category_and_language(tmp_path: Path) -> None:
    store = TicketStore(tmp_path / "records.sqlite")
    with pytest.raises(ValueError, match="'graffiti'"):
        store.create("graffiti", "here", "paint", "en", "call-1")
    with pytest.raises(ValueError, match="'de'"):
        store.create("other", "hier", "etwas", "de", "call-1")


def test_database_uses_wal_and_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path / "state"))
    store = TicketStore()
    assert store.db_path == tmp_path / "state" / "records.sqlite"
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_feedback_is_stored_in_order(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite"
    FeedbackStore(db).add("call-1", 5, "en")
    FeedbackStore(db).add("call-2", 2, "fr")
    assert FeedbackStore(db).ratings() == [("call-1", 5), ("call-2", 2)]


@pytest.mark.parametrize("rating", [0, 6, -1, True, 3.5, "4"])
def test_feedback_refuses_ratings_outside_one_to_five(tmp_path: Path, rating: object) -> None:
    store = FeedbackStore(tmp_path / "records.sqlite")
    with pytest.raises(ValueError, match="1 to 5"):
        store.add("call-1", rating, "en")  # type: ignore[arg-type]
    assert store.ratings() == []


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [("5", "en", 5), ("4", "fr", 4), ("five", "en", 5), ("Five.", "en", 5), ("cinq", "fr", 5),
     ("four out of five", "en", 4), ("I'd give it a 3", "en", 3), ("three stars", "en", 3),
     ("8 out of 10", "en", 4), ("quatre sur cinq", "fr", 4), ("8 sur 10", "fr", 4), ("je mets deux", "fr", 2),
     ("une note de quatre", "fr", 4), ("une étoile", "fr", 1), ("one", "en", 1),
     ("three or four", "en", None), ("seven", "en", None), ("zero", "en", None), ("great service", "en", None),
     ("", "fr", None), ("six sur cinq", "fr", None)],
)  # fmt: skip
def test_parse_rating(text: str, language: str, expected: int | None) -> None:
    assert parse_rating(text, language) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("waste", "waste"), ("the bins were not emptied", "waste"), ("il y a des poubelles renversées", "waste"),
     ("des déchets partout", "waste"), ("dépôt sauvage", "waste"), ("rubbish", "waste"),
     ("street light", "street_light"), ("the streetlights are out", "street_light"),
     ("le lampadaire ne marche plus", "street_light"), ("éclairage public", "street_light"),
     ("pothole", "road"), ("a hole in the road", "road"), ("nid-de-poule", "road"), ("des nids de poule", "road"),
     ("la chaussée est abîmée", "road"), ("noise", "noise"), ("les voisins font du bruit", "noise"),
     ("other", "other"), ("autre chose", "other"), ("hello", None), ("", None),
     ("pothole next to the bins", "road")],
)  # fmt: skip
def test_normalise_category(text: str, expected: str | None) -> None:
    assert normalise_category(text) == expected


def test_every_category_synonym_is_recognised() -> None:
    for category, synonyms in TICKET_CATEGORIES.items():
        for synonym in synonyms:
            assert normalise_category(synonym) == category, synonym
