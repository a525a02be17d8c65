"""The dry run's view of a finished conversation: the call language and detected language as they evolve, the
turn-by-turn verdicts, and what would have happened."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dialogue.transfer_rules import RuleSet, parse_rules
from voicebot.convtest import DialogueOutcome, TurnOutcome
from voicebot.convtest_spec import DialogueSpec, TurnSpec
from voicebot.rules_dry_run import Situation, facts_after_each_turn, summary, table, verdicts

SITUATION = Situation(
    now=datetime(2026, 3, 4, 10, 0),
    supported_languages=("en", "fr"),
    default_language="en",
    open_queues=frozenset({"general-en", "general-fr"}),
)
RULES = parse_rules(
    """rules:
  - name: not-our-language
    when: {unsupported_language: true}
    then: {queue: general-en}
  - name: asked
    when: {explicit_request: true}
    then: {queue: "general-{language}"}
""",
    known_intents={"greet", "request_human", "choose_language"},
    known_queues={"general-en", "general-fr"},
    languages=("en", "fr"),
)


def outcome(*turns: TurnOutcome, language: str | None = None) -> DialogueOutcome:
    spec = DialogueSpec("a call", Path("call.yaml"), tuple(t.spec for t in turns), language=language)
    return DialogueOutcome(spec, list(turns))


def said(text: str, **fields: object) -> TurnOutcome:
    return TurnOutcome(TurnSpec(say=text), heard=text, accepted=True, **fields)  # type: ignore[arg-type]


def test_the_call_follows_the_dialogue_language_and_confident_detections() -> None:
    call = outcome(
        said("bonjour", language="fr", language_probability=0.9, intent="greet", slots={"language": "fr"}),
        said("ja", language="ja", language_probability=0.3, intent="affirm"),  # unsure: not a detection
        TurnOutcome(TurnSpec(dtmf="0"), intent="dtmf", confidence=1.0, handoff_reason="dtmf_0"),
    )
    facts = facts_after_each_turn(call, SITUATION)
    assert [f.language for f in facts] == ["fr", "fr", "fr"]
    assert [f.detected_language for f in facts] == ["fr", "fr", "fr"]
    assert [f.current.dtmf for f in facts] == [None, None, "0"]
    assert [len(f.turns) for f in facts] == [1, 2, 3]


def test_verdicts_and_summary() -> None:
    call = outcome(
        said("Guten Tag", language="de", language_probability=0.95, intent="greet", confidence=0.4),
        said("a person please", language="en", intent="request_human", handoff_reason="caller_request"),
    )
    turn_verdicts = verdicts(call, RULES, SITUATION)
    assert [v.decision.rule if v.decision else None for v in turn_verdicts] == ["not-our-language", "asked"]
    assert summary(turn_verdicts) == "not-our-language fires at turn 1: queue general-en"
    rendered = table([(call, turn_verdicts)])
    assert "greet (0.40)" in rendered and "Guten Tag" in rendered


def test_no_rule_mentions_the_dialogues_own_handoff() -> None:
    call = outcome(said("hello", intent="greet"), said("bye", intent="goodbye", handoff_reason="repeated_fallback"))
    turn_verdicts = verdicts(call, RULES, SITUATION)
    assert summary(turn_verdicts) == "no rule (the dialogue's own hand-off at turn 2)"
    assert summary(verdicts(outcome(said("hello", intent="greet")), RuleSet([]), SITUATION)) == "no rule"
