"""The live rules applied to a call through RulesRouter, over a real operations database: callers are counted by a
keyed pseudonym (a third call today is a frequent caller) and their number is never written down."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from dialogue.acd import Acd
from dialogue.agents import load_directory
from dialogue.pseudonym import pseudonym
from dialogue.routing import RulesRouter
from dialogue.rule_store import RuleStore, rules_validator
from voicebot.audit import Audit
from voicebot.ports import Handoff, TurnNote

LANGUAGES = ("en", "fr")
NUMBER = "sip:+33612345678@trunk.example"
TUESDAY_NOON = datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc)  # noqa: UP017  (noon in Paris)


def router_at(db_path: Path) -> RulesRouter:
    acd = Acd(db_path, clock=TUESDAY_NOON.timestamp)
    acd.seed(*load_directory(Path("data/agents.yaml")))
    store = RuleStore(db_path, rules_validator(db_path, LANGUAGES))
    return RulesRouter(store, acd, db_path, LANGUAGES, now=lambda: TUESDAY_NOON, audit=Audit(db_path))


def asks_for_a_person(call_id: str, router: RulesRouter) -> Handoff | None:
    turns = (TurnNote(1, "I want to talk to someone", "en", 0.99, "request_human", 0.98, None, "caller_request"),)
    return router.route(call_id, NUMBER, turns, Handoff("general", "caller_request", "en"))


def test_a_third_call_today_is_a_frequent_caller_and_the_number_is_not_stored(tmp_path: Path) -> None:
    db_path = tmp_path / "operations.db"
    router = router_at(db_path)
    decisions = [asks_for_a_person(f"call-{n}", router) for n in range(3)]
    assert [d.rule if d else None for d in decisions][2] == "frequent-caller"
    assert decisions[0] is None or decisions[0].rule != "frequent-caller"
    raw = db_path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("operations.db-*"))
    assert b"33612345678" not in raw
    assert pseudonym(NUMBER).encode() in raw


def test_pseudonyms_depend_on_the_installation_key() -> None:
    assert pseudonym(NUMBER, b"k1") == pseudonym(NUMBER, b"k1")
    assert pseudonym(NUMBER, b"k1") != pseudonym(NUMBER, b"k2")
    assert pseudonym(NUMBER, b"k1") != pseudonym("sip:+33612345679@trunk.example", b"k1")


def test_every_transfer_decision_is_audited_with_its_rule_but_not_what_was_said(tmp_path: Path) -> None:
    db_path = tmp_path / "operations.db"
    router = router_at(db_path)
    decisions = [asks_for_a_person(f"call-{n}", router) for n in range(3)]
    entries = list(reversed(Audit(db_path).entries()))
    decided = [e for e in entries if e.action == "transfer_decision"]
    assert [e.target for e in decided] == ["call:call-0", "call:call-1", "call:call-2"]
    assert [e.after["rule"] for e in decided] == [d.rule if d else None for d in decisions]
    assert decided[2].after["rule"] == "frequent-caller" and decided[2].after["rule_version"] == 1
    assert "someone" not in str([e.after for e in decided]) and "336" not in str([e.after for e in decided])
    assert Audit(db_path).verify() == []
