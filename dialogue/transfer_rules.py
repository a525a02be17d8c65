"""Supervisor transfer rules: when a call goes to a person, and where. Declarative YAML, first matching rule wins,
evaluated after every caller turn and whenever the dialogue asks for a human.

rules:
  - name: emergency-words
    when: {keywords: {en: [fire, ambulance], fr: [incendie, au feu]}}   # conditions are ANDed
    then: {queue: emergency, priority: 100, announcement: {en: "...", fr: "..."}}
  - name: out-of-hours
    when: {handoff: true, business_hours: closed}
    then: {callback: true, queue: "general-{language}"}   # {language}: the call's language

Parsing and validation are in `dialogue/rule_validation.py` (`parse_rules`, re-exported here).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

LANGUAGE_PLACEHOLDER = "{language}"
# Hand-off reasons the dialogue and the pipeline emit (dialogue/actions/*.py hand_off(...), domain.yml
# custom payloads, voicebot/session.py `{stage}_error`).
KNOWN_REASONS = (
    "caller_request",
    "dtmf_0",
    "emergency",
    "repeated_fallback",
    "unknown_case",
    "case_backend_error",
    "action_server_unavailable",
    "vad_error",
    "asr_error",
    "dialogue_error",
    "tts_error",
)
EXPLICIT_REQUEST_REASON = "caller_request"
# Turns the bot did not understand (nlu_fallback) or could not serve (out_of_scope): both answered by the
# dialogue's fallback action, which is what its own repeated-fallback hand-off counts.
FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
DTMF_INTENT = "dtmf"


@dataclass(frozen=True)
class TurnFacts:
    """One caller turn as the rules see it. `turn` is 1-based; `language` is the turn's transcript language;
    `handoff_reason` is set when the dialogue asked for a human at this turn."""

    turn: int
    text: str = ""
    language: str | None = None
    intent: str | None = None
    confidence: float | None = None
    dtmf: str | None = None
    handoff_reason: str | None = None


@dataclass(frozen=True)
class CallFacts:
    """The call so far, evaluated at its last turn. `language` is the call's (spoken) language;
    `detected_language` the language Whisper detected with confidence, supported or not; `calls_today` counts the
    caller's calls today, this one included; `open_queues` are the queues inside business hours `now`."""

    call_id: str
    language: str
    turns: tuple[TurnFacts, ...]
    now: datetime
    supported_languages: tuple[str, ...]
    queue_lengths: Mapping[str, int]
    expected_wait_s: Mapping[str, float]
    open_queues: frozenset[str]
    calls_today: int = 0
    detected_language: str | None = None

    @property
    def current(self) -> TurnFacts:
        return self.turns[-1] if self.turns else TurnFacts(turn=0)

    def up_to(self, turn_count: int) -> CallFacts:
        """The same call as it was after its first `turn_count` turns."""
        return dataclasses.replace(self, turns=self.turns[:turn_count])


@dataclass(frozen=True)
class RuleAction:
    """Exactly one of: a queue (with priority), a callback offer (for `queue`), a fixed number (sip:/tel:)."""

    queue: str | None
    priority: int = 0
    announcement: Mapping[str, str] = field(default_factory=dict)
    callback: bool = False
    fixed_number: str | None = None

    @property
    def kind(self) -> str:
        return "fixed_number" if self.fixed_number else "callback" if self.callback else "queue"

    def describe(self) -> str:
        if self.fixed_number:
            return f"fixed number {self.fixed_number}"
        if self.callback:
            return f"callback offer ({self.queue})" if self.queue else "callback offer"
        return f"queue {self.queue}" + (f" (priority {self.priority})" if self.priority else "")

    def for_language(self, language: str) -> RuleAction:
        return dataclasses.replace(self, queue=queue_for_language(self.queue, language))


@dataclass(frozen=True)
class Decision:
    rule: str
    action: RuleAction
    turn: int


@dataclass(frozen=True)
class RuleProblem:
    where: str  # e.g. "rules[2] (emergency) .when.intents" (rules counted from 1)
    message: str
    line: int | None = None

    def __str__(self) -> str:
        prefix = f"line {self.line}: " if self.line else ""
        return f"{prefix}{self.where}: {self.message}"


class RuleError(ValueError):
    """A rules file that cannot be used; every problem found, one per line."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class LowConfidence:
    below: float
    turns: int = 1


@dataclass(frozen=True)
class Rule:
    """A validated rule. `when` holds normalised condition values (sets, normalised keyword phrases);
    `source` is the rule as written, for export."""

    name: str
    when: Mapping[str, Any]
    then: RuleAction
    source: Mapping[str, Any]
    description: str = ""

    @property
    def watched_queue(self) -> str | None:
        """The queue whose business hours `business_hours` looks at."""
        return self.when.get("queue_hours") or self.then.queue

    def matches(self, facts: CallFacts) -> bool:
        scope = _Scope(facts, facts.current, self)
        return all(CHECKS[name](value, scope) for name, value in self.when.items())


class RuleSet:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, facts: CallFacts) -> Decision | None:
        """The first rule that matches the call at its last turn, its queue resolved for the call's language."""
        for rule in self.rules:
            if rule.matches(facts):
                return Decision(rule.name, rule.then.for_language(facts.language), facts.current.turn)
        return None

    def evaluate_each_turn(self, facts: CallFacts) -> list[Decision | None]:
        """What the rules decide after each turn of a finished call (the dry run)."""
        return [self.evaluate(facts.up_to(count)) for count in range(1, len(facts.turns) + 1)]

    def to_yaml(self) -> str:
        document = {"rules": [dict(rule.source) for rule in self.rules]}
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, default_flow_style=None, width=100)


def parse_rules(
    text: str, *, known_intents: Iterable[str], known_queues: Iterable[str] | None, languages: Iterable[str]
) -> RuleSet:
    """A RuleSet from YAML text, or RuleError naming every problem (see dialogue/rule_validation.py)."""
    from dialogue.rule_validation import validate_rules_text

    return validate_rules_text(text, known_intents=known_intents, known_queues=known_queues, languages=languages)


def queue_for_language(queue: str | None, language: str) -> str | None:
    return queue.replace(LANGUAGE_PLACEHOLDER, language) if queue else queue


def normalise_words(text: str) -> str:
    """Lower case, no accents, words separated by single spaces: "L'Incendie !" -> "l incendie"."""
    folded = unicodedata.normalize("NFKD", text.casefold().replace("œ", "oe").replace("æ", "ae"))
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return " ".join(re.findall(r"[^\W_]+", plain))


def contains_phrase(text: str, phrase: str) -> bool:
    """Whole words: both already normalised."""
    return f" {phrase} " in f" {text} "


# --- conditions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    facts: CallFacts
    turn: TurnFacts
    rule: Rule

    @property
    def target_queue(self) -> str | None:
        return queue_for_language(self.rule.then.queue, self.facts.language)


def _low_confidence(limit: LowConfidence, scope: _Scope) -> bool:
    recent = scope.facts.turns[-limit.turns :]
    return len(recent) == limit.turns and all(t.confidence is not None and t.confidence < limit.below for t in recent)


def _keywords(phrases: Mapping[str, tuple[str, ...]], scope: _Scope) -> bool:
    language = scope.turn.language or scope.facts.language
    text = normalise_words(scope.turn.text)
    return any(contains_phrase(text, phrase) for phrase in phrases.get(language, ()))


def _unsupported_language(wanted: bool, scope: _Scope) -> bool:
    detected = scope.facts.detected_language
    return (detected is not None and detected not in scope.facts.supported_languages) == wanted


def _business_hours(state: str, scope: _Scope) -> bool:
    queue = queue_for_language(scope.rule.watched_queue, scope.facts.language)
    return (queue in scope.facts.open_queues) == (state == "open")


def _queue_length(minimum: int, scope: _Scope) -> bool:
    queue = scope.target_queue
    return queue is not None and scope.facts.queue_lengths.get(queue, 0) >= minimum


def _expected_wait(seconds: float, scope: _Scope) -> bool:
    queue = scope.target_queue
    return queue is not None and scope.facts.expected_wait_s.get(queue, 0.0) > seconds


def _fallbacks(count: int, scope: _Scope) -> bool:
    return sum(turn.intent in FALLBACK_INTENTS for turn in scope.facts.turns) >= count


def _dtmf(keys: str, scope: _Scope) -> bool:
    pressed = scope.turn.dtmf
    return pressed is not None and pressed.rstrip("#") == keys.rstrip("#")


CHECKS: dict[str, Callable[[Any, _Scope], bool]] = {
    "explicit_request": lambda wanted, s: (s.turn.handoff_reason == EXPLICIT_REQUEST_REASON) == wanted,
    "handoff": lambda wanted, s: bool(s.turn.handoff_reason) == wanted,
    "reason": lambda reasons, s: s.turn.handoff_reason in reasons,
    "dtmf": _dtmf,
    "intents": lambda intents, s: s.turn.intent in intents,
    "language": lambda languages, s: s.facts.language in languages,
    "keywords": _keywords,
    "low_confidence": _low_confidence,
    "fallbacks": _fallbacks,
    "unsupported_language": _unsupported_language,
    "business_hours": _business_hours,
    "queue_hours": lambda _queue, _s: True,  # names the queue `business_hours` looks at
    "queue_length_at_least": _queue_length,
    "expected_wait_above_s": _expected_wait,
    "calls_today_at_least": lambda minimum, s: s.facts.calls_today >= minimum,
}
