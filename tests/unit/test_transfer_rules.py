"""Transfer rules: every condition and action, first match wins, evaluation after each turn, and the shipped
city hall rules (checked against the real domain intents and queue directory). Validation: test_rule_validation.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from dialogue.agents import load_directory
from dialogue.rule_store import known_intents
from dialogue.state import DATA_DIR
from dialogue.transfer_rules import CallFacts, RuleSet, TurnFacts, parse_rules

QUEUES = frozenset(queue.name for queue in load_directory(DATA_DIR / "agents.yaml")[1])
LANGUAGES = ("en", "fr")


def rules(text: str) -> RuleSet:
    return parse_rules(text, known_intents=known_intents(), known_queues=QUEUES, languages=LANGUAGES)


def one_rule(when: str, then: str = '{queue: "general-{language}"}') -> RuleSet:
    return rules(f"rules:\n  - name: the-rule\n    when: {when}\n    then: {then}\n")


def turn(number: int = 1, **fields: object) -> TurnFacts:
    return TurnFacts(turn=number, **fields)  # type: ignore[arg-type]


def call(*turns: TurnFacts, **fields: object) -> CallFacts:
    facts = CallFacts(
        call_id="call-1",
        language="en",
        turns=turns or (turn(),),
        now=datetime(2026, 3, 4, 10, 0),
        supported_languages=LANGUAGES,
        queue_lengths={},
        expected_wait_s={},
        open_queues=QUEUES,
    )
    return replace(facts, **fields)  # type: ignore[arg-type]


def fired(ruleset: RuleSet, facts: CallFacts) -> str | None:
    decision = ruleset.evaluate(facts)
    return decision.rule if decision else None


# --- conditions ------------------------------------------------------------------------------------------------


def asked(reason: str) -> CallFacts:
    return call(turn(handoff_reason=reason))


def open_now(*queues: str) -> CallFacts:
    return call(open_queues=frozenset(queues))


CONDITION_CASES = [
    ("{explicit_request: true}", asked("caller_request"), asked("dtmf_0")),
    ("{handoff: true}", asked("unknown_case"), call(turn(intent="faq"))),
    ("{reason: [dtmf_0, emergency]}", asked("emergency"), asked("caller_request")),
    ('{dtmf: "0"}', call(turn(dtmf="0#")), call(turn(dtmf="01"))),
    ("{intents: [faq, case_status]}", call(turn(intent="case_status")), call(turn(intent="greet"))),
    ("{language: [fr]}", call(language="fr"), call(language="en")),
    ("{calls_today_at_least: 3}", call(calls_today=3), call(calls_today=2)),
    ("{unsupported_language: true}", call(detected_language="de"), call(detected_language="fr")),
    ("{unsupported_language: false}", call(detected_language="fr"), call(detected_language="de")),
    ("{business_hours: open}", open_now("general-en"), open_now()),
    ("{business_hours: closed}", open_now("general-fr"), open_now("general-en")),
    ("{queue_length_at_least: 4}", call(queue_lengths={"general-en": 4}),
     call(queue_lengths={"general-en": 3, "general-fr": 9})),
    ("{expected_wait_above_s: 300}", call(expected_wait_s={"general-en": 301}),
     call(expected_wait_s={"general-en": 300})),
]  # fmt: skip


@pytest.mark.parametrize(("when", "matching", "not_matching"), CONDITION_CASES, ids=[c[0] for c in CONDITION_CASES])
def test_each_condition_fires_when_it_holds_and_only_then(
    when: str, matching: CallFacts, not_matching: CallFacts
) -> None:
    ruleset = one_rule(when)
    assert fired(ruleset, matching) == "the-rule"
    assert fired(ruleset, not_matching) is None


def test_business_hours_of_another_queue() -> None:
    ruleset = one_rule("{handoff: true, business_hours: closed, queue_hours: emergency}", "{fixed_number: 'tel:112'}")
    asked = turn(handoff_reason="emergency")
    assert fired(ruleset, call(asked, open_queues=QUEUES - {"emergency"})) == "the-rule"
    assert fired(ruleset, call(asked, open_queues=frozenset({"emergency"}))) is None


def test_queue_conditions_look_at_the_queue_of_the_call_language() -> None:
    ruleset = one_rule("{queue_length_at_least: 2}")
    assert fired(ruleset, call(language="fr", queue_lengths={"general-fr": 2, "general-en": 0})) == "the-rule"
    assert fired(ruleset, call(language="en", queue_lengths={"general-fr": 2, "general-en": 0})) is None


@pytest.mark.parametrize(
    ("said", "language", "expected"),
    [
        ("Au FEU ! Il y a de la fumée partout", "fr", True),  # case, punctuation, accent in the text
        ("il y a une fumee noire", "fr", True),
        ("Help, there is a fire in my building!", "en", True),
        ("I'd like tickets for the fireworks", "en", False),  # whole words only
        ("the fire station opening hours", "fr", False),  # an English word in a French turn: the French list
        ("au feu", "en", False),
    ],
)
def test_keywords_are_whole_words_of_the_turn_language_ignoring_case_and_accents(
    said: str, language: str, expected: bool
) -> None:
    ruleset = one_rule("{keywords: {en: [fire, gas leak], fr: [au feu, Fumée]}}")
    assert (fired(ruleset, call(turn(text=said, language=language))) == "the-rule") is expected


def test_keywords_fall_back_to_the_call_language_when_the_turn_has_none() -> None:
    ruleset = one_rule("{keywords: {fr: [incendie]}}")
    assert fired(ruleset, call(turn(text="un incendie"), language="fr")) == "the-rule"
    assert fired(ruleset, call(turn(text="un incendie"), language="en")) is None


def test_low_confidence_needs_that_many_unsure_turns_in_a_row() -> None:
    ruleset = one_rule("{low_confidence: {below: 0.5, turns: 2}}")
    unsure_1, unsure_2 = turn(1, confidence=0.3), turn(2, confidence=0.49)
    assert fired(ruleset, call(unsure_1)) is None
    assert fired(ruleset, call(unsure_1, unsure_2)) == "the-rule"
    assert fired(ruleset, call(unsure_1, turn(2, confidence=0.9), turn(3, confidence=0.2))) is None
    assert fired(ruleset, call(unsure_1, turn(2, confidence=None))) is None  # nothing understood: not a score
    assert fired(ruleset, call(unsure_1, turn(2, confidence=0.5))) is None  # "below" is strict


def test_fallbacks_count_not_understood_turns_in_the_whole_call() -> None:
    ruleset = one_rule("{fallbacks: 2}")
    first = turn(1, intent="nlu_fallback")
    assert fired(ruleset, call(first, turn(2, intent="faq"))) is None
    assert fired(ruleset, call(first, turn(2, intent="faq"), turn(3, intent="out_of_scope"))) == "the-rule"


def test_conditions_are_all_required() -> None:
    ruleset = one_rule("{handoff: true, language: [fr], calls_today_at_least: 2}")
    asked = turn(handoff_reason="caller_request")
    assert fired(ruleset, call(asked, language="fr", calls_today=2)) == "the-rule"
    assert fired(ruleset, call(asked, language="en", calls_today=2)) is None
    assert fired(ruleset, call(asked, language="fr", calls_today=1)) is None
    assert fired(ruleset, call(turn(), language="fr", calls_today=2)) is None


# --- actions, order, turns -------------------------------------------------------------------------------------


def test_actions_carry_queue_priority_announcement_callback_and_fixed_number() -> None:
    ruleset = rules(
        """rules:
  - name: emergency
    when: {intents: [emergency]}
    then: {fixed_number: "sip:duty@city.example.org:5060", announcement: {en: Hold on., fr: Un instant.}}
  - name: closed
    when: {handoff: true, business_hours: closed}
    then: {callback: true, queue: "general-{language}"}
  - name: person
    when: {handoff: true}
    then: {queue: "civil-status-{language}", priority: 7, announcement: {fr: Je vous passe le service.}}
"""
    )
    emergency = ruleset.evaluate(call(turn(intent="emergency")))
    assert emergency is not None
    assert emergency.action.kind == "fixed_number"
    assert (emergency.action.fixed_number, emergency.action.queue) == ("sip:duty@city.example.org:5060", None)
    assert emergency.action.announcement == {"en": "Hold on.", "fr": "Un instant."}
    asked = turn(handoff_reason="caller_request")
    closed = ruleset.evaluate(call(asked, language="fr", open_queues=frozenset()))
    assert closed is not None and closed.rule == "closed"
    assert (closed.action.kind, closed.action.callback, closed.action.queue) == ("callback", True, "general-fr")
    person = ruleset.evaluate(call(asked, language="fr"))
    assert person is not None and person.rule == "person"
    assert (person.action.kind, person.action.queue, person.action.priority) == ("queue", "civil-status-fr", 7)
    assert person.action.describe() == "queue civil-status-fr (priority 7)"


def test_the_first_matching_rule_wins() -> None:
    first = {"name": "emergency-words", "text": "  - name: emergency-words\n    when: {keywords: {en: [fire]}}\n"
             "    then: {queue: emergency, priority: 100}\n"}  # fmt: skip
    second = {"name": "asked", "text": "  - name: asked\n    when: {handoff: true}\n    then: {queue: general-en}\n"}
    facts = call(turn(text="my house is on fire", handoff_reason="emergency"))
    assert fired(rules("rules:\n" + first["text"] + second["text"]), facts) == "emergency-words"
    assert fired(rules("rules:\n" + second["text"] + first["text"]), facts) == "asked"


def test_rules_are_evaluated_after_each_turn() -> None:
    ruleset = one_rule("{explicit_request: true}")
    facts = call(
        turn(1, text="hello", intent="greet"),
        turn(2, text="a person please", intent="request_human", handoff_reason="caller_request"),
        turn(3, text="thanks", intent="affirm"),
    )
    decisions = ruleset.evaluate_each_turn(facts)
    assert [d.rule if d else None for d in decisions] == [None, "the-rule", None]
    assert decisions[1] is not None and decisions[1].turn == 2


def test_export_round_trips() -> None:
    text = (DATA_DIR / "transfer_rules.yaml").read_text(encoding="utf-8")
    original = rules(text)
    again = rules(original.to_yaml())
    assert [r.name for r in again.rules] == [r.name for r in original.rules]
    assert [r.then for r in again.rules] == [r.then for r in original.rules]
    assert [dict(r.when) for r in again.rules] == [dict(r.when) for r in original.rules]


# --- the shipped rules -----------------------------------------------------------------------------------------

DEFAULT_RULES = rules((DATA_DIR / "transfer_rules.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("facts", "rule", "action"),
    [
        (call(turn(text="Au secours, ma cuisine est en feu", language="fr"), language="fr"),
         "emergency-words", "queue emergency (priority 100)"),
        (call(turn(text="There is a fire", language="en"), open_queues=frozenset()), "emergency-line",
         "fixed number tel:112"),
        (call(turn(text="Hallo, ich brauche Hilfe", language="de"), detected_language="de"), "unsupported-language",
         "queue general-en (priority 10)"),
        (call(turn(handoff_reason="caller_request"), open_queues=frozenset({"emergency"})), "out-of-hours",
         "callback offer (general-en)"),
        (call(turn(handoff_reason="caller_request"), calls_today=3), "frequent-caller",
         "queue general-en (priority 20)"),
        (call(turn(handoff_reason="caller_request"), expected_wait_s={"general-en": 1200}), "long-wait",
         "callback offer (general-en)"),
        (call(turn(handoff_reason="unknown_case"), language="fr"), "case-status-problem", "queue civil-status-fr"),
        (call(turn(handoff_reason="caller_request"), language="fr"), "explicit-request", "queue general-fr"),
        (call(turn(dtmf="0")), "keypad-zero", "queue general-en"),
        (call(turn(1, intent="nlu_fallback"), turn(2, intent="nlu_fallback")), "repeated-fallbacks",
         "queue general-en"),
        (call(turn(1, intent="faq", confidence=0.4), turn(2, intent="faq", confidence=0.3)), "low-confidence",
         "queue general-en"),
        (call(turn(handoff_reason="asr_error")), "any-other-handoff", "queue general-en"),
        (call(turn(text="When is the town hall open?", intent="faq", confidence=0.95)), None, None),
    ],
)  # fmt: skip
def test_the_shipped_rules_route_a_city_hall_call(facts: CallFacts, rule: str | None, action: str | None) -> None:
    decision = DEFAULT_RULES.evaluate(facts)
    assert (decision.rule if decision else None) == rule
    assert (decision.action.describe() if decision else None) == action
