"""Validation of transfer rules files: the messages a supervisor gets for a bad file, each with its line, where
it is and what to do (against the real domain intents and queue directory)."""

from __future__ import annotations

import pytest

from dialogue.agents import load_directory
from dialogue.rule_store import known_intents
from dialogue.state import DATA_DIR
from dialogue.transfer_rules import RuleError, RuleSet, parse_rules

QUEUES = frozenset(queue.name for queue in load_directory(DATA_DIR / "agents.yaml")[1])


def rules(text: str) -> RuleSet:
    return parse_rules(text, known_intents=known_intents(), known_queues=QUEUES, languages=("en", "fr"))


def one_rule(when: str, then: str) -> RuleSet:
    return rules(f"rules:\n  - name: the-rule\n    when: {when}\n    then: {then}\n")


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as caught:
        rules(text)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(problem) for problem in caught.value.problems]


def test_yaml_syntax_error_gives_its_line() -> None:
    assert problems("rules:\n  - name: a\n    when: {handoff: true\n    then: {queue: general-en}\n") == [
        "line 4: file: YAML syntax error: while parsing a flow mapping expected ',' or '}', but got ':' "
        "(the construct began on line 3)"
    ]


def test_duplicate_yaml_keys_are_refused_with_both_lines() -> None:
    found = problems(
        "rules:\n  - name: a\n    when: {handoff: true}\n    when: {dtmf: '0'}\n    then: {queue: emergency}\n"
    )
    assert found == ["line 4: file: YAML syntax error: duplicate key 'when' (first given on line 3)"]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("    wen: {handoff: true}\n    then: {queue: emergency}\n",
         "line 3: rules[1] (a) .wen: unknown field 'wen' (did you mean 'when'?)"),
        ("    when: {intnets: [faq]}\n    then: {queue: emergency}\n",
         "line 3: rules[1] (a) .when.intnets: unknown condition 'intnets' (did you mean 'intents'?)"),
        ("    when: {handoff: true}\n    then: {queue: emergency, priorty: 3}\n",
         "line 4: rules[1] (a) .then.priorty: unknown field 'priorty' (did you mean 'priority'?)"),
        ("    when: {low_confidence: {belowe: 0.5}}\n    then: {queue: emergency}\n",
         "line 3: rules[1] (a) .when.low_confidence: unknown field 'belowe' (did you mean 'below'?)"),
    ],
)  # fmt: skip
def test_unknown_fields_are_named_with_a_suggestion(rule: str, expected: str) -> None:
    assert expected in problems(f"rules:\n  - name: a\n{rule}")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{handoff: yes please}", ".when.handoff: expected true or false, got 'yes please' (text)"),
        ("{fallbacks: two}", ".when.fallbacks: expected a whole number of at least 1, got 'two' (text)"),
        ("{fallbacks: true}", ".when.fallbacks: expected a whole number of at least 1, got True (true/false)"),
        ("{dtmf: 0}", '.when.dtmf: expected the keys as quoted text, like dtmf: "0" (a number loses leading zeros)'),
        ("{dtmf: 'A'}", ".when.dtmf: expected keys 0-9, * and # in quotes"),
        ("{intents: faq}", ".when.intents: expected a non-empty list of intents"),
        ("{low_confidence: {below: 2}}", ".when.low_confidence: below: expected a confidence between 0 and 1"),
        ("{business_hours: maybe}", ".when.business_hours: expected open or closed, got 'maybe' (text)"),
        ("{expected_wait_above_s: -5}", ".when.expected_wait_above_s: expected a number of seconds (0 or more)"),
        ("{keywords: [fire]}", ".when.keywords: expected keyword lists per language"),
        ("{keywords: {en: ['!!']}}", ".when.keywords: en: keyword '!!' has no letters or digits"),
    ],
)
def test_wrong_types_say_what_was_expected(when: str, expected: str) -> None:
    found = problems(f"rules:\n  - name: a\n    when: {when}\n    then: {{queue: emergency}}\n")
    assert len(found) == 1 and f"line 3: rules[1] (a) {expected}" in found[0], found


@pytest.mark.parametrize(
    ("when", "then", "expected"),
    [
        ("{intents: [emergancy]}", "{queue: emergency}",
         ".when.intents: unknown intent 'emergancy' (did you mean 'emergency'?)"),
        ("{reason: [fallback]}", "{queue: emergency}",
         ".when.reason: unknown reason 'fallback' (did you mean 'repeated_fallback'?)"),
        ("{language: [de]}", "{queue: emergency}", ".when.language: unknown language 'de' (known: en, fr)"),
        ("{keywords: {es: [fuego]}}", "{queue: emergency}", ".when.keywords: unknown language 'es' (known: en, fr)"),
        ("{handoff: true}", "{queue: genral-en}",
         ".then.queue: unknown queue 'genral-en' (did you mean 'general-en'?)"),
        ("{handoff: true}", '{queue: "billing-{language}"}', ".then.queue: unknown queue 'billing-en' (known: "),
        ("{handoff: true}", '{queue: "general-{lang}"}', ".then.queue: 'general-{lang}': only {language} can be used"),
        ("{handoff: true}", "{queue: emergency, announcement: {de: Hallo}}",
         ".then.announcement: unknown language 'de' (known: en, fr)"),
    ],
)  # fmt: skip
def test_unknown_intents_reasons_queues_and_languages(when: str, then: str, expected: str) -> None:
    found = problems(f"rules:\n  - name: a\n    when: {when}\n    then: {then}\n")
    assert len(found) == 1 and expected in found[0], found


def test_a_queue_with_language_is_checked_for_every_language() -> None:
    assert {"general-en", "general-fr"} <= QUEUES
    one_rule("{handoff: true}", '{queue: "general-{language}"}')  # both exist
    with pytest.raises(RuleError, match=r"unknown queue 'emergency-en' .*\(for language en\)"):
        one_rule("{handoff: true}", '{queue: "emergency-{language}"}')


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{explicit_request: true, reason: [dtmf_0]}",
         "no hand-off reason satisfies explicit_request + reason together"),
        ("{handoff: false, explicit_request: true}",
         "no hand-off reason satisfies handoff + explicit_request together"),
        ("{dtmf: '0', explicit_request: true}", "no hand-off reason satisfies explicit_request + dtmf together"),
        ("{dtmf: '0', keywords: {en: [fire]}}", "dtmf + keywords: a key press has no words"),
        ("{dtmf: '0', intents: [faq]}",
         "dtmf + intents without 'dtmf': key presses reach the dialogue as intent 'dtmf'"),
        ("{dtmf: '0', low_confidence: {below: 0.5}}",
         "dtmf + low_confidence: key presses are understood with full confidence"),
        ("{language: [fr], keywords: {en: [fire]}}",
         "keywords are only for en but the rule only applies to calls in fr"),
    ],
)  # fmt: skip
def test_contradictory_conditions_are_refused(when: str, expected: str) -> None:
    found = problems(f"rules:\n  - name: a\n    when: {when}\n    then: {{queue: emergency}}\n")
    assert found == [f"line 2: rules[1] (a) .when: contradictory: {expected}; this rule can never fire"]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{handoff: true}", "{explicit_request: true, language: [fr]}"),
        ("{keywords: {en: [fire]}}", "{keywords: {en: [house on fire, fire alarm]}}"),
        ("{fallbacks: 2}", "{fallbacks: 3}"),
        ("{low_confidence: {below: 0.5, turns: 2}}", "{low_confidence: {below: 0.4, turns: 3}}"),
        ("{intents: [faq, emergency]}", "{intents: [emergency], calls_today_at_least: 2}"),
        ("{reason: [caller_request, dtmf_0]}", "{explicit_request: true}"),
    ],
)
def test_a_rule_shadowed_by_an_earlier_one_is_unreachable(earlier: str, later: str) -> None:
    text = (
        f"rules:\n  - name: broad\n    when: {earlier}\n    then: {{queue: general-en}}\n"
        f"  - name: narrow\n    when: {later}\n    then: {{queue: emergency}}\n"
    )
    assert problems(text) == [
        "line 5: rules[2] (narrow): unreachable: rules[1] (broad) comes first and matches whenever this rule does; "
        "move this rule above it, or narrow the earlier one"
    ]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{keywords: {en: [house on fire]}}", "{keywords: {en: [fire]}}"),  # the later rule is broader
        ("{fallbacks: 3}", "{fallbacks: 2}"),
        ("{handoff: true, business_hours: closed}", "{handoff: true}"),
        ("{keywords: {fr: [incendie]}}", "{keywords: {en: [fire]}}"),
    ],
)
def test_a_broader_later_rule_is_reachable(earlier: str, later: str) -> None:
    text = (
        f"rules:\n  - name: first\n    when: {earlier}\n    then: {{queue: general-en}}\n"
        f"  - name: second\n    when: {later}\n    then: {{queue: general-en}}\n"
    )
    assert len(rules(text)) == 2


def test_duplicate_names_are_refused() -> None:
    text = (
        "rules:\n  - name: same\n    when: {intents: [faq]}\n    then: {queue: general-en}\n"
        "  - name: same\n    when: {intents: [emergency]}\n    then: {queue: emergency}\n"
    )
    assert problems(text) == [
        "line 5: rules[2] (same) .name: duplicate name: rules[1] has it too; names must be unique"
    ]


@pytest.mark.parametrize(
    ("then", "expected"),
    [
        ("{queue: emergency, fixed_number: 'tel:112'}",
         ".then: two actions (queue and fixed_number): a rule does exactly one thing — split it into two rules"),
        ("{callback: true, fixed_number: 'tel:112'}", ".then: two actions (callback and fixed_number)"),
        ("{priority: 3}", ".then: no action: give one of queue: NAME, callback: true or fixed_number: NUMBER"),
        ("{callback: false}", ".then.callback: expected true (leave callback out for no callback offer)"),
        ("{fixed_number: 'tel:112', priority: 5}", ".then.priority: priority only applies to a queue"),
        ("{fixed_number: 'sip:duty@'}", ".then.fixed_number: 'sip:duty@': no host after '@'"),
        ("{fixed_number: 'sip:duty@city hall'}", ".then.fixed_number: 'sip:duty@city hall' contains spaces"),
        ("{fixed_number: 'sip:duty@city.example.org:99999'}", "port '99999' is not a number from 1 to 65535"),
        ("{fixed_number: 'tel:call-me'}", "'tel:call-me' is not a tel: number (like tel:+33123456789 or tel:112)"),
        ("{fixed_number: '0123456789'}", "'0123456789' is neither a SIP URI nor a tel: number"),
    ],
)  # fmt: skip
def test_actions_are_checked(then: str, expected: str) -> None:
    found = problems(f"rules:\n  - name: a\n    when: {{handoff: true}}\n    then: {then}\n")
    assert any(expected in problem for problem in found), found


def test_rules_without_conditions_or_a_queue_to_watch() -> None:
    assert (
        "no conditions: this rule would transfer every call at its first turn"
        in problems("rules:\n  - name: a\n    when: {}\n    then: {queue: emergency}\n")[0]
    )
    assert (
        "whose hours? the action has no queue: add queue_hours: NAME"
        in problems("rules:\n  - name: a\n    when: {business_hours: closed}\n    then: {fixed_number: 'tel:112'}\n")[0]
    )


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "rules:\n  - name: a\n    when: {intnets: [faq]}\n    then: {queue: nowhere}\n"
        "  - when: {handoff: true}\n    then: {queue: emergency}\n"
        "  - just a string\n"
    )
    assert problems(text) == [
        "line 3: rules[1] (a) .when.intnets: unknown condition 'intnets' (did you mean 'intents'?)",
        f"line 4: rules[1] (a) .then.queue: unknown queue 'nowhere' (known: {', '.join(sorted(QUEUES))})",
        "line 5: rules[2] .name: every rule needs a name (text), got None (NoneType)",
        "rules[3]: expected a rule (a mapping with name, when and then), got 'just a string' (text)",
    ]


def test_a_file_without_rules() -> None:
    assert problems("") == [
        "line 1: file: the file is empty: expected `rules:` followed by a list of rules (each with name, when and then)"
    ]
    assert "unknown field 'rule' (did you mean 'rules'?)" in problems("rule: []\n")[0]
    assert len(rules("rules: []\n")) == 0
