"""Checks across conditions and rules: duplicate names, contradictory conditions (a rule that can never fire) and
unreachable rules (an earlier rule matches whenever this one does, and the first match wins)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dialogue.transfer_rules import (
    DTMF_INTENT,
    EXPLICIT_REQUEST_REASON,
    KNOWN_REASONS,
    LowConfidence,
    Rule,
    RuleProblem,
    contains_phrase,
)

REASON_CONDITIONS = ("handoff", "explicit_request", "reason", "dtmf")
LocatedRule = tuple[int, int | None, Rule]  # (index from 1, line, rule)


def rule_set_problems(rules: Sequence[LocatedRule]) -> list[RuleProblem]:
    """Contradictory and unreachable rules among valid ones (in file order)."""
    problems: list[RuleProblem] = []
    can_fire: list[LocatedRule] = []
    for index, line, rule in rules:
        where = _where(index, rule)
        conflicts = contradictions(rule.when)
        for conflict in conflicts:
            problems.append(RuleProblem(f"{where} .when", f"contradictory: {conflict}; this rule can never fire", line))
        if conflicts:
            continue
        shadow = next((earlier for earlier in can_fire if covers(earlier[2], rule)), None)
        if shadow is not None:
            problems.append(RuleProblem(where, f"unreachable: {_where(shadow[0], shadow[2])} comes first and matches "
                                        "whenever this rule does; move this rule above it, or narrow the earlier one",
                                        line))  # fmt: skip
        can_fire.append((index, line, rule))
    return problems


def duplicate_names(names: Sequence[tuple[int, str, int | None]]) -> list[RuleProblem]:
    """(index, name, line) of every named rule -> a problem for each name used before."""
    first: dict[str, int] = {}
    problems = []
    for index, name, line in names:
        if name in first:
            problems.append(RuleProblem(f"rules[{index}] ({name}) .name", f"duplicate name: rules[{first[name]}] has "
                                        "it too; names must be unique", line))  # fmt: skip
        first.setdefault(name, index)
    return problems


def _where(index: int, rule: Rule) -> str:
    return f"rules[{index}] ({rule.name})"


# --- contradictions ------------------------------------------------------------------------------------------


def contradictions(when: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    involved = [name for name in REASON_CONDITIONS if name in when]
    if len(involved) > 1 and not _possible_reasons(when):
        found.append(f"no hand-off reason satisfies {' + '.join(involved)} together")
    if "dtmf" in when:
        if "keywords" in when:
            found.append("dtmf + keywords: a key press has no words")
        if "intents" in when and DTMF_INTENT not in when["intents"]:
            found.append(f"dtmf + intents without {DTMF_INTENT!r}: key presses reach the dialogue as intent "
                         f"{DTMF_INTENT!r}")  # fmt: skip
        if "low_confidence" in when:
            found.append("dtmf + low_confidence: key presses are understood with full confidence")
    if "language" in when and "keywords" in when and not set(when["keywords"]) & when["language"]:
        found.append(
            f"keywords are only for {', '.join(sorted(when['keywords']))} but the rule only applies to calls in "
            f"{', '.join(sorted(when['language']))}"
        )
    return found


def _possible_reasons(when: Mapping[str, Any]) -> set[str | None]:
    reasons: set[str | None] = {*KNOWN_REASONS, None}
    if "handoff" in when:
        reasons = {r for r in reasons if (r is not None) == when["handoff"]}
    if "explicit_request" in when:
        reasons = {r for r in reasons if (r == EXPLICIT_REQUEST_REASON) == when["explicit_request"]}
    if "reason" in when:
        reasons &= set(when["reason"])
    if "dtmf" in when:
        reasons.discard(EXPLICIT_REQUEST_REASON)  # a key press is never the spoken request
    return reasons


# --- unreachable rules ---------------------------------------------------------------------------------------


def covers(earlier: Rule, later: Rule) -> bool:
    """True when `earlier` matches in every situation where `later` matches: each of its conditions is implied
    by one of `later`'s."""
    return all(_implied(name, value, earlier, later) for name, value in earlier.when.items())


def _implied(name: str, wanted: Any, earlier: Rule, later: Rule) -> bool:
    when = later.when
    special = IMPLICATIONS.get(name)
    if special is not None:
        return special(wanted, when, earlier, later)
    return name in when and when[name] == wanted


def _at_least(name: str) -> Callable[[Any, Mapping[str, Any], Rule, Rule], bool]:
    return lambda wanted, when, _e, _l: name in when and when[name] >= wanted


def _same_queue_at_least(name: str) -> Callable[[Any, Mapping[str, Any], Rule, Rule], bool]:
    return lambda wanted, when, earlier, later: (
        name in when and when[name] >= wanted and earlier.then.queue == later.then.queue
    )


def _subset(name: str) -> Callable[[Any, Mapping[str, Any], Rule, Rule], bool]:
    return lambda wanted, when, _e, _l: name in when and when[name] <= wanted


def _reason(wanted: frozenset[str], when: Mapping[str, Any], _e: Rule, _l: Rule) -> bool:
    if "reason" in when:
        return bool(when["reason"] <= wanted)
    return when.get("explicit_request") is True and EXPLICIT_REQUEST_REASON in wanted


def _handoff(wanted: bool, when: Mapping[str, Any], _e: Rule, _l: Rule) -> bool:
    if wanted:
        return when.get("handoff") is True or when.get("explicit_request") is True or "reason" in when
    return when.get("handoff") is False


def _explicit_request(wanted: bool, when: Mapping[str, Any], _e: Rule, _l: Rule) -> bool:
    if when.get("explicit_request") == wanted:
        return True
    reasons = when.get("reason")
    if reasons is None:
        return False
    return reasons <= {EXPLICIT_REQUEST_REASON} if wanted else EXPLICIT_REQUEST_REASON not in reasons


def _keywords(wanted: Mapping[str, tuple[str, ...]], when: Mapping[str, Any], _e: Rule, _l: Rule) -> bool:
    """Every phrase of the later rule contains a phrase of the earlier rule, in the same language."""
    if "keywords" not in when:
        return False
    return all(
        any(contains_phrase(phrase, earlier_phrase) for earlier_phrase in wanted.get(language, ()))
        for language, phrases in when["keywords"].items()
        for phrase in phrases
    )


def _low_confidence(wanted: LowConfidence, when: Mapping[str, Any], _e: Rule, _l: Rule) -> bool:
    later: LowConfidence | None = when.get("low_confidence")
    return later is not None and later.below <= wanted.below and later.turns >= wanted.turns


def _business_hours(wanted: str, when: Mapping[str, Any], earlier: Rule, later: Rule) -> bool:
    return when.get("business_hours") == wanted and earlier.watched_queue == later.watched_queue


IMPLICATIONS: dict[str, Callable[[Any, Mapping[str, Any], Rule, Rule], bool]] = {
    "reason": _reason,
    "handoff": _handoff,
    "explicit_request": _explicit_request,
    "intents": _subset("intents"),
    "language": _subset("language"),
    "keywords": _keywords,
    "low_confidence": _low_confidence,
    "fallbacks": _at_least("fallbacks"),
    "calls_today_at_least": _at_least("calls_today_at_least"),
    "queue_length_at_least": _same_queue_at_least("queue_length_at_least"),
    "expected_wait_above_s": _same_queue_at_least("expected_wait_above_s"),
    "business_hours": _business_hours,
    "queue_hours": lambda _wanted, _when, _e, _l: True,  # compared with business_hours
}
