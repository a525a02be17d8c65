"""The agent queue over real SIP on loopback: a voicebot worker in queue mode, pjsua2 phones as caller and agents,
and the web console in a real headless Chromium (Debian's, driven by Playwright).

The caller presses 0, the live transfer rules send it to its language's queue, it hears its position and the
estimated wait while the queue moves; the longest-idle agent's phone rings but nobody picks up, so the next agent
is tried, briefed and connected; a caller who hangs up while waiting leaves the queue at once; an agent who signs in
on the desk page gets the next call on its phone with the screen-pop; a rule a supervisor saves in the browser
routes the next call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from dialogue.acd import Acd
from dialogue.rasa_service import RasaService
from tests.support.queue_harness import (
    QueueLine,
    call_state,
    chromium,
    logged_in,
    queue_line,
    running_console,
    wait_until,
)
from tests.support.sip_harness import phone, phone_events, recording, stop_phone
from voicebot.config import REPO_ROOT
from voicebot.engines.stt import WhisperSTT
from voicebot.recordings import load_recordings

pytestmark = pytest.mark.rasa

WORKER_PORT, SILENT_AGENT_PORT, AGENT_PORT, CONSOLE_PORT = 5600, 5611, 5612, 8191
GREETING_S = 6.5
AGENTS_YAML = f"""
timezone: Europe/Paris
hours:
  always: {{mon: "00:00-24:00", tue: "00:00-24:00", wed: "00:00-24:00", thu: "00:00-24:00",
           fri: "00:00-24:00", sat: "00:00-24:00", sun: "00:00-24:00"}}
queues:
  - {{name: general-en, language: en, topics: [general], hours: always, ring_timeout_s: 6}}
  - {{name: general-fr, language: fr, topics: [general], hours: always, ring_timeout_s: 6}}
  - {{name: civil-status-en, language: en, topics: [civil_status], hours: always}}
  - {{name: civil-status-fr, language: fr, topics: [civil_status], hours: always}}
  - {{name: emergency, language: fr, topics: [emergency], hours: always}}
agents:
  - {{id: away, name: Agent Away, sip_uri: "sip:away@127.0.0.1:{SILENT_AGENT_PORT}", languages: [en],
     topics: [general]}}
  - {{id: bea, name: Bea Agent, sip_uri: "sip:bea@127.0.0.1:{AGENT_PORT}", languages: [en], topics: [general]}}
"""


@pytest.fixture(scope="module")
def line(rasa_service: RasaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueLine]:
    folder = tmp_path_factory.mktemp("agent-queue")
    with queue_line(rasa_service, folder, AGENTS_YAML, WORKER_PORT, "q0", {"rtp_port": 43000}) as line:
        yield line


@pytest.fixture(scope="module")
def console(line: QueueLine) -> Iterator[str]:
    with running_console(line, CONSOLE_PORT, [("sam", "supervisor", None), ("bea", "agent", "bea")]) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT("tiny.en", REPO_ROOT / ".cache" / "models")


def queued_call(acd: Acd) -> str | None:
    calls = [call.call_id for call in acd.waiting("general-en") if call.call_id != "ahead"]
    return calls[0] if calls else None


def test_the_caller_hears_the_queue_move_and_the_next_agent_takes_the_call(
    line: QueueLine, stt: WhisperSTT, tmp_path: Path
) -> None:
    acd = line.acd
    acd.set_status("bea", "busy")  # signed in, on another call: callers queue (nobody signed in: callback offer)
    acd.enqueue("ahead", "general-en", 0, "en", {"summary": "another caller, already waiting"})
    jfk = next(r for r in load_recordings() if r.name == "jfk").path
    silent = phone("answer", "--ring-only", port=SILENT_AGENT_PORT)
    agent = phone("answer", "--record", str(tmp_path / "agent.wav"), port=AGENT_PORT)
    caller = phone("call", "--dtmf", f"{GREETING_S}:0", "--record", str(tmp_path / "heard.wav"),
                   "--transfer-play", str(jfk), "--hangup-at", "95", "--max-s", "110",
                   "--name", "ann", port=5621, uri=line.worker.uri)  # fmt: skip
    try:
        wait_until(lambda: queued_call(acd) is not None, 40, "the caller to be queued")
        call_id = queued_call(acd)
        assert call_id is not None and acd.position(call_id) == 2
        time.sleep(9)  # the announcement of place 2
        acd.call_ended("ahead")  # the caller ahead hangs up: our caller moves up
        assert acd.position(call_id) == 1
        time.sleep(8)  # the announcement of place 1
        acd.set_status("away", "available")
        time.sleep(1.0)
        acd.set_status("bea", "available")  # idle for less time than "away": offered second
        wait_until(lambda: call_state(acd, call_id) == "connected", 40, "the call to be connected")
    finally:
        caller_log = phone_events(caller, 140)
        silent_log, agent_log = stop_phone(silent), stop_phone(agent)

    heard = recording(tmp_path / "heard.wav")
    said = stt.transcribe(heard, "en").text.lower()
    assert "number 2 in the queue" in said or "number two in the queue" in said, said
    assert "next in the queue" in said, said
    assert [e for e in silent_log if e["event"] == "incoming"], "the longest-idle agent was rung first"
    assert not [e for e in silent_log if e["event"] == "replaced"], silent_log
    assert [e for e in agent_log if e["event"] == "replaced"], agent_log
    briefing = stt.transcribe(recording(tmp_path / "agent.wav"), "en").text.lower()
    assert "assistant" in briefing and "press" in briefing, briefing
    caller_leg = stt.transcribe(recording(tmp_path / "agent.leg1.wav"), "en").text.lower()
    assert "fellow" in caller_leg or "country" in caller_leg, "the agent did not hear the caller after the transfer"
    assert [e for e in caller_log if e["event"] == "transfer-request"], caller_log
    assert next(a for a in acd.agents() if a.id == "bea").status == "busy"


def test_a_caller_who_hangs_up_while_waiting_leaves_the_queue(line: QueueLine, tmp_path: Path) -> None:
    acd = line.acd
    acd.set_status("away", "offline")
    acd.set_status("bea", "busy")
    caller = phone("call", "--dtmf", f"{GREETING_S}:0", "--hangup-at", "22", "--name", "ben", port=5622,
                   uri=line.worker.uri)
    try:
        wait_until(lambda: queued_call(acd) is not None, 40, "the caller to be queued")
        call_id = queued_call(acd)
    finally:
        phone_events(caller, 60)
    hung_up_at = time.monotonic()
    wait_until(lambda: queued_call(acd) is None, 3, "the call to leave the queue")
    assert time.monotonic() - hung_up_at < 3
    assert call_id not in {call.call_id for call in acd.waiting()}


def test_with_nobody_signed_in_the_caller_is_offered_a_callback_and_keys_a_number(
    line: QueueLine, stt: WhisperSTT, tmp_path: Path
) -> None:
    acd = line.acd
    for agent in acd.agents():
        acd.set_status(agent.id, "offline")
    before = {task.id for task in acd.callbacks()}
    caller = phone("call", "--dtmf", f"{GREETING_S}:0,16:0612345678#", "--record", str(tmp_path / "heard.wav"),
                   "--hangup-at", "45", "--name", "cat", port=5623, uri=line.worker.uri)  # fmt: skip
    caller_log = phone_events(caller, 90)

    tasks = [task for task in acd.callbacks() if task.id not in before]
    assert [task.number for task in tasks] == ["0612345678"], (tasks, caller_log)
    assert tasks[0].language == "en" and tasks[0].context["reason"] == "dtmf_0", tasks[0]
    said = stt.transcribe(recording(tmp_path / "heard.wav"), "en").text.lower()
    assert "call you back" in said and "bye" in said, said  # "goodbye" or "bye bye", as Whisper hears it
    assert queued_call(acd) is None


def test_an_agent_who_signs_in_on_the_desk_gets_the_call_and_its_screen_pop(
    line: QueueLine, console: str, browser: Browser, tmp_path: Path
) -> None:
    acd = line.acd
    acd.set_status("away", "busy")  # signed in elsewhere: the caller queues rather than being offered a callback
    acd.set_status("bea", "offline")
    agent = phone("answer", "--record", str(tmp_path / "agent.wav"), port=AGENT_PORT)
    caller = phone("call", "--dtmf", f"{GREETING_S}:0", "--hangup-at", "45", "--name", "dan", port=5624,
                   uri=line.worker.uri)  # fmt: skip
    try:
        wait_until(lambda: queued_call(acd) is not None, 40, "the caller to be queued")
        call_id = queued_call(acd)
        desk = logged_in(browser, console, "bea")
        expect(desk.locator("#desk-status")).to_have_text("offline")
        desk.get_by_role("button", name="Available").click()
        pop = desk.locator("#screen-pop")
        expect(pop.locator(".call-summary")).to_contain_text("pressed 0", timeout=20_000)
        expect(pop.locator(".call-language")).to_have_text("en")
        expect(pop.locator(".transcript")).to_contain_text("[keys 0]")
        wait_until(lambda: call_state(acd, call_id) == "connected", 40, "the call to be connected")
        expect(pop).to_contain_text("On call", timeout=20_000)
        desk.get_by_role("button", name="Call finished").click()  # the agent is done talking: wrap-up
        expect(desk.locator("#desk-status")).to_have_text("wrap_up")
        assert call_state(acd, call_id) is None
    finally:
        phone_events(caller, 90)
        agent_log = stop_phone(agent)
    assert [e for e in agent_log if e["event"] == "replaced"], agent_log


def test_a_rule_saved_in_the_browser_routes_the_next_call(line: QueueLine, console: str, browser: Browser) -> None:
    acd = line.acd
    acd.set_status("away", "busy")
    editor = logged_in(browser, console, "sam")
    editor.goto(f"{console}/rules")
    text = editor.locator("#rules-text").input_value()
    keypad_zero = '  - name: keypad-zero\n    when:\n      dtmf: "0"\n      business_hours: open\n    then:\n'
    general = keypad_zero + '      queue: "general-{language}"'
    assert general in text
    editor.locator("#rules-text").fill(text.replace(general, keypad_zero + "      queue: no-such-queue"))
    editor.get_by_role("button", name="Save as new version").click()
    expect(editor.locator("#rule-problems")).to_contain_text("unknown queue 'no-such-queue'")
    editor.locator("#rules-text").fill(text.replace(general, keypad_zero + '      queue: "civil-status-{language}"'))
    editor.get_by_role("button", name="Save as new version").click()
    expect(editor.locator(".notice")).to_contain_text("now live")

    caller = phone("call", "--dtmf", f"{GREETING_S}:0", "--hangup-at", "20", "--name", "eve", port=5625,
                   uri=line.worker.uri)  # fmt: skip
    try:
        wait_until(lambda: bool(acd.waiting("civil-status-en")), 40, "the caller to be queued for civil status")
    finally:
        phone_events(caller, 60)
    assert not acd.waiting("general-en")
