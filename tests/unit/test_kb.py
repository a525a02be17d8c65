"""Knowledge base: the shipped city hall content, spoken-question retrieval, safe imports."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from dialogue.kb import INDEX_VERSION, KbError, KnowledgeBase, normalise_terms
from dialogue.state import DATA_DIR

SEED_DIR = DATA_DIR / "kb"

SPOKEN_QUESTIONS = [
    ("en", "when do you pick up the recycling", "waste_collection"),
    ("en", "when are the bins collected", "waste_collection"),
    ("en", "what time do you open on saturday", "opening_hours"),
    ("en", "hello I would like to know how to renew my passport please", "passport_id_card"),
    ("en", "how much is an ID card", "passport_id_card"),
    ("en", "I need my birth certificate", "civil_status_certificates"),
    ("en", "when is the bulky waste collection", "bulky_waste"),
    ("en", "where's the dump", "recycling_centre"),
    ("en", "recycling centre opening hours", "recycling_centre"),
    ("en", "when do I pay property tax", "property_tax"),
    ("en", "can I pay monthly", "tax_monthly_payment"),
    ("en", "there's a broken street light", "street_problem_report"),
    ("en", "there is a pothole on my road", "street_problem_report"),
    ("en", "how do I register to vote", "electoral_registration"),
    ("en", "I moved house", "address_change"),
    ("en", "parking permit price", "parking_permit"),
    ("en", "I lost my keys", "lost_and_found"),
    ("en", "is there wheelchair access", "accessibility"),
    ("en", "we'd like to get married in june", "marriage_booking"),  # not the tax entry, whose answer says "June"
    ("fr", "c'est quand le ramassage des encombrants", "bulky_waste"),
    ("fr", "quels sont vos horaires", "opening_hours"),
    ("fr", "à quelle heure ouvre la mairie samedi", "opening_hours"),
    ("fr", "je voudrais faire une carte d'identité", "passport_id_card"),
    ("fr", "il me faut un acte de naissance", "civil_status_certificates"),
    ("fr", "quand passent les poubelles", "waste_collection"),
    ("fr", "horaires de la déchetterie", "recycling_centre"),
    ("fr", "quand payer la taxe foncière", "property_tax"),
    ("fr", "je veux mensualiser mes impôts", "tax_monthly_payment"),
    ("fr", "le lampadaire de ma rue est cassé", "street_problem_report"),
    ("fr", "il y a un nid de poule", "street_problem_report"),
    ("fr", "on veut se marier", "marriage_booking"),
    ("fr", "comment voter", "electoral_registration"),
    ("fr", "je déménage", "address_change"),
    ("fr", "macaron stationnement", "parking_permit"),
    ("fr", "j'ai perdu mes clés", "lost_and_found"),
    ("fr", "accès fauteuil roulant", "accessibility"),
]

UNRELATED_QUESTIONS = [
    ("en", "what's the weather"),
    ("en", "can you order a pizza"),
    ("en", "who won the football match"),
    ("en", "what time is it in tokyo"),
    ("en", "is it open in june"),  # "june" only occurs in the tax answer: must not answer that
    ("en", "um"),
    ("fr", "quelle heure est-il à Tokyo"),
    ("fr", "quel temps fait-il demain"),
    ("fr", "tu peux me commander une pizza"),
    ("fr", "qui a gagné le match"),
]

VALID_ENTRY = """  - id: {id}
    language: {language}
    questions: [{question}]
    answer: {answer}
    source: Test handbook, section 9.9
    updated: {updated}
"""


def write_kb(path: Path, *entries: str) -> Path:
    path.write_text("entries:\n" + "".join(entries), encoding="utf-8")
    return path


def entry(
    id: str = "ferry_times",
    language: str = "en",
    question: str = "when does the river ferry leave",
    answer: str = "The river ferry leaves every hour from the harbour.",
    updated: str = "2026-03-01",
) -> str:
    return VALID_ENTRY.format(id=id, language=language, question=question, answer=answer, updated=updated)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path_factory.mktemp("kb") / "kb.sqlite")
    kb.ensure_seeded(SEED_DIR)
    return kb


def test_seed_has_the_same_topics_in_both_languages(seeded: KnowledgeBase) -> None:
    assert seeded.count("en") == seeded.count("fr") == 15
    assert seeded.count() == 30
    ids = {language: {kb_id for _, kb_id in _ids(seeded, language)} for language in ("en", "fr")}
    assert ids["en"] == ids["fr"]


def _ids(kb: KnowledgeBase, language: str) -> list[tuple[str, str]]:
    with sqlite3.connect(kb.db_path) as conn:
        rows = conn.execute("SELECT language, id FROM entries WHERE language = ?", (language,)).fetchall()
    return [(row[0], row[1]) for row in rows]


@pytest.mark.parametrize("path", sorted(SEED_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_seed_answers_are_speakable(path: Path) -> None:
    from dialogue.kb import load_entries

    for kb_entry in load_entries(path):
        sentences = [part for part in re.split(r"[.!?](?:\s|$)", kb_entry.answer) if part.strip()]
        assert 1 <= len(sentences) <= 3, kb_entry.id
        assert not re.search(r"\d", kb_entry.answer), f"{kb_entry.id}: write numbers as words for TTS"
        assert "http" not in kb_entry.answer and "www" not in kb_entry.answer
        assert kb_entry.source and re.match(r"^\d{4}-\d{2}-\d{2}$", kb_entry.updated)


@pytest.mark.parametrize(("language", "question", "expected"), SPOKEN_QUESTIONS)
def test_spoken_question_finds_the_right_entry(
    seeded: KnowledgeBase, language: str, question: str, expected: str
) -> None:
    matches = seeded.search(question, language)
    assert matches, f"nothing found for {question!r}"
    assert matches[0].entry.id == expected
    assert matches[0].entry.language == language
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


@pytest.mark.parametrize(("language", "question"), UNRELATED_QUESTIONS)
def test_unrelated_question_finds_nothing(seeded: KnowledgeBase, language: str, question: str) -> None:
    assert seeded.search(question, language) == []


def test_search_respects_limit_and_language(seeded: KnowledgeBase) -> None:
    assert len(seeded.search("property tax payment", "en", limit=1)) == 1
    assert seeded.search("property tax payment", "en", limit=0) == []
    with pytest.raises(ValueError, match="de"):
        seeded.search("Öffnungszeiten", "de")


def test_normaliser_gives_lemmas_without_accents_or_stop_words() -> None:
    assert normalise_terms("C'est quand le ramassage des encombrants ?", "fr") == ["ramassage", "encombrant"]
    assert normalise_terms("Les paiements, l'éclairage", "fr") == ["paiement", "eclairage"]
    assert normalise_terms("When do you pick up the recycling bins?", "en") == ["pick", "up", "recycle", "bin"]
    assert normalise_terms("opening, opens, opened", "en") == ["open", "open", "open"]


SAME_LEMMAS = [
    ("en", "renew passports", "renewing a passport"),
    ("en", "library cards for children", "a library card for a child"),
    ("en", "the bins were emptied", "is the bin emptied"),
    ("fr", "horaires", "horaire"),
    ("fr", "cartes d'identité", "carte d’identité"),
    ("fr", "une nouvelle carte", "un nouveau carte"),
    ("fr", "les animaux", "un animal"),
]


@pytest.mark.parametrize(("language", "said", "written"), SAME_LEMMAS)
def test_inflected_forms_share_their_lemmas(language: str, said: str, written: str) -> None:
    assert normalise_terms(said, language) == normalise_terms(written, language)


LEMMA_ENTRIES = [
    entry(id="passport_renewal", question="how do I renew my passport", answer="Book a slot at the passport desk."),
    entry(id="library_children", question="can a child get a library card", answer="Yes, it is free until eighteen."),
    entry(id="horaire_piscine", language="fr", question="quel est l'horaire de la piscine",
          answer="La piscine ouvre à neuf heures."),
    entry(id="carte_identite", language="fr", question="faire une carte d'identité pour mon fils",
          answer="Prenez rendez-vous au guichet."),
]  # fmt: skip
LEMMA_QUESTIONS = [
    ("en", "renewing passports", "passport_renewal"),
    ("en", "library cards for children", "library_children"),
    ("fr", "les horaires de la piscine", "horaire_piscine"),
    ("fr", "les cartes d’identité de mes fils", "carte_identite"),
]


@pytest.mark.parametrize(("language", "question", "expected"), LEMMA_QUESTIONS)
def test_search_matches_other_forms_of_the_same_words(
    tmp_path: Path, language: str, question: str, expected: str
) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    kb.import_file(write_kb(tmp_path / "lemmas.yaml", *LEMMA_ENTRIES))
    assert [match.entry.id for match in kb.search(question, language)][:1] == [expected]


def test_an_index_from_an_older_normaliser_is_rebuilt_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "kb.sqlite"
    KnowledgeBase(db).import_file(write_kb(tmp_path / "ferry.yaml", entry()))
    with sqlite3.connect(db) as conn:  # as the hand-written stemmer stored it, before the index was versioned
        conn.execute("UPDATE entries SET question_terms = 'riv ferry leav', answer_terms = 'riv ferry leav'")
        conn.execute("UPDATE entries_fts SET questions = 'riv ferry leav', answer = 'riv ferry leav'")
        conn.execute("PRAGMA user_version = 0")
    assert KnowledgeBase(db).search("when is the river ferry leaving", "en")[0].entry.id == "ferry_times"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == INDEX_VERSION
        assert conn.execute("SELECT question_terms FROM entries").fetchone()[0] == "river ferry leave"


def test_import_is_seen_at_once_by_another_instance(tmp_path: Path) -> None:
    db = tmp_path / "kb.sqlite"
    reader, writer = KnowledgeBase(db), KnowledgeBase(db)
    assert reader.search("when does the river ferry leave", "en") == []
    report = writer.import_file(write_kb(tmp_path / "ferry.yaml", entry()))
    assert (report.added, report.replaced, report.file) == (1, 0, str(tmp_path / "ferry.yaml"))
    assert reader.search("river ferry", "en")[0].entry.answer.startswith("The river ferry leaves every hour")

    changed = entry(answer="The river ferry leaves every thirty minutes.", updated="2026-04-01")
    report = writer.import_file(write_kb(tmp_path / "ferry2.yaml", changed))
    assert (report.added, report.replaced) == (0, 1)
    found = reader.search("river ferry", "en")
    assert [(m.entry.answer, m.entry.updated) for m in found] == [
        ("The river ferry leaves every thirty minutes.", "2026-04-01")
    ]
    assert reader.count() == 1


def test_ensure_seeded_only_fills_an_empty_database(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    kb.import_file(write_kb(tmp_path / "ferry.yaml", entry()))
    kb.ensure_seeded(SEED_DIR)
    assert kb.count() == 1


NO_SOURCE = entry().replace("    source: Test handbook, section 9.9\n", "")
BAD_FILES = [
    ("yaml syntax", "entries:\n  - id: broken\n    questions: [unclosed\n", r"YAML syntax error at line \d+"),
    ("missing field", NO_SOURCE, r"entry 2 \(id ferry_times\), field 'source': missing"),
    ("wrong language", entry(language="de"), r"entry 2 \(id ferry_times\), field 'language': 'de'"),
    ("bad date", entry(updated="2026-02-30"), r"entry 2 \(id ferry_times\), field 'updated': '2026-02-30'"),
    ("compact date", entry(updated="'20260301'"), r"field 'updated'"),
    ("url in answer", entry(answer="See www.city.example for details."), r"field 'answer': contains a web address"),
    ("empty questions", entry(question=""), r"field 'questions'"),
]


@pytest.mark.parametrize(("case", "second_entry", "message"), BAD_FILES, ids=[case for case, _, _ in BAD_FILES])
def test_bad_file_raises_and_changes_nothing(tmp_path: Path, case: str, second_entry: str, message: str) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    kb.import_file(write_kb(tmp_path / "base.yaml", entry(id="library_hours", question="when is the library open")))
    # The first entry is valid and new: it must not be imported either.
    bad = write_kb(tmp_path / "bad.yaml", entry(id="museum", question="is the museum free"), second_entry)
    with pytest.raises(KbError, match=message) as raised:
        kb.import_file(bad)
    assert str(bad) in str(raised.value)
    assert kb.count() == 1
    assert kb.search("is the museum free", "en") == []
    assert kb.search("when is the library open", "en")[0].entry.id == "library_hours"


def test_missing_file_and_missing_entries_list(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    with pytest.raises(KbError, match="cannot read file"):
        kb.import_file(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("title: nothing here\n", encoding="utf-8")
    with pytest.raises(KbError, match="field 'entries'"):
        kb.import_file(tmp_path / "empty.yaml")


def test_default_database_lives_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path / "state"))
    kb = KnowledgeBase()
    assert kb.db_path == tmp_path / "state" / "kb.sqlite"
    assert kb.db_path.exists()


def test_words_found_only_in_answers_never_make_an_entry_relevant(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    kb.ensure_seeded(SEED_DIR)
    # "opening" and "now" both occur in the street-light answer ("open a ticket ... right now"), in no question
    assert kb.search("what are your opening now is", "en") == []
    assert kb.search("what are your opening hours", "en")[0].entry.id == "opening_hours"
