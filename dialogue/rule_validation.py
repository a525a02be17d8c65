"""Reading a transfer rules file: every problem found at once, each with where it is, its line, and the fix.
Cross-rule checks (contradictions, unreachable rules) are in `dialogue/rule_analysis.py`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dialogue.agents import validate_sip_uri
from dialogue.rule_analysis import duplicate_names, rule_set_problems
from dialogue.rule_yaml import line_of, load_yaml, plain, shown, unknown
from dialogue.transfer_rules import (
    CHECKS,
    KNOWN_REASONS,
    LANGUAGE_PLACEHOLDER,
    LowConfidence,
    Rule,
    RuleAction,
    RuleError,
    RuleProblem,
    RuleSet,
    normalise_words,
)

TOP_FIELDS = ("rules",)
RULE_FIELDS = ("name", "description", "when", "then")
ACTION_FIELDS = ("queue", "priority", "announcement", "callback", "fixed_number")
LOW_CONFIDENCE_FIELDS = ("below", "turns")
QUEUE_CONDITIONS = ("queue_length_at_least", "expected_wait_above_s")
TEL_RE = re.compile(r"^tel:\+?[0-9*#][0-9*#().-]*(?:;[A-Za-z0-9-]+(?:=[A-Za-z0-9+().%-]+)?)*$")
PLACEHOLDER_RE = re.compile(r"\{[^}]*\}")
EXAMPLE_NUMBER = "sip:duty@city.example.org or tel:+33123456789"


class _Invalid(Exception):
    """One value is wrong; the message says how."""


@dataclass
class _Context:
    known_intents: frozenset[str]
    known_queues: frozenset[str] | None
    languages: tuple[str, ...]
    problems: list[RuleProblem] = field(default_factory=list)


def validate_rules_text(
    text: str, *, known_intents: Iterable[str], known_queues: Iterable[str] | None, languages: Iterable[str]
) -> RuleSet:
    ctx = _Context(
        frozenset(known_intents), None if known_queues is None else frozenset(known_queues), tuple(languages)
    )
    document = load_yaml(text)
    raw_rules = _rules_list(document, ctx)
    read = [(index, raw, _RuleReader(ctx, index, raw).read()) for index, raw in enumerate(raw_rules, start=1)]
    valid = [(index, line_of(raw), rule) for index, raw, rule in read if rule is not None]
    names = [(index, raw["name"].strip(), line_of(raw, "name")) for index, raw, _ in read if _named(raw)]
    ctx.problems.extend(duplicate_names(names))
    ctx.problems.extend(rule_set_problems(valid))
    if ctx.problems:
        raise RuleError(ctx.problems)
    return RuleSet(rule for _, _, rule in valid)


def _named(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("name"), str) and bool(raw["name"].strip())


def _rules_list(document: Any, ctx: _Context) -> list[Any]:
    expected = "expected `rules:` followed by a list of rules (each with name, when and then)"
    if document is None:
        ctx.problems.append(RuleProblem("file", f"the file is empty: {expected}", 1))
        return []
    if not isinstance(document, dict):
        ctx.problems.append(RuleProblem("file", f"{expected}, got {shown(plain(document))}", 1))
        return []
    for key in document:
        if key not in TOP_FIELDS:
            ctx.problems.append(RuleProblem(str(key), unknown("field", key, TOP_FIELDS), line_of(document, key)))
    rules = document.get("rules")
    if not isinstance(rules, list):
        ctx.problems.append(RuleProblem("rules", expected, line_of(document, "rules")))
        return []
    return rules


class _RuleReader:
    def __init__(self, ctx: _Context, index: int, raw: Any) -> None:
        self.ctx, self.index, self.raw = ctx, index, raw
        self.where = f"rules[{index}]"
        self.problem_count = len(ctx.problems)

    def problem(self, path: str, message: str, line: int | None) -> None:
        self.ctx.problems.append(RuleProblem(f"{self.where} {path}".rstrip(), message, line or line_of(self.raw)))

    def read(self) -> Rule | None:
        raw = self.raw
        if not isinstance(raw, dict):
            self.problem("", f"expected a rule (a mapping with name, when and then), got {shown(plain(raw))}", None)
            return None
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            self.where = f"rules[{self.index}] ({name.strip()})"
        else:
            self.problem(".name", f"every rule needs a name (text), got {shown(name)}", line_of(raw, "name"))
        for key in raw:
            if key not in RULE_FIELDS:
                self.problem(f".{key}", unknown("field", key, RULE_FIELDS), line_of(raw, key))
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.problem(".description", f"expected text, got {shown(description)}", line_of(raw, "description"))
        when = self._conditions(raw.get("when"))
        then = _read_action(self, raw.get("then"))
        if when is not None and then is not None:
            self._needs_a_queue(when, then)
        if len(self.ctx.problems) > self.problem_count or when is None or then is None:
            return None
        source = {key: plain(raw[key]) for key in RULE_FIELDS if key in raw}
        return Rule(str(name).strip(), when, then, source, str(description))

    # --- when ----------------------------------------------------------------------------------------------

    def _conditions(self, raw: Any) -> dict[str, Any] | None:
        line = line_of(self.raw, "when")
        if raw is None:
            self.problem(".when", "missing: a rule needs conditions (e.g. handoff: true)", line)
            return None
        if not isinstance(raw, dict):
            self.problem(".when", f"expected a mapping of conditions, got {shown(plain(raw))}", line)
            return None
        if not raw:
            self.problem(".when", "no conditions: this rule would transfer every call at its first turn; add one "
                         "(e.g. handoff: true)", line)  # fmt: skip
            return None
        when: dict[str, Any] = {}
        for name, value in raw.items():
            reader = CONDITION_READERS.get(name)
            if reader is None:
                self.problem(f".when.{name}", unknown("condition", name, CONDITION_READERS), line_of(raw, name))
                continue
            try:
                when[name] = reader(self, plain(value))
            except _Invalid as exc:
                self.problem(f".when.{name}", str(exc), line_of(raw, name))
        return when

    def _needs_a_queue(self, when: dict[str, Any], then: RuleAction) -> None:
        line = line_of(self.raw, "when")
        for name in QUEUE_CONDITIONS:
            if name in when and then.queue is None:
                self.problem(f".when.{name}", f"{name} looks at the rule's queue, but the action has none: add "
                             "queue: NAME to `then`", line)  # fmt: skip
        if "business_hours" in when and then.queue is None and "queue_hours" not in when:
            self.problem(".when.business_hours", "whose hours? the action has no queue: add queue_hours: NAME", line)

    def queue_name(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid(f"expected a queue name, got {shown(value)}")
        placeholders = set(PLACEHOLDER_RE.findall(value)) - {LANGUAGE_PLACEHOLDER}
        if placeholders:
            raise _Invalid(f"{value!r}: only {LANGUAGE_PLACEHOLDER} can be used in a queue name")
        known = self.ctx.known_queues
        if known is None:
            return value
        variants = {value.replace(LANGUAGE_PLACEHOLDER, lang): lang for lang in self.ctx.languages}
        missing = [name for name in variants if name not in known]
        if missing:
            for_language = f" (for language {variants[missing[0]]})" if LANGUAGE_PLACEHOLDER in value else ""
            raise _Invalid(f"{unknown('queue', missing[0], known)}{for_language}")
        return value

    def check_languages(self, value: Any) -> None:
        for language in value:
            if language not in self.ctx.languages:
                raise _Invalid(unknown("language", language, self.ctx.languages))


# --- condition readers: (reader, YAML value) -> normalised value, or _Invalid ----------------------------------


def _boolean(_reader: _RuleReader, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {shown(value)}")
    return value


def _whole_number(value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Invalid(f"expected a whole number of at least {minimum}, got {shown(value)}")
    return value


def _seconds(_reader: _RuleReader, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _Invalid(f"expected a number of seconds (0 or more), got {shown(value)}")
    return float(value)


def _name_list(
    kind: str, known: Callable[[_RuleReader], Iterable[str]]
) -> Callable[[_RuleReader, Any], frozenset[str]]:
    def read(reader: _RuleReader, value: Any) -> frozenset[str]:
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            raise _Invalid(f"expected a non-empty list of {kind}s, like [{next(iter(sorted(known(reader))), '')}], "
                           f"got {shown(value)}")  # fmt: skip
        strangers = [unknown(kind, item, known(reader)) for item in value if item not in known(reader)]
        if strangers:
            raise _Invalid("; ".join(strangers))
        return frozenset(value)

    return read


def _dtmf(_reader: _RuleReader, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Invalid(f'expected the keys as quoted text, like dtmf: "{value}" (a number loses leading zeros)')
    if not isinstance(value, str) or not value or any(key not in "0123456789*#" for key in value):
        raise _Invalid(f'expected keys 0-9, * and # in quotes, like "0", got {shown(value)}')
    return value


def _keywords(reader: _RuleReader, value: Any) -> dict[str, tuple[str, ...]]:
    example = 'like {en: [fire, "gas leak"], fr: [incendie, "fuite de gaz"]}'
    if not isinstance(value, dict) or not value:
        raise _Invalid(f"expected keyword lists per language, {example}, got {shown(value)}")
    reader.check_languages(value)
    phrases: dict[str, tuple[str, ...]] = {}
    for language, words in value.items():
        if not isinstance(words, list) or not words or not all(isinstance(word, str) for word in words):
            raise _Invalid(f"{language}: expected a non-empty list of words or phrases, got {shown(words)}")
        normalised = tuple(normalise_words(word) for word in words)
        empty = [word for word, plain in zip(words, normalised, strict=True) if not plain]
        if empty:
            raise _Invalid(f"{language}: keyword {empty[0]!r} has no letters or digits")
        phrases[language] = normalised
    return phrases


def _low_confidence(_reader: _RuleReader, value: Any) -> LowConfidence:
    if not isinstance(value, dict):
        raise _Invalid(f"expected {{below: 0.5, turns: 2}}, got {shown(value)}")
    strangers = [unknown("field", key, LOW_CONFIDENCE_FIELDS) for key in value if key not in LOW_CONFIDENCE_FIELDS]
    if strangers:
        raise _Invalid("; ".join(strangers))
    below = value.get("below")
    if isinstance(below, bool) or not isinstance(below, int | float) or not 0 < below <= 1:
        raise _Invalid(f"below: expected a confidence between 0 and 1, like 0.5, got {shown(below)}")
    try:
        turns = _whole_number(value.get("turns", 1))
    except _Invalid as exc:
        raise _Invalid(f"turns: {exc}") from None
    return LowConfidence(float(below), turns)


def _business_hours(_reader: _RuleReader, value: Any) -> str:
    if value not in ("open", "closed"):
        raise _Invalid(f"expected open or closed, got {shown(value)}")
    return str(value)


CONDITION_READERS: dict[str, Callable[[_RuleReader, Any], Any]] = {
    "explicit_request": _boolean,
    "handoff": _boolean,
    "reason": _name_list("reason", lambda _r: KNOWN_REASONS),
    "dtmf": _dtmf,
    "intents": _name_list("intent", lambda r: r.ctx.known_intents),
    "language": _name_list("language", lambda r: r.ctx.languages),
    "keywords": _keywords,
    "low_confidence": _low_confidence,
    "fallbacks": lambda _r, value: _whole_number(value),
    "unsupported_language": _boolean,
    "business_hours": _business_hours,
    "queue_hours": lambda reader, value: reader.queue_name(value),
    "queue_length_at_least": lambda _r, value: _whole_number(value),
    "expected_wait_above_s": _seconds,
    "calls_today_at_least": lambda _r, value: _whole_number(value),
}
assert set(CONDITION_READERS) == set(CHECKS), "every condition needs a reader and a check"


# --- then ------------------------------------------------------------------------------------------------------


def _read_action(reader: _RuleReader, raw: Any) -> RuleAction | None:
    line = line_of(reader.raw, "then")
    if raw is None:
        reader.problem(".then", "missing: say what to do — queue: NAME, callback: true or fixed_number: NUMBER", line)
        return None
    if not isinstance(raw, dict):
        reader.problem(".then", f"expected one action as a mapping, like {{queue: NAME}}, got {shown(plain(raw))}",
                       line)  # fmt: skip
        return None
    before = len(reader.ctx.problems)
    for key in raw:
        if key not in ACTION_FIELDS:
            reader.problem(f".then.{key}", unknown("field", key, ACTION_FIELDS), line_of(raw, key))
    actions = [key for key in ("queue", "callback", "fixed_number") if key in raw]
    if not actions:
        reader.problem(".then", "no action: give one of queue: NAME, callback: true or fixed_number: NUMBER", line)
    elif "fixed_number" in raw and len(actions) > 1:
        reader.problem(".then", f"two actions ({' and '.join(actions)}): a rule does exactly one thing — split it "
                       "into two rules", line)  # fmt: skip
    values = {key: _action_value(reader, raw, key) for key in raw if key in ACTION_FIELDS}
    if "priority" in raw and "fixed_number" in raw:
        reader.problem(".then.priority", "priority only applies to a queue (a fixed number is dialled at once)",
                       line_of(raw, "priority"))  # fmt: skip
    if len(reader.ctx.problems) > before:
        return None
    return RuleAction(
        queue=values.get("queue"),
        priority=values.get("priority", 0),
        announcement=values.get("announcement", {}),
        callback=values.get("callback", False),
        fixed_number=values.get("fixed_number"),
    )


def _action_value(reader: _RuleReader, raw: dict[str, Any], key: str) -> Any:
    value = plain(raw[key])
    try:
        return ACTION_READERS[key](reader, value)
    except _Invalid as exc:
        reader.problem(f".then.{key}", str(exc), line_of(raw, key))
        return None


def _callback(_reader: _RuleReader, value: Any) -> bool:
    if value is not True:
        raise _Invalid(f"expected true (leave callback out for no callback offer), got {shown(value)}")
    return True


def _priority(_reader: _RuleReader, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        raise _Invalid(f"expected a whole number from -1000 to 1000 (higher is served first), got {shown(value)}")
    return value


def _announcement(reader: _RuleReader, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise _Invalid(f'expected a sentence per language, like {{en: "...", fr: "..."}}, got {shown(value)}')
    reader.check_languages(value)
    empty = [language for language, text in value.items() if not isinstance(text, str) or not text.strip()]
    if empty:
        raise _Invalid(f"{empty[0]}: expected a sentence to say, got {shown(value[empty[0]])}")
    return {str(language): str(text).strip() for language, text in value.items()}


def fixed_number_problem(value: Any) -> str | None:
    """None when `value` is a SIP URI or a tel: number a transfer can dial, else what is wrong."""
    if not isinstance(value, str) or not value:
        return f"expected a number to dial, like {EXAMPLE_NUMBER}, got {shown(value)}"
    if value.lower().startswith("tel:"):
        return None if TEL_RE.match(value) else f"{value!r} is not a tel: number (like tel:+33123456789 or tel:112)"
    if value.lower().startswith(("sip:", "sips:")):
        return validate_sip_uri(value)
    return f"{value!r} is neither a SIP URI nor a tel: number (like {EXAMPLE_NUMBER})"


def _fixed_number(_reader: _RuleReader, value: Any) -> str:
    problem = fixed_number_problem(value)
    if problem:
        raise _Invalid(problem)
    return str(value)


ACTION_READERS: dict[str, Callable[[_RuleReader, Any], Any]] = {
    "queue": lambda reader, value: reader.queue_name(value),
    "priority": _priority,
    "announcement": _announcement,
    "callback": _callback,
    "fixed_number": _fixed_number,
}
