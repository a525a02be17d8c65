"""The supervisors' transfer rules applied to live calls: builds the call's facts from its turns and the agent
queue's state, evaluates the live rules, and turns the decision into the handoff the telephony carries out.

Blocking (SQLite): the call session calls `route` in a thread (voicebot.ports.TransferRouter).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dialogue.acd import Acd
from dialogue.ops_db import connect
from dialogue.pseudonym import pseudonym
from dialogue.rule_store import RuleStore
from dialogue.transfer_rules import CallFacts, Decision, RuleError, TurnFacts
from voicebot.audit import Audit
from voicebot.ports import Handoff, TurnNote

log = logging.getLogger(__name__)

# `caller` holds the caller's pseudonym (dialogue.pseudonym), never the number.
CALLS_SCHEMA = """CREATE TABLE IF NOT EXISTS routing_calls (
    call_id TEXT PRIMARY KEY, caller TEXT NOT NULL, day TEXT NOT NULL)"""


class RulesRouter:
    def __init__(self, store: RuleStore, acd: Acd, db_path: Path, languages: tuple[str, ...],
                 language_threshold: float = 0.6, now: Callable[[], datetime] = datetime.now,
                 audit: Audit | None = None) -> None:  # fmt: skip
        self.store, self.acd, self.db_path, self.audit = store, acd, db_path, audit
        with connect(db_path) as db:
            db.execute(CALLS_SCHEMA)
        self.languages, self.language_threshold, self.now = languages, language_threshold, now

    def route(self, call_id: str, caller: str | None, turns: tuple[TurnNote, ...], handoff: Handoff | None
              ) -> Handoff | None:  # fmt: skip
        decided = self._decide(call_id, caller, turns, handoff)
        if decided is not None and self.audit is not None:
            self.audit.record("routing", "transfer_decision", f"call:{call_id}", None, decision_facts(decided, turns))
        return decided

    def _decide(self, call_id: str, caller: str | None, turns: tuple[TurnNote, ...], handoff: Handoff | None
                ) -> Handoff | None:  # fmt: skip
        try:
            live = self.store.live()
        except RuleError as exc:  # e.g. a queue the live rules name was removed since: the dialogue decides
            log.error("call %s: the live transfer rules no longer validate: %s", call_id, exc)
            return handoff
        if live is None or not turns:
            return handoff
        facts = self.facts(call_id, caller, turns)
        decision = live[2].evaluate(facts)
        if decision is None:
            return handoff
        log.info("call %s: rule %r (version %d) fired at turn %d: %s", call_id, decision.rule, live[0],
                 decision.turn, decision.action.describe())  # fmt: skip
        return dataclasses.replace(handoff_for(decision, facts.language, handoff, turns), rule_version=live[0])

    def facts(self, call_id: str, caller: str | None, turns: tuple[TurnNote, ...]) -> CallFacts:
        now = self.now()
        last = turns[-1]
        confident = last.language_probability is not None and last.language_probability >= self.language_threshold
        return CallFacts(
            call_id=call_id,
            language=last.language or self.languages[0],
            turns=tuple(turn_facts(note) for note in turns),
            now=now,
            supported_languages=self.languages,
            queue_lengths=self.acd.queue_lengths(),
            expected_wait_s=self.acd.expected_wait_by_queue(),
            open_queues=self.acd.open_queues(),
            calls_today=self._calls_today(call_id, caller, now),
            detected_language=last.language if confident else None,
        )

    def _calls_today(self, call_id: str, caller: str | None, now: datetime) -> int:
        if not caller:
            return 1
        day, caller = now.date().isoformat(), pseudonym(caller)
        with connect(self.db_path) as db:
            db.execute("INSERT OR IGNORE INTO routing_calls (call_id, caller, day) VALUES (?, ?, ?)",
                       [call_id, caller, day])  # fmt: skip
            row = db.execute("SELECT COUNT(*) FROM routing_calls WHERE caller = ? AND day = ?", [caller, day])
            return int(row.fetchone()[0])


def decision_facts(handoff: Handoff, turns: tuple[TurnNote, ...]) -> dict[str, object]:
    """What the audit keeps of a transfer decision: where, why and by which rule — not what the caller said."""
    return {
        "turn": turns[-1].turn if turns else 0,
        "rule": handoff.rule,
        "rule_version": handoff.rule_version,
        "reason": handoff.reason,
        "queue": handoff.queue,
        "priority": handoff.priority,
        "callback": handoff.callback,
        "fixed_number": handoff.fixed_number,
    }


def turn_facts(note: TurnNote) -> TurnFacts:
    return TurnFacts(
        turn=note.turn,
        text=note.text,
        language=note.language,
        intent=note.intent,
        confidence=note.confidence,
        dtmf=note.dtmf,
        handoff_reason=note.handoff_reason,
    )


def handoff_for(decision: Decision, language: str, handoff: Handoff | None, turns: tuple[TurnNote, ...]) -> Handoff:
    action = decision.action
    base = handoff or Handoff(
        queue=action.queue or "general",
        reason=f"rule_{decision.rule}",
        language=language,
        summary=_summary(turns, decision.rule),
    )
    return dataclasses.replace(
        base,
        queue=action.queue or base.queue,
        rule=decision.rule,
        priority=action.priority,
        announcement=action.announcement.get(language, ""),
        callback=action.callback,
        fixed_number=action.fixed_number,
    )


def _summary(turns: tuple[TurnNote, ...], rule: str) -> str:
    said = next((note.text for note in reversed(turns) if note.text), "")
    return f"Transfer rule {rule}. The caller said: {said}" if said else f"Transfer rule {rule}."
