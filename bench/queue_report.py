"""What bench/agent_queue.py measured: each queued call's times joined from the ACD, the agents' phones and the
callers' phones (all epoch seconds), and the tables it prints."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from queue_console import PAGES, ConsoleTimes
from queue_phones import Agent, CallerRun

FREE_AGENT_S = 1.0  # offered this soon after entering the queue: an agent was free for the call
FAILED_RING = re.compile(r"consult transfer to (\S+) failed: (.*)$")
RULE_FIRED = re.compile(r"^(\S+ \S+) INFO \[\w+\] dialogue\.routing: call (\S+): rule '[^']+' \(version \d+\) fired")


@dataclass(frozen=True)
class AcdCall:
    call_id: str
    state: str
    agent_id: str | None
    enqueued_at: float
    offered_at: float | None
    connected_at: float | None


@dataclass
class CallTimes:
    """One queued call (epoch seconds; None where that step was not seen)."""

    acd: AcdCall
    decided_at: float | None = None  # the live transfer rules sent the call to the queue (the worker's log)
    rang_at: float | None = None  # the agent's phone got the bot's INVITE (briefing call)
    replaced_at: float | None = None  # the agent's phone took the caller's INVITE/Replaces
    key_pressed_at: float | None = None  # the caller pressed 0


def read_acd_calls(db_path: Path) -> list[AcdCall]:
    """Read-only (no BEGIN IMMEDIATE: the bench must not queue behind the workers' transactions)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT call_id, state, agent_id, enqueued_at, offered_at, connected_at FROM acd_calls ORDER BY enqueued_at"
        ).fetchall()
    return [AcdCall(*row) for row in rows]


def decisions(log_paths: list[Path]) -> dict[str, float]:
    """Epoch seconds at which a rule sent each call to a person: the workers' log lines (local time, in ms)."""
    decided: dict[str, float] = {}
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if match := RULE_FIRED.match(line):
                stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                decided.setdefault(match.group(2), stamp)
    return decided


def join_times(
    calls: list[AcdCall], agents: list[Agent], runs: list[CallerRun], decided: dict[str, float]
) -> list[CallTimes]:
    """Each call offered to agent A at time O rang A's phone at A's first INVITE after O; it was connected at A's
    first Replaces after that ring. An agent is offered one call at a time (busy from the offer on), so this is
    unambiguous. The caller whose phone was sent to A between the ring and the Replaces pressed the key."""
    phones = {agent.id: agent.phone for agent in agents}
    joined = []
    for call in calls:
        times = CallTimes(call, decided.get(call.call_id))
        phone = phones.get(call.agent_id or "")
        if phone is not None and call.offered_at is not None:
            offered_at = call.offered_at
            times.rang_at = _first_at(phone.of("incoming"), offered_at)
            if times.rang_at is not None:
                times.replaced_at = _first_at(phone.of("replaced"), times.rang_at)
        caller = next((run for run in runs if _sent_to(run, call, times)), None)
        if caller is not None:
            times.key_pressed_at = caller.key_pressed_at
        joined.append(times)
    return joined


def _first_at(events: list[dict[str, float]], after: float) -> float | None:
    later = [event["at"] for event in events if event["at"] >= after]
    return min(later) if later else None


def _sent_to(run: CallerRun, call: AcdCall, times: CallTimes) -> bool:
    if run.agent_id != call.agent_id or run.transfer_at is None or times.rang_at is None:
        return False
    return times.rang_at <= run.transfer_at <= (times.replaced_at or run.transfer_at)


def next_rings(runs: list[CallerRun], agents: list[Agent], wrap_up_s: float) -> list[float]:
    """Seconds from the end of an agent's wrap-up to the agent's phone ringing again, when a caller waited."""
    phones = {agent.id: agent.phone for agent in agents}
    gaps = []
    for run in runs:
        if run.finished_at is None or run.agent_id is None:
            continue
        free_at = run.finished_at + wrap_up_s
        rang = _first_at(phones[run.agent_id].of("incoming"), run.finished_at)
        if rang is not None and rang - free_at < 60:
            gaps.append(rang - free_at)
    return gaps


def failed_rings(log_paths: list[Path]) -> Counter[str]:
    """Why agents' phones were not reached, from the workers' logs."""
    reasons: Counter[str] = Counter()
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if match := FAILED_RING.search(line):
                why = match.group(2)  # pjsua2 errors: "what: call(...) error: message (PJ_CODE) (status=N) [file]"
                if " error: " in why:
                    why = why.split(":", 1)[0] + ": " + why.split(" error: ", 1)[1].split(" [", 1)[0]
                reasons[why] += 1
    return reasons


# --- tables ------------------------------------------------------------------------------------------------


def _spans(times: list[CallTimes], start: str, end: str, only_free: bool | None = None) -> list[float]:
    spans = []
    for t in times:
        values = {"key": t.key_pressed_at, "decided": t.decided_at, "queued": t.acd.enqueued_at,
                  "offered": t.acd.offered_at, "rang": t.rang_at, "replaced": t.replaced_at,
                  "acd_connected": t.acd.connected_at}  # fmt: skip
        first, last = values[start], values[end]
        if first is None or last is None:
            continue
        free = t.acd.offered_at is not None and t.acd.offered_at - t.acd.enqueued_at <= FREE_AGENT_S
        if only_free is None or only_free == free:
            spans.append(last - first)
    return spans


def call_rows(
    times: list[CallTimes], runs: list[CallerRun], agents: list[Agent], wrap_up_s: float
) -> list[tuple[str, list[float]]]:
    return [
        ("caller presses 0 -> transfer decision (rule fired)", _spans(times, "key", "decided")),
        ("transfer decision -> in the queue (hold sentence first)", _spans(times, "decided", "queued")),
        ("in the queue -> ACD offers it to an agent", _spans(times, "queued", "offered")),
        ("ACD offer -> agent's phone rings", _spans(times, "offered", "rang")),
        ("(a) transfer decision -> agent's phone rings, all calls", _spans(times, "decided", "rang")),
        ("    ... calls that found an agent free", _spans(times, "decided", "rang", only_free=True)),
        ("    ... calls that waited for an agent", _spans(times, "decided", "rang", only_free=False)),
        ("agent's phone rings -> caller connected (briefing)", _spans(times, "rang", "replaced")),
        ("(b) transfer decision -> caller connected to the agent", _spans(times, "decided", "replaced")),
        ("caller connected -> ACD records it connected", _spans(times, "replaced", "acd_connected")),
        ("agent's wrap-up over -> its phone rings again", next_rings(runs, agents, wrap_up_s)),
    ]


def console_rows(label: str, times: ConsoleTimes) -> list[tuple[str, list[float]]]:
    return [(f"{page} ({label})", [ms / 1000 for ms in times.ms[page]]) for page in PAGES]


def print_rows(rows: list[tuple[str, list[float]]]) -> None:
    print(f"{'measure (ms)':<58}{'n':>5}{'p50':>9}{'p95':>9}{'max':>9}")
    for label, seconds in rows:
        if not seconds:
            print(f"{label:<58}{0:>5}{'-':>9}{'-':>9}{'-':>9}")
            continue
        ms = np.asarray(seconds) * 1000
        p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
        print(f"{label:<58}{len(ms):>5}{p50:>9.0f}{p95:>9.0f}{ms.max():>9.0f}")
