"""Versioned transfer rules in a real operations database: seeding, versions, diffs, and a refused save that leaves
the live rules as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogue.rule_store import DEFAULT_RULES_FILE, RuleStore, rules_validator
from dialogue.transfer_rules import RuleError

LANGUAGES = ("en", "fr")
SEED_TEXT = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
EDITED_TEXT = SEED_TEXT.replace("priority: 100", "priority: 90", 1)
INVALID_TEXT = "rules:\n  - name: broken\n    when: {intnets: [faq]}\n    then: {queue: general-en}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_770_000_000.0

    def __call__(self) -> float:
        self.now += 60
        return self.now


def store_at(db_path: Path, seed: Path | None = DEFAULT_RULES_FILE) -> RuleStore:
    return RuleStore(db_path, rules_validator(db_path, LANGUAGES), seed=seed, clock=Clock())


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "operations.db"


def test_an_empty_store_is_seeded_with_the_shipped_rules_as_version_1(db_path: Path) -> None:
    live = store_at(db_path).live()
    assert live is not None
    version, text, rules = live
    assert (version, text) == (1, SEED_TEXT)
    assert len(rules) == SEED_TEXT.count("  - name: ")
    [entry] = store_at(db_path).versions()
    assert (entry["version"], entry["author"], entry["live"]) == (1, "seed", True)
    assert entry["comment"] == "seeded from transfer_rules.yaml"


def test_each_save_is_a_new_version_and_nothing_is_overwritten(db_path: Path) -> None:
    store = store_at(db_path)
    assert store.save(EDITED_TEXT, "alice", "emergency a little lower") == 2
    assert store.save(SEED_TEXT, "bob", "back to the shipped rules") == 3
    assert [(v["version"], v["author"], v["live"]) for v in store.versions()] == [
        (3, "bob", True),
        (2, "alice", False),
        (1, "seed", False),
    ]
    assert store.text_of(2) == EDITED_TEXT
    assert store.text_of(1) == SEED_TEXT
    live = store.live()
    assert live is not None and live[0] == 3


def test_saving_the_live_text_again_makes_no_new_version(db_path: Path) -> None:
    store = store_at(db_path)
    assert store.save(SEED_TEXT, "alice") == 1
    assert len(store.versions()) == 1


def test_an_invalid_save_is_refused_and_the_live_version_stays(db_path: Path) -> None:
    store = store_at(db_path)
    store.save(EDITED_TEXT, "alice")
    with pytest.raises(RuleError) as caught:
        store.save(INVALID_TEXT, "mallory")
    assert [str(p) for p in caught.value.problems] == [
        "line 3: rules[1] (broken) .when.intnets: unknown condition 'intnets' (did you mean 'intents'?)"
    ]
    live = store.live()
    assert live is not None and live[:2] == (2, EDITED_TEXT)
    assert [v["version"] for v in store.versions()] == [2, 1]


def test_another_process_sees_the_new_live_version(db_path: Path) -> None:
    console, worker = store_at(db_path), store_at(db_path)
    before = worker.live()
    assert before is not None
    assert before[2].rules[0].then.priority == 100
    console.save(EDITED_TEXT, "alice")
    after = worker.live()
    assert after is not None and after[0] == 2
    assert after[2].rules[0].then.priority == 90


def test_diff_against_the_live_version_or_any_version(db_path: Path) -> None:
    store = store_at(db_path)
    diff = store.diff(EDITED_TEXT)
    assert diff.startswith("--- version 1\n+++ edited\n")
    assert "-      priority: 100\n+      priority: 90\n" in diff
    store.save(EDITED_TEXT, "alice")
    assert store.diff(EDITED_TEXT) == ""
    assert "-      priority: 90\n+      priority: 100\n" in store.diff(SEED_TEXT)
    assert store.diff(EDITED_TEXT, against=1).startswith("--- version 1\n")


def test_an_unknown_version_names_the_versions_there_are(db_path: Path) -> None:
    store = store_at(db_path)
    with pytest.raises(KeyError, match=r"no transfer rules version 7 \(versions 1 to 1\)"):
        store.text_of(7)


def test_without_a_seed_the_store_starts_empty(db_path: Path) -> None:
    store = store_at(db_path, seed=None)
    assert store.live() is None
    assert store.versions() == []
    assert store.diff(EDITED_TEXT).startswith("--- (no rules)\n+++ edited\n")
    assert store.save(EDITED_TEXT, "alice") == 1


def test_an_invalid_seed_is_reported_with_its_file(db_path: Path, tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(INVALID_TEXT, encoding="utf-8")
    with pytest.raises(RuleError, match=r"seed\.yaml \(seed\) rules\[1\] \(broken\) \.when\.intnets"):
        store_at(db_path, seed=seed).live()
