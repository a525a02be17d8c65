"""`voicebot rules test`: which transfer rule fires at which turn of conversations already run through the real
pipeline (voicebot/convtest.py). The situation around the calls (time, open queues, waits) is given, not live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialogue.transfer_rules import CallFacts, Decision, RuleSet, TurnFacts

if TYPE_CHECKING:
    from voicebot.convtest import DialogueOutcome, TurnOutcome


@dataclass(frozen=True)
class Situation:
    """What the rules see besides the conversation: the same for every replayed call."""

    now: datetime
    supported_languages: tuple[str, ...]
    default_language: str
    open_queues: frozenset[str]
    queue_lengths: Mapping[str, int] = field(default_factory=dict)
    expected_wait_s: Mapping[str, float] = field(default_factory=dict)
    calls_today: int = 1
    language_threshold: float = 0.6  # a transcript language below this probability is not a detection


@dataclass(frozen=True)
class TurnVerdict:
    dialogue: str
    turn: int
    said: str
    intent: str | None
    confidence: float | None
    handoff_reason: str | None
    decision: Decision | None

    def to_dict(self) -> dict[str, Any]:
        action = self.decision.action if self.decision else None
        return {
            "dialogue": self.dialogue,
            "turn": self.turn,
            "said": self.said,
            "intent": self.intent,
            "confidence": self.confidence,
            "handoff_reason": self.handoff_reason,
            "rule": self.decision.rule if self.decision else None,
            "action": None
            if action is None
            else {
                "kind": action.kind,
                "queue": action.queue,
                "priority": action.priority,
                "fixed_number": action.fixed_number,
                "description": action.describe(),
            },
        }


def facts_after_each_turn(outcome: DialogueOutcome, situation: Situation) -> list[CallFacts]:
    """The call as the rules would have seen it after each caller turn."""
    language = outcome.spec.language or situation.default_language
    detected: str | None = outcome.spec.language
    turns: list[TurnFacts] = []
    facts: list[CallFacts] = []
    for index, turn in enumerate(outcome.turns, start=1):
        detected = _detected(turn, situation.language_threshold) or detected
        language = str(turn.slots.get("language") or language)  # the dialogue's language slot
        turns.append(
            TurnFacts(
                turn=index,
                text=turn.heard,
                language=turn.language or language,
                intent=turn.intent,
                confidence=turn.confidence,
                dtmf=turn.spec.dtmf,
                handoff_reason=turn.handoff_reason,
            )
        )
        facts.append(
            CallFacts(
                call_id=outcome.spec.path.stem,
                language=language,
                turns=tuple(turns),
                now=situation.now,
                supported_languages=situation.supported_languages,
                queue_lengths=situation.queue_lengths,
                expected_wait_s=situation.expected_wait_s,
                open_queues=situation.open_queues,
                calls_today=situation.calls_today,
                detected_language=detected,
            )
        )
    return facts


def _detected(turn: TurnOutcome, threshold: float) -> str | None:
    if not turn.language or not turn.accepted:
        return None
    probability = turn.language_probability
    return turn.language if probability is None or probability >= threshold else None


def verdicts(outcome: DialogueOutcome, rules: RuleSet, situation: Situation) -> list[TurnVerdict]:
    return [
        TurnVerdict(
            dialogue=outcome.spec.name,
            turn=facts.current.turn,
            said=_said(outcome.turns[facts.current.turn - 1]),
            intent=facts.current.intent,
            confidence=facts.current.confidence,
            handoff_reason=facts.current.handoff_reason,
            decision=rules.evaluate(facts),
        )
        for facts in facts_after_each_turn(outcome, situation)
    ]


def _said(turn: TurnOutcome) -> str:
    if turn.spec.dtmf is not None:
        return f"[keys {turn.spec.dtmf}]"
    return turn.heard or "[not understood]"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: list[tuple[DialogueOutcome, list[TurnVerdict]]]) -> str:
    """Dialogue, turn, caller said, intent (confidence), rule fired (or -) and action; then the first firing."""
    header = f"{'dialogue':<30} {'#':>2}  {'caller said':<38} {'intent (confidence)':<24} {'rule fired':<22} action"
    lines = [header, "-" * len(header)]
    for outcome, turn_verdicts in results:
        name = _clip(outcome.spec.name, 30)
        if outcome.error:
            lines.append(f"{name:<30} {'-':>2}  ERROR {outcome.error}")
            continue
        for verdict in turn_verdicts:
            understood = verdict.intent or "-"
            if verdict.confidence is not None:
                understood += f" ({verdict.confidence:.2f})"
            decision = verdict.decision
            rule, action = (decision.rule, decision.action.describe()) if decision else ("-", "")
            lines.append(
                f"{name:<30} {verdict.turn:>2}  {_clip(verdict.said, 38):<38} {_clip(understood, 24):<24} "
                f"{_clip(rule, 22):<22} {action}".rstrip()
            )
            name = ""
        lines.append(f"{'':<30}     => {summary(turn_verdicts)}")
    return "\n".join(lines)


def summary(turn_verdicts: list[TurnVerdict]) -> str:
    """What would have happened: the first turn where a rule fires transfers the call."""
    first = next((v for v in turn_verdicts if v.decision is not None), None)
    if first is None or first.decision is None:
        asked = next((v for v in turn_verdicts if v.handoff_reason), None)
        return "no rule" + (f" (the dialogue's own hand-off at turn {asked.turn})" if asked else "")
    return f"{first.decision.rule} fires at turn {first.turn}: {first.decision.action.describe()}"
