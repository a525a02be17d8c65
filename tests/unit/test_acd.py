"""ACD on a real operations database (SQLite file) with an injected clock: routing, queue positions and waits,
ring failures, hang-ups, wrap-up, restarts, several processes, callbacks."""

from __future__ import annotations

import json
import math
import multiprocessing
from datetime import datetime, time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialogue.acd import Acd, Offer
from dialogue.acd_store import DEFAULT_HANDLE_S
from dialogue.agents import Agent, BusinessHours, QueueSpec, load_directory
from dialogue.ops_db import connect
from dialogue.state import DATA_DIR

ALWAYS = BusinessHours({day: ((time(0, 0), time.max),) for day in range(7)}, frozenset(), "Europe/Paris")
QUEUES = [
    QueueSpec("general-fr", "fr", ALWAYS, topics=("general",), wrap_up_s=30, ring_timeout_s=20, max_wait_s=300),
    QueueSpec("general-en", "en", ALWAYS, topics=("general",)),
    QueueSpec("civil-status-fr", "fr", ALWAYS, topics=("civil_status",), priority=1, wrap_up_s=60),
]


class Clock:
    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def agent(agent_id: str, languages: tuple[str, ...] = ("fr",), topics: tuple[str, ...] = ("general",)) -> Agent:
    return Agent(agent_id, agent_id.title(), f"sip:{agent_id}@127.0.0.1:5091", languages, topics)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "operations.db"


@pytest.fixture
def acd(db_path: Path, clock: Clock) -> Acd:
    return Acd(db_path, clock)


def staff(acd: Acd, clock: Clock, *agents: Agent) -> None:
    """Seeds the queues and agents, who log in one after another (1 s apart, in the order given)."""
    acd.seed(agents, QUEUES)
    for each in agents:
        acd.set_status(each.id, "available")
        clock.advance(1)


def offered(offers: list[Offer]) -> dict[str, str]:
    return {offer.call_id: offer.agent_id for offer in offers}


# --- Routing -----------------------------------------------------------------------------------------


def test_longest_idle_available_agent_gets_the_call(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"), agent("ben"), agent("cat"))
    acd.enqueue("c1", "general-fr", context={"summary": "lost ID card"})
    [offer] = acd.dispatch()
    assert offer == Offer("c1", "ana", "sip:ana@127.0.0.1:5091", "general-fr", {"summary": "lost ID card"})
    assert acd.agents()[0].status == "busy"
    acd.connected("c1", "ana")
    clock.advance(60)
    acd.call_ended("c1")
    clock.advance(30)  # ana's wrap-up is over: she is now the most recently idle
    acd.enqueue("c2", "general-fr")
    acd.enqueue("c3", "general-fr")
    assert offered(acd.dispatch()) == {"c2": "ben", "c3": "cat"}
    acd.enqueue("c4", "general-fr")
    assert offered(acd.dispatch()) == {"c4": "ana"}


def test_pressing_available_again_keeps_idle_time(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"), agent("ben"))
    acd.set_status("ana", "available")
    acd.enqueue("c1", "general-fr")
    assert offered(acd.dispatch()) == {"c1": "ana"}


def test_skills_language_and_topic_must_match(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana", ("fr",)), agent("bob", ("en", "fr"), ("emergency",)), agent("eve", ("en",)))
    acd.enqueue("fr1", "general-fr")
    acd.enqueue("en1", "general-en")
    acd.enqueue("civ1", "civil-status-fr")
    assert offered(acd.dispatch()) == {"fr1": "ana", "en1": "eve"}  # bob knows neither topic; nobody knows civil status
    assert acd.waiting("civil-status-fr")[0].state == "waiting"
    acd.upsert_agent(agent("bob", ("en", "fr"), ("emergency", "civil_status")))  # console edit, status kept
    assert offered(acd.dispatch()) == {"civ1": "bob"}


def test_priority_orders_the_queue_and_higher_priority_queues_go_first(acd: Acd, clock: Clock) -> None:
    acd.seed([agent("ana", topics=("general", "civil_status"))], QUEUES)
    for call_id, priority in [("c1", 0), ("c2", 0), ("urgent", 5), ("c3", 0)]:
        acd.enqueue(call_id, "general-fr", priority=priority)
        clock.advance(1)
    assert [call.call_id for call in acd.waiting("general-fr")] == ["urgent", "c1", "c2", "c3"]
    assert [acd.position(call_id) for call_id in ("urgent", "c1", "c2", "c3")] == [1, 2, 3, 4]
    acd.enqueue("civil", "civil-status-fr")  # the last to arrive, in a queue of priority 1
    acd.set_status("ana", "available")
    assert offered(acd.dispatch()) == {"civil": "ana"}


def test_enqueue_is_idempotent_and_rejects_unknown_queues(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    first = acd.enqueue("c1", "general-fr", language="fr", context={"case": "PA-12345"})
    clock.advance(5)
    assert acd.enqueue("c1", "general-fr", priority=9) == first
    assert first.language == "fr" and first.context == {"case": "PA-12345"}
    with pytest.raises(KeyError, match="no queue 'nowhere'"):
        acd.enqueue("c2", "nowhere")


# --- Positions and waits ---------------------------------------------------------------------------------


def test_positions_and_estimated_wait_follow_the_queue(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    acd.enqueue("first", "general-fr")
    assert offered(acd.dispatch()) == {"first": "ana"}
    acd.connected("first", "ana")
    for call_id in ("c1", "c2", "c3"):
        acd.enqueue(call_id, "general-fr")
    handle = DEFAULT_HANDLE_S + QUEUES[0].wrap_up_s  # nothing measured yet
    assert [acd.position(c) for c in ("c1", "c2", "c3")] == [1, 2, 3]
    assert [acd.estimated_wait_s(c) for c in ("c1", "c2", "c3")] == [handle, 2 * handle, 3 * handle]
    assert acd.expected_wait_by_queue()["general-fr"] == 4 * handle

    clock.advance(90)
    acd.call_ended("first")  # 90 s of talk: the handle time is now measured
    acd.call_ended("c1")  # caller hung up while waiting
    measured = 90 + QUEUES[0].wrap_up_s
    assert [acd.position(c) for c in ("c1", "c2", "c3")] == [None, 1, 2]
    assert [acd.estimated_wait_s(c) for c in ("c2", "c3")] == [measured, 2 * measured]

    acd.seed([agent("ben")], QUEUES)
    acd.set_status("ben", "available")  # a free agent: the head waits no longer, the next shares two agents
    assert [acd.estimated_wait_s(c) for c in ("c2", "c3")] == [0.0, measured / 2]
    assert acd.queue_lengths() == {"civil-status-fr": 0, "general-en": 0, "general-fr": 2}


def test_nobody_logged_in_means_no_estimate(acd: Acd, clock: Clock) -> None:
    acd.seed([agent("ana")], QUEUES)
    acd.enqueue("c1", "general-fr")
    assert acd.estimated_wait_s("c1") == math.inf
    assert acd.snapshot()["queues"][0]["expected_wait_s"] is None  # JSON has no infinity
    assert acd.overdue() == []
    clock.advance(QUEUES[0].max_wait_s)
    assert [call.call_id for call in acd.overdue()] == ["c1"]


# --- Ringing, answering, hanging up ------------------------------------------------------------------------


def test_ring_failed_keeps_the_place_and_offers_the_next_agent(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"), agent("ben"))
    acd.enqueue("c1", "general-fr")
    clock.advance(1)
    acd.enqueue("c2", "general-fr")
    acd.set_status("ben", "paused")
    assert offered(acd.dispatch()) == {"c1": "ana"}
    clock.advance(20)
    acd.ring_failed("c1", "ana")
    assert [acd.position("c1"), acd.position("c2")] == [1, 2]
    assert acd.agents()[0].status == "available"
    assert offered(acd.dispatch()) == {"c2": "ana"}  # c1 is not offered to ana again; c2 may take her
    acd.set_status("ben", "available")
    assert offered(acd.dispatch()) == {"c1": "ben"}


def test_a_lone_agent_is_tried_again_after_a_ring_timeout(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    acd.enqueue("c1", "general-fr")
    assert offered(acd.dispatch()) == {"c1": "ana"}
    acd.ring_failed("c1", "ana")
    assert acd.dispatch() == []
    clock.advance(QUEUES[0].ring_timeout_s)
    assert offered(acd.dispatch()) == {"c1": "ana"}


def test_agent_going_offline_mid_ring_withdraws_the_offer(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"), agent("ben"))
    acd.enqueue("c1", "general-fr")
    assert offered(acd.dispatch()) == {"c1": "ana"}
    assert acd.is_offered("c1", "ana")
    acd.set_status("ana", "offline")
    assert not acd.is_offered("c1", "ana")
    assert acd.position("c1") == 1 and acd.waiting()[0].state == "waiting"
    assert offered(acd.dispatch()) == {"c1": "ben"}
    acd.ring_failed("c1", "ana")  # the worker's late report changes nothing
    assert acd.is_offered("c1", "ben")
    assert {a.id: a.status for a in acd.agents()} == {"ana": "offline", "ben": "busy"}
    with pytest.raises(ValueError, match="ringing with ben, not ana"):
        acd.connected("c1", "ana")


def test_caller_hang_up_leaves_the_queue_at_once(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    for call_id in ("c1", "c2", "c3"):
        acd.enqueue(call_id, "general-fr")
    assert offered(acd.dispatch()) == {"c1": "ana"}
    acd.call_ended("c2")
    assert [call.call_id for call in acd.waiting()] == ["c1", "c3"]
    assert acd.position("c2") is None and acd.position("c3") == 2
    acd.call_ended("c1")  # hung up while ana's phone rang: she did not take a call, no wrap-up
    assert acd.agents()[0].status == "available"
    assert not acd.is_offered("c1", "ana")
    acd.call_ended("c1")  # reported twice, or for a call never queued: nothing happens
    acd.call_ended("never-queued")
    assert offered(acd.dispatch()) == {"c3": "ana"}


def test_wrap_up_ends_after_the_queue_wrap_up_time(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana", topics=("civil_status",)))
    acd.enqueue("c1", "civil-status-fr")
    acd.dispatch()
    acd.connected("c1", "ana")
    assert acd.position("c1") is None and acd.waiting() == []
    clock.advance(120)
    acd.call_ended("c1")
    [ana] = acd.agents()
    assert (ana.status, ana.last_call_ended) == ("wrap_up", clock.now)
    acd.enqueue("c2", "civil-status-fr")
    clock.advance(QUEUES[2].wrap_up_s - 1)
    acd.tick()
    assert acd.agents()[0].status == "wrap_up"
    assert acd.dispatch() == []
    clock.advance(1)
    assert offered(acd.dispatch()) == {"c2": "ana"}  # dispatch ends due wrap-ups itself


def test_agent_desk_errors(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    with pytest.raises(ValueError, match="unknown agent status 'lunch'"):
        acd.set_status("ana", "lunch")
    with pytest.raises(KeyError, match="no agent 'zed'"):
        acd.set_status("zed", "available")
    with pytest.raises(ValueError, match="sip_uri: 'ana@host' does not start with sip:"):
        acd.upsert_agent(Agent("ana", "Ana", "ana@host", ("fr",), ()))


# --- Shared state ---------------------------------------------------------------------------------------


def test_state_survives_a_restart(db_path: Path, clock: Clock) -> None:
    before = Acd(db_path, clock)
    staff(before, clock, agent("ana"), agent("ben"))
    before.enqueue("c1", "general-fr", language="en", context={"intent": "passport"})
    before.enqueue("c2", "general-fr")
    assert offered(before.dispatch()) == {"c1": "ana", "c2": "ben"}
    before.ring_failed("c2", "ben")
    before.set_status("ben", "paused")
    del before

    after = Acd(db_path, clock)
    after.seed([agent("ana"), agent("ben")], QUEUES)  # startup seeding leaves live state alone
    assert [(c.call_id, c.state, c.agent_id) for c in after.waiting()] == [
        ("c1", "ringing", "ana"),
        ("c2", "waiting", None),
    ]
    assert after.waiting()[0].context == {"intent": "passport"} and after.waiting()[0].language == "en"
    assert {a.id: a.status for a in after.agents()} == {"ana": "busy", "ben": "paused"}
    after.ring_failed("c1", "ana")
    assert after.position("c1") == 1
    assert offered(after.dispatch()) == {"c2": "ana"}


def test_two_instances_never_offer_one_agent_twice(db_path: Path, clock: Clock) -> None:
    first, second = Acd(db_path, clock), Acd(db_path, clock)
    staff(first, clock, agent("ana"), agent("ben"))
    for call_id in ("c1", "c2", "c3"):
        second.enqueue(call_id, "general-fr")
    assert offered(first.dispatch()) == {"c1": "ana", "c2": "ben"}
    assert second.dispatch() == []
    second.connected("c1", "ana")
    assert first.position("c1") is None and first.position("c3") == 2  # c2 still rings ahead of it


def _work_the_queue(db_path: str, start: Barrier, results: multiprocessing.Queue) -> None:
    """A worker process: takes every offer it gets, talks, hangs up and makes the agent available again. Reports
    its offers and its problems: an agent found ringing another call (a double assignment), or an error."""
    acd = Acd(Path(db_path))
    start.wait()
    pairs, problems = [], []
    try:
        for _ in range(200):
            if not acd.waiting():
                break
            for offer in acd.dispatch():
                pairs.append((offer.call_id, offer.agent_id))
                problems += [f"{offer.agent_id} also rings {c.call_id}" for c in acd.waiting()
                             if c.agent_id == offer.agent_id and c.call_id != offer.call_id]  # fmt: skip
                acd.connected(offer.call_id, offer.agent_id)
                acd.call_ended(offer.call_id)
                acd.set_status(offer.agent_id, "available")
    except Exception as exc:
        problems.append(repr(exc))
    results.put((pairs, problems))


def test_processes_dispatching_at_once_never_share_an_agent_or_a_call(db_path: Path) -> None:
    acd = Acd(db_path)
    agents = [agent(f"agent{i}") for i in range(4)]
    acd.seed(agents, QUEUES)
    for each in agents:
        acd.set_status(each.id, "available")
    calls = [f"call{i}" for i in range(40)]
    for call_id in calls:
        acd.enqueue(call_id, "general-fr")
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_work_the_queue, args=(str(db_path), start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    pairs = [pair for report_pairs, _ in reports for pair in report_pairs]
    assert [problem for _, problems in reports for problem in problems] == []
    assert sorted(call_id for call_id, _ in pairs) == sorted(calls)  # each call offered exactly once
    assert sum(bool(report_pairs) for report_pairs, _ in reports) >= 2, "the processes did not overlap"
    assert acd.waiting() == [] and {a.status for a in acd.agents()} == {"available"}


# --- Views and callbacks --------------------------------------------------------------------------------


def test_open_queues_follow_the_seed_directory_hours(db_path: Path) -> None:
    agents, queues = load_directory(DATA_DIR / "agents.yaml")
    paris = ZoneInfo("Europe/Paris")
    clock = Clock(datetime(2026, 3, 4, 10, 0, tzinfo=paris).timestamp())  # a Wednesday morning
    acd = Acd(db_path, clock)
    acd.seed(agents, queues)
    assert acd.open_queues() == {queue.name for queue in queues}
    clock.now = datetime(2026, 3, 4, 12, 30, tzinfo=paris).timestamp()  # civil status closes for lunch
    assert acd.open_queues() == {"general-fr", "general-en", "emergency"}
    clock.now = datetime(2026, 5, 1, 10, 0, tzinfo=paris).timestamp()  # a Friday, Labour Day
    assert acd.open_queues() == {"emergency"}


def test_snapshot_is_json_for_the_console(acd: Acd, clock: Clock) -> None:
    staff(acd, clock, agent("ana"))
    acd.enqueue("c1", "general-fr", context={"transcript": ["bonjour"]})
    acd.enqueue("c2", "general-fr")
    acd.dispatch()
    snapshot = json.loads(json.dumps(acd.snapshot()))
    calls = {call["call_id"]: call for call in snapshot["calls"]}
    assert (calls["c1"]["state"], calls["c1"]["agent_id"], calls["c1"]["position"]) == ("ringing", "ana", 1)
    assert (calls["c2"]["state"], calls["c2"]["position"]) == ("waiting", 2)
    assert snapshot["agents"][0]["call_id"] == "c1"
    general = next(queue for queue in snapshot["queues"] if queue["name"] == "general-fr")
    assert general["length"] == 2 and general["open"] is True


def test_callback_tasks(acd: Acd, clock: Clock) -> None:
    first = acd.add_callback("c1", "06 12 34 56 78", "fr", {"queue": "general-fr", "summary": "permis"})
    clock.advance(10)
    second = acd.add_callback("c2", "+44 20 7946 0958", "en")
    assert [(t.id, t.number) for t in acd.callbacks()] == [(first, "0612345678"), (second, "+442079460958")]
    assert acd.callbacks()[0].context == {"queue": "general-fr", "summary": "permis"}
    done = acd.complete_callback(first, by="ana")
    assert (done.done_by, done.done_at) == ("ana", clock.now)
    assert [t.id for t in acd.callbacks()] == [second]
    assert [t.id for t in acd.callbacks(done=True)] == [first]
    with pytest.raises(ValueError, match="already done by ana"):
        acd.complete_callback(first, by="ben")
    with pytest.raises(KeyError):
        acd.complete_callback(999, by="ana")
    with pytest.raises(ValueError, match="is not a phone number"):
        acd.add_callback("c3", "call me maybe", "en")


def test_an_agent_back_at_the_desk_ends_its_transferred_call_and_the_handle_time_is_learnt(
    acd: Acd, clock: Clock
) -> None:
    acd.seed([agent("ana")], QUEUES)
    acd.set_status("ana", "available")
    acd.enqueue("c1", "general-fr")
    assert [offer.call_id for offer in acd.dispatch()] == ["c1"]
    acd.connected("c1", "ana")
    clock.advance(95)  # after REFER the bot no longer sees the call: the agent says when it is over
    acd.set_status("ana", "available")
    assert all(call["call_id"] != "c1" for call in acd.snapshot()["calls"])
    acd.set_status("ana", "busy")
    acd.enqueue("c2", "general-fr")
    acd.enqueue("c3", "general-fr")
    learnt = 95 + QUEUES[0].wrap_up_s  # not the 180 s default any more
    assert [acd.estimated_wait_s(c) for c in ("c2", "c3")] == [learnt, 2 * learnt]


def test_the_callers_number_leaves_the_queue_context_when_the_call_ends(tmp_path: Path) -> None:
    acd = Acd(tmp_path / "operations.db")
    acd.seed([], [QueueSpec("general-en", "en", ALWAYS)])
    acd.enqueue("c-num", "general-en", 0, "en", {"caller": "sip:+33612345678@trunk", "summary": "wants a person"})
    assert acd.snapshot()["calls"][0]["context"]["caller"] == "sip:+33612345678@trunk"
    acd.call_ended("c-num")
    with connect(tmp_path / "operations.db") as db:
        (context,) = db.execute("SELECT context FROM acd_calls WHERE call_id = 'c-num'").fetchone()
    assert json.loads(context) == {"summary": "wants a person"}
