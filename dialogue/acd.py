"""Automatic call distribution: callers waiting for a human, the agents who can take them, and callback tasks.

Every operation is one short transaction on the operations database (`dialogue.ops_db.connect`, BEGIN IMMEDIATE):
SIP workers, the console and `serve` share one queue, never offer one agent twice, and a restart forgets nothing.
Order: queue priority, then call priority (higher first), then arrival. Times: the injected clock (time.time)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from dialogue.acd_store import (
    SCHEMA,
    Callback,
    Offer,
    WaitingCall,
    agent_row,
    all_agents,
    all_queues,
    call_row,
    callback_rows,
    connected_calls,
    end_connected_calls,
    end_wrap_ups,
    finite,
    in_queue,
    insert_agent,
    mean_handle_s,
    queue_to_json,
    require_agent,
    require_call,
    require_queue,
    return_to_queue,
    ring_failures,
    set_agent_status,
)
from dialogue.agents import AGENT_STATUSES, Agent, QueueSpec, agent_problems
from dialogue.ops_db import connect

__all__ = ["Acd", "Callback", "Offer", "WaitingCall", "skills_match"]

PHONE_NUMBER_RE = re.compile(r"^\+?[0-9]{3,20}$")
LOGGED_IN = ("available", "busy", "wrap_up")


def skills_match(agent: Agent, queue: QueueSpec) -> bool:
    """The agent speaks the queue's language and, when the queue names topics, knows one of them."""
    return queue.language in agent.languages and (not queue.topics or bool(set(queue.topics) & set(agent.topics)))


class Acd:
    def __init__(self, db_path: Path, clock: Callable[[], float] = time.time) -> None:
        self.db_path = db_path
        self.clock = clock
        with connect(db_path) as db:
            for statement in filter(str.strip, SCHEMA.split(";")):  # not executescript: it would end the transaction
                db.execute(statement)

    # --- directory -------------------------------------------------------------------------------

    def seed(self, agents: Iterable[Agent], queues: Iterable[QueueSpec]) -> None:
        """Agents missing from the database are added; known agents keep their live status and console edits.
        Queue specs are taken from the directory (they have no live state)."""
        now = self.clock()
        with connect(self.db_path) as db:
            for queue in queues:
                db.execute("INSERT OR REPLACE INTO acd_queues VALUES (?, ?)", [queue.name, queue_to_json(queue)])
            for agent in agents:
                _check_agent(agent)
                if not agent_row(db, agent.id):
                    insert_agent(db, agent, now)

    def agents(self) -> list[Agent]:
        with connect(self.db_path) as db:
            return all_agents(db)

    def queues(self) -> list[QueueSpec]:
        with connect(self.db_path) as db:
            return list(all_queues(db).values())

    def upsert_agent(self, agent: Agent) -> None:
        """A new agent is added with its status; a known one gets the new profile and keeps its live status.
        ValueError names the field and what is wrong with it."""
        _check_agent(agent)
        with connect(self.db_path) as db:
            if not agent_row(db, agent.id):
                insert_agent(db, agent, self.clock())
                return
            db.execute(
                "UPDATE acd_agents SET name = ?, sip_uri = ?, languages = ?, topics = ? WHERE id = ?",
                [agent.name, agent.sip_uri, json.dumps(agent.languages), json.dumps(agent.topics), agent.id],
            )

    def remove_agent(self, agent_id: str) -> None:
        """The agent leaves the directory; a call ringing them goes back to its place. KeyError: unknown agent."""
        with connect(self.db_path) as db:
            self._withdraw_offer(db, require_agent(db, agent_id))
            db.execute("DELETE FROM acd_agents WHERE id = ?", [agent_id])

    def set_status(self, agent_id: str, status: str) -> Agent:
        """The agent desk's buttons. Leaving `busy` while the phone rings withdraws the offer (the call goes back to
        its place); available, paused or offline ends its connected calls. KeyError/ValueError: unknown agent/status."""
        if status not in AGENT_STATUSES:
            raise ValueError(f"unknown agent status {status!r} (one of {', '.join(AGENT_STATUSES)})")
        with connect(self.db_path) as db:
            agent = require_agent(db, agent_id)
            if status != "busy":
                self._withdraw_offer(db, agent)
            if status not in ("busy", "wrap_up"):  # the agent says it is free: its transferred calls are over
                end_connected_calls(db, agent.id, self.clock())
            set_agent_status(db, agent, status, self.clock())
            return require_agent(db, agent_id)

    # --- calls -----------------------------------------------------------------------------------

    def enqueue(
        self, call_id: str, queue: str, priority: int = 0, language: str = "", context: dict[str, Any] | None = None
    ) -> WaitingCall:
        """The call enters `queue` behind calls of the same or higher priority. Asking again for the same call_id
        returns the call as it is: a retry never changes its place. KeyError: unknown queue."""
        with connect(self.db_path) as db:
            existing = call_row(db, call_id)
            if existing:
                return existing
            spec = require_queue(db, queue)
            db.execute(
                "INSERT INTO acd_calls (call_id, queue, priority, enqueued_at, language, context, state)"
                " VALUES (?, ?, ?, ?, ?, ?, 'waiting')",
                [call_id, queue, priority, self.clock(), language or spec.language, json.dumps(context or {})],
            )
            return require_call(db, call_id)

    def position(self, call_id: str) -> int | None:
        """1-based place among the calls of its queue still waiting or ringing; None once connected or gone."""
        with connect(self.db_path) as db:
            call = call_row(db, call_id)
            if not call or call.state not in ("waiting", "ringing"):
                return None
            return [other.call_id for other in in_queue(db, call.queue)].index(call_id) + 1

    def estimated_wait_s(self, call_id: str) -> float:
        """Seconds until an agent is likely free for this call: 0 when one is free for it, the queue's max wait when
        nobody who could take it is logged in. Calls ringing an agent do not count as ahead. KeyError: unknown call."""
        with connect(self.db_path) as db:
            call = require_call(db, call_id)
            if call.state != "waiting":
                return 0.0
            waiting = [other.call_id for other in in_queue(db, call.queue) if other.state == "waiting"]
            return _estimate(db, require_queue(db, call.queue), waiting.index(call_id))

    def waiting(self, queue: str | None = None) -> list[WaitingCall]:
        """Calls waiting or ringing, in service order within each queue."""
        with connect(self.db_path) as db:
            return in_queue(db, queue)

    def overdue(self) -> list[WaitingCall]:
        """Waiting calls that have waited their queue's max_wait_s: time to offer a callback or voicemail."""
        now = self.clock()
        with connect(self.db_path) as db:
            queues = all_queues(db)
            calls = in_queue(db)
        return [c for c in calls if c.state == "waiting" and now - c.enqueued_at >= queues[c.queue].max_wait_s]

    def dispatch(self) -> list[Offer]:
        """Offers waiting calls, in service order, each to the longest-idle available agent whose skills match and
        who has not just failed to answer it. The agent becomes busy and the call ringing. Ends due wrap-ups first."""
        now = self.clock()
        with connect(self.db_path) as db:
            end_wrap_ups(db, now)
            queues = all_queues(db)
            idle = sorted((a for a in all_agents(db) if a.status == "available"), key=lambda a: a.status_since)
            waiting = [call for call in in_queue(db) if call.state == "waiting"]
            offers = []
            for call in sorted(waiting, key=lambda c: (-queues[c.queue].priority, -c.priority, c.enqueued_at)):
                agent = _pick_agent(db, call, queues[call.queue], idle, now)
                if agent:
                    idle.remove(agent)
                    set_agent_status(db, agent, "busy", now)
                    db.execute(
                        "UPDATE acd_calls SET state = 'ringing', agent_id = ?, offered_at = ? WHERE call_id = ?",
                        [agent.id, now, call.call_id],
                    )
                    offers.append(Offer(call.call_id, agent.id, agent.sip_uri, call.queue, call.context))
            return offers

    def is_offered(self, call_id: str, agent_id: str) -> bool:
        """Whether the call still rings this agent: a worker polls this while ringing and hangs up the agent's leg
        when the offer was withdrawn (agent went offline or paused, caller hung up)."""
        with connect(self.db_path) as db:
            call = call_row(db, call_id)
            return bool(call and call.state == "ringing" and call.agent_id == agent_id)

    def offer_for(self, call_id: str) -> Offer | None:
        """The agent this call rings now, whichever process's dispatch() chose it (the call's worker rings it)."""
        with connect(self.db_path) as db:
            call = call_row(db, call_id)
            if call is None or call.state != "ringing" or call.agent_id is None:
                return None
            agent = require_agent(db, call.agent_id)
            return Offer(call.call_id, agent.id, agent.sip_uri, call.queue, call.context)

    def ring_timeout_s(self, queue: str) -> float:
        with connect(self.db_path) as db:
            return require_queue(db, queue).ring_timeout_s

    def ring_failed(self, call_id: str, agent_id: str) -> None:
        """The agent did not answer: the call goes back to its place and is offered to another agent first; the
        agent is available again unless they changed status meanwhile. Does nothing if the offer was withdrawn."""
        now = self.clock()
        with connect(self.db_path) as db:
            call = call_row(db, call_id)
            if not call or call.state != "ringing" or call.agent_id != agent_id:
                return
            return_to_queue(db, call_id, agent_id, now)
            agent = agent_row(db, agent_id)
            if agent and agent.status == "busy":
                set_agent_status(db, agent, "available", now)

    def connected(self, call_id: str, agent_id: str) -> None:
        """The agent took the call: it leaves the queue and the agent is busy. KeyError: unknown call or agent;
        ValueError: the call has ended or belongs to another agent."""
        now = self.clock()
        with connect(self.db_path) as db:
            call = require_call(db, call_id)
            agent = require_agent(db, agent_id)
            if call.state == "ended":
                raise ValueError(f"call {call_id} has ended: it cannot be connected to {agent_id}")
            if call.agent_id not in (None, agent_id):
                raise ValueError(f"call {call_id} is {call.state} with {call.agent_id}, not {agent_id}")
            if call.state == "connected":
                return
            db.execute(
                "UPDATE acd_calls SET state = 'connected', agent_id = ?, connected_at = ? WHERE call_id = ?",
                [agent_id, now, call_id],
            )
            set_agent_status(db, agent, "busy", now)

    def call_ended(self, call_id: str) -> None:
        """The caller hung up or the call is over: it leaves the queue (its number its context) at once; its agent
        goes to wrap-up, or is available again if it was only ringing. Unknown calls are ignored."""
        now = self.clock()
        with connect(self.db_path) as db:
            call = call_row(db, call_id)
            if not call or call.state == "ended":
                return
            db.execute("UPDATE acd_calls SET state = 'ended', ended_at = ?, context = json_remove(context, '$.caller') "
                       "WHERE call_id = ?", [now, call_id])  # the number is kept only while the caller waits
            db.execute("DELETE FROM acd_ring_failures WHERE call_id = ?", [call_id])
            agent = agent_row(db, call.agent_id) if call.agent_id else None
            if not agent:
                return
            if call.state == "connected":
                wrap_up_until = now + require_queue(db, call.queue).wrap_up_s
                db.execute(
                    "UPDATE acd_agents SET last_call_ended = ?, wrap_up_until = ? WHERE id = ?",
                    [now, wrap_up_until, agent.id],
                )
            if agent.status == "busy":  # an agent who went paused or offline meanwhile stays so
                set_agent_status(db, agent, "wrap_up" if call.state == "connected" else "available", now)

    def tick(self) -> None:
        """Agents whose wrap-up time is over become available (dispatch does this too)."""
        with connect(self.db_path) as db:
            end_wrap_ups(db, self.clock())

    # --- views -----------------------------------------------------------------------------------

    def queue_lengths(self) -> dict[str, int]:
        """Calls waiting or ringing, per queue (every queue listed)."""
        with connect(self.db_path) as db:
            lengths = dict.fromkeys(all_queues(db), 0)
            for call in in_queue(db):
                lengths[call.queue] += 1
            return lengths

    def expected_wait_by_queue(self) -> dict[str, float]:
        """The estimated wait of a call that would enter each queue now."""
        with connect(self.db_path) as db:
            waiting = [call.queue for call in in_queue(db) if call.state == "waiting"]
            return {name: _estimate(db, spec, waiting.count(name)) for name, spec in all_queues(db).items()}

    def open_queues(self) -> frozenset[str]:
        """Queues within business hours now (by the clock)."""
        now = datetime.fromtimestamp(self.clock(), tz=timezone.utc)  # noqa: UP017 (datetime.UTC needs 3.11)
        return frozenset(queue.name for queue in self.queues() if queue.hours.is_open(now))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view for the console: queues, calls in queue or with an agent, agents."""
        now, open_now = self.clock(), self.open_queues()
        lengths, expected = self.queue_lengths(), self.expected_wait_by_queue()
        with connect(self.db_path) as db:
            queues, queued, agents = all_queues(db), in_queue(db), all_agents(db)
            calls = queued + connected_calls(db)
        positions = {c.call_id: [o.queue for o in queued[: i + 1]].count(c.queue) for i, c in enumerate(queued)}
        on_call = {call.agent_id: call.call_id for call in calls if call.agent_id}
        return {
            "now": now,
            "queues": [
                {"name": q.name, "language": q.language, "topics": list(q.topics), "priority": q.priority,
                 "open": q.name in open_now, "length": lengths[q.name], "expected_wait_s": finite(expected[q.name])}
                for q in queues.values()
            ],
            "calls": [
                {"call_id": c.call_id, "queue": c.queue, "priority": c.priority, "state": c.state,
                 "language": c.language, "waited_s": now - c.enqueued_at, "agent_id": c.agent_id,
                 "position": positions.get(c.call_id), "context": c.context}
                for c in calls
            ],
            "agents": [
                {"id": a.id, "name": a.name, "sip_uri": a.sip_uri, "languages": list(a.languages),
                 "topics": list(a.topics), "status": a.status, "status_since": a.status_since,
                 "last_call_ended": a.last_call_ended, "call_id": on_call.get(a.id)}
                for a in agents
            ],
        }  # fmt: skip

    # --- callbacks -------------------------------------------------------------------------------

    def add_callback(self, call_id: str, number: str, language: str, context: dict[str, Any] | None = None) -> int:
        """A callback task with the call's context. ValueError when the number is not 3-20 digits (+ allowed first;
        spaces, dots and dashes are dropped)."""
        digits = re.sub(r"[\s.\-]", "", number)
        if not PHONE_NUMBER_RE.match(digits):
            raise ValueError(f"callback number {number!r} is not a phone number (3 to 20 digits, + allowed first)")
        with connect(self.db_path) as db:
            cursor = db.execute(
                "INSERT INTO acd_callbacks (call_id, number, language, context, created_at) VALUES (?, ?, ?, ?, ?)",
                [call_id, digits, language, json.dumps(context or {}), self.clock()],
            )
            return int(cursor.lastrowid or 0)

    def callbacks(self, done: bool = False) -> list[Callback]:
        """Callbacks still to do (oldest first), or those done (latest first)."""
        with connect(self.db_path) as db:
            return callback_rows(db, done)

    def complete_callback(self, callback_id: int, by: str) -> Callback:
        """Marks the task done by `by`. KeyError: unknown id; ValueError: already done."""
        with connect(self.db_path) as db:
            row = db.execute("SELECT done_at, done_by FROM acd_callbacks WHERE id = ?", [callback_id]).fetchone()
            if not row:
                raise KeyError(f"no callback task {callback_id}")
            if row[0] is not None:
                raise ValueError(f"callback task {callback_id} was already done by {row[1]}")
            db.execute(
                "UPDATE acd_callbacks SET done_at = ?, done_by = ? WHERE id = ?", [self.clock(), by, callback_id]
            )
            return next(task for task in callback_rows(db, done=True) if task.id == callback_id)

    # --- internals -------------------------------------------------------------------------------

    def _withdraw_offer(self, db: sqlite_utils.Database, agent: Agent) -> None:
        row = db.execute(
            "SELECT call_id FROM acd_calls WHERE state = 'ringing' AND agent_id = ?", [agent.id]
        ).fetchone()
        if row:
            return_to_queue(db, row[0], agent.id, self.clock())


def _pick_agent(
    db: sqlite_utils.Database, call: WaitingCall, queue: QueueSpec, idle: list[Agent], now: float
) -> Agent | None:
    """The longest-idle matching agent who has not failed this call. When only agents who failed it are free, a
    new round starts once the last failure is a ring timeout old: an exhausted list never strands a caller, and an
    agent who just let the phone ring is not rung again at once."""
    matching = [agent for agent in idle if skills_match(agent, queue)]
    failures = ring_failures(db, call.call_id)
    fresh = [agent for agent in matching if agent.id not in failures]
    if fresh or not matching:
        return fresh[0] if fresh else None
    if now - max(failures.values()) < queue.ring_timeout_s:
        return None
    db.execute("DELETE FROM acd_ring_failures WHERE call_id = ?", [call.call_id])
    return matching[0]


def _estimate(db: sqlite_utils.Database, queue: QueueSpec, waiting_ahead: int) -> float:
    """Free agents take the first calls at once; after that each of the N able agents frees up once per handle
    time, so the k-th call beyond the free agents waits about k * handle / N."""
    able = [agent for agent in all_agents(db) if agent.status in LOGGED_IN and skills_match(agent, queue)]
    if not able:
        return math.inf  # nobody who could take the call is signed in: no honest estimate
    free = sum(agent.status == "available" for agent in able)
    if waiting_ahead < free:
        return 0.0
    return (waiting_ahead - free + 1) * mean_handle_s(db, queue) / len(able)


def _check_agent(agent: Agent) -> None:
    problems = agent_problems(agent)
    if problems:
        raise ValueError("; ".join(f"agent {agent.id!r} {field}: {message}" for field, message in problems))
