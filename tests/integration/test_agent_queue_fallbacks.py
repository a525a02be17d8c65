"""The agent queue's fallbacks over real SIP on loopback: a voicebot worker in queue mode, pjsua2 phones as caller,
agents and fixed line, and the agent desk in a real headless Chromium (Debian's, driven by Playwright).

An agent whose phone is ringing goes offline on the desk: its phone stops ringing (the INVITE is cancelled), the
caller keeps its place with hold audio and no long silence, and the next agent who signs in is briefed and connected.
The operations database breaks while a caller is about to be queued: the caller hears an apology and is transferred
blind (REFER) to the queue's fixed line from `sip.transfer_targets`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, expect

from dialogue.acd import Acd
from dialogue.rasa_service import RasaService
from tests.support.queue_harness import (
    QueueLine,
    call_state,
    chromium,
    live_phone,
    logged_in,
    queue_line,
    running_console,
    wait_until,
)
from tests.support.sip_harness import Worker, recording, rms_windows
from voicebot.audio import AudioChunk
from voicebot.call_schema import CALLS_DB_NAME
from voicebot.config import REPO_ROOT
from voicebot.console.call_history import call_record
from voicebot.engines.stt import WhisperSTT
from voicebot.recordings import load_recordings

pytestmark = pytest.mark.rasa

WORKER_PORT, AWAY_PORT, BEA_PORT, QUEUE_LINE_PORT, CONSOLE_PORT = 5640, 5641, 5642, 5643, 8193
QUEUE_LINE = f"sip:general-line@127.0.0.1:{QUEUE_LINE_PORT}"
SWITCHBOARD = "sip:switchboard@127.0.0.1:5649"  # the default line: the queue's own line must win over it
GREETING_S = 6.5
RING_TIMEOUT_S = 60  # far longer than the test lets the phone ring: only the desk can stop it
SILENCE_RMS = 0.005  # hold music is ~0.02 RMS at the quiet end of each note, speech far above
MAX_SILENCE_S = 2.0
JFK_S = 11.0
AGENTS_YAML = f"""
timezone: Europe/Paris
hours:
  always: {{mon: "00:00-24:00", tue: "00:00-24:00", wed: "00:00-24:00", thu: "00:00-24:00",
           fri: "00:00-24:00", sat: "00:00-24:00", sun: "00:00-24:00"}}
queues:
  - {{name: general-en, language: en, topics: [general], hours: always, ring_timeout_s: {RING_TIMEOUT_S}}}
  - {{name: general-fr, language: fr, topics: [general], hours: always}}
  - {{name: civil-status-en, language: en, topics: [civil_status], hours: always}}
  - {{name: civil-status-fr, language: fr, topics: [civil_status], hours: always}}
  - {{name: emergency, language: fr, topics: [emergency], hours: always}}
agents:
  - {{id: away, name: Agent Away, sip_uri: "sip:away@127.0.0.1:{AWAY_PORT}", languages: [en], topics: [general]}}
  - {{id: bea, name: Bea Agent, sip_uri: "sip:bea@127.0.0.1:{BEA_PORT}", languages: [en], topics: [general]}}
"""


@pytest.fixture(scope="module")
def line(rasa_service: RasaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueLine]:
    folder = tmp_path_factory.mktemp("agent-queue-fallbacks")
    sip = {"rtp_port": 48000, "transfer_targets": {"default": SWITCHBOARD, "general-en": QUEUE_LINE}}
    with queue_line(rasa_service, folder, AGENTS_YAML, WORKER_PORT, "qf", sip) as line:
        yield line


@pytest.fixture(scope="module")
def console(line: QueueLine) -> Iterator[str]:
    with running_console(line, CONSOLE_PORT, [("away", "agent", "away"), ("bea", "agent", "bea")]) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT("tiny.en", REPO_ROOT / ".cache" / "models")


def jfk() -> str:
    return str(next(r for r in load_recordings() if r.name == "jfk").path)


def queued_call(acd: Acd) -> str | None:
    calls = [call.call_id for call in acd.waiting("general-en") if call.call_id != "behind"]
    return calls[0] if calls else None


def test_an_agent_who_goes_offline_mid_ring_stops_ringing_and_the_caller_keeps_its_place(
    line: QueueLine, console: str, browser: Browser, stt: WhisperSTT, tmp_path: Path
) -> None:
    acd = line.acd
    acd.set_status("away", "available")  # the only one signed in: the caller's call rings this phone
    acd.set_status("bea", "offline")
    away = live_phone("answer", "--ring-only", port=AWAY_PORT)  # away from the desk: never picks up
    bea = live_phone("answer", "--record", str(tmp_path / "bea.wav"), port=BEA_PORT)
    away_desk, bea_desk = logged_in(browser, console, "away"), logged_in(browser, console, "bea")
    caller = live_phone("call", "--dtmf", f"{GREETING_S}:0", "--record", str(tmp_path / "heard.wav"),
                        "--transfer-play", jfk(), "--hangup-at", "75", "--max-s", "100", "--name", "fay",
                        port=5651, uri=line.worker.uri)  # fmt: skip
    try:
        wait_until(lambda: queued_call(acd) is not None, 40, "the caller to be queued")
        queued_at, call_id = time.monotonic(), queued_call(acd)
        assert call_id is not None
        acd.enqueue("behind", "general-en", 0, "en", {"summary": "a caller who came later"})
        away.wait_for("incoming", 20)
        time.sleep(2.0)  # the phone rings on
        assert acd.is_offered(call_id, "away") and not away.of("state", state="DISCONNECTED"), away.events
        clicked_at = time.monotonic()
        away_desk.get_by_role("button", name="Offline").click()
        expect(away_desk.locator("#desk-status")).to_have_text("offline")
        stopped = away.wait_for("state", 10, state="DISCONNECTED")
        assert acd.position(call_id) == 1 and acd.position("behind") == 2
        time.sleep(6.0)  # nobody can take the call: the caller waits, at its place, with hold audio
        assert call_state(acd, call_id) == "waiting" and acd.position(call_id) == 1
        bea_desk.get_by_role("button", name="Available").click()
        wait_until(lambda: call_state(acd, call_id) == "connected", 40, "the call to be connected to bea")
        transferred = caller.wait_for("transfer-request", 10)
        bea.wait_for("replaced", 10)
        time.sleep(JFK_S + 2)  # bea hears the caller (the recording played on the transferred call)
    finally:
        caller_log = caller.stop()
        away_log, bea_log = away.stop(), bea.stop()
        acd.call_ended("behind")
        for page in (away_desk, bea_desk):
            page.context.close()

    assert stopped["status"] == 487 and stopped["t"] - clicked_at < 3, stopped  # CANCELled: Request Terminated
    assert [e["event"] for e in away_log].count("incoming") == 1, away_log  # not offered again once offline
    assert not [e for e in away_log if e["event"] == "state" and e["state"] == "CONFIRMED"], away_log
    assert "the agent is no longer available" in line.worker.log()
    assert [e for e in bea_log if e["event"] == "replaced"], bea_log
    assert next(a for a in acd.agents() if a.id == "bea").status == "busy"
    briefing = stt.transcribe(recording(tmp_path / "bea.wav"), "en").text.lower()
    assert "assistant" in briefing and "press" in briefing, briefing
    caller_leg = stt.transcribe(recording(tmp_path / "bea.leg1.wav"), "en").text.lower()
    assert "fellow" in caller_leg or "country" in caller_leg, f"bea did not hear the caller: {caller_leg}"
    waited = heard_between(recording(tmp_path / "heard.wav"), caller_log, queued_at, transferred["t"])
    assert waited.duration_s > 10, f"the caller waited only {waited.duration_s:.1f} s"
    assert longest_silence_s(waited) <= MAX_SILENCE_S, f"{longest_silence_s(waited):.1f} s of silence while queued"
    # The worker's call records: the transfer and its rule, the wait that ended with bea, the disclosure heard.
    connected = lambda r: any(w["outcome"] == "connected" for w in r["queue_waits"])  # noqa: E731
    record = wait_for_record(line, call_id, lambda r: connected(r) and r["call"]["ended"] is not None)
    assert record["call"]["outcome"] == "transferred" and record["call"]["rule"] == "keypad-zero", record["call"]
    (wait,) = record["queue_waits"]
    assert (wait["queue"], wait["agent"]) == ("general-en", "bea") and wait["wait_s"] > 10, wait
    assert [(d["kind"], d["heard_to_end"]) for d in record["disclosures"]] == [("ai", 1)], record["disclosures"]
    assert [t["rule"] for t in record["transfers"]] == ["keypad-zero"], record["transfers"]


def heard_between(heard: AudioChunk, caller_log: list[dict[str, Any]], start: float, end: float) -> AudioChunk:
    """What the caller's first call received between two monotonic times, mapped onto the recording in proportion
    over the call (pjmedia's null clock can lose frames on a loaded machine, shortening the recording)."""
    leg = next(e for e in caller_log if e["event"] == "media")
    ended = next(
        e for e in caller_log if e["event"] == "state" and e["state"] == "DISCONNECTED" and e["call"] == leg["call"]
    )
    scale = heard.duration_s / (ended["t"] - leg["t"])
    samples = heard.to_float()
    first, last = (int((t - leg["t"]) * scale * heard.rate) for t in (start, end))
    return AudioChunk.from_samples(samples[first:last], heard.rate)


def longest_silence_s(audio: AudioChunk, window_s: float = 0.1) -> float:
    quiet = rms_windows(audio, window_s) < SILENCE_RMS
    longest = run = 0
    for is_quiet in quiet:
        run = run + 1 if is_quiet else 0
        longest = max(longest, run)
    return float(longest * window_s)


def test_a_broken_queue_apologises_and_transfers_the_caller_to_the_queues_fixed_line(
    line: QueueLine, stt: WhisperSTT, tmp_path: Path
) -> None:
    acd = line.acd
    acd.set_status("away", "busy")  # signed in, on another call: the rules send the caller to the queue
    acd.set_status("bea", "offline")
    routed_before = len(keypad_zero_transfers(line.worker))
    fixed_line = live_phone("answer", port=QUEUE_LINE_PORT)
    caller = live_phone("call", "--dtmf", f"{GREETING_S}:0", "--record", str(tmp_path / "heard.wav"),
                        "--transfer-play", jfk(), "--hangup-at", "45", "--max-s", "60", "--name", "gus",
                        port=5652, uri=line.worker.uri)  # fmt: skip
    broken = tmp_path / "operations-db-before"
    try:
        routed = lambda: len(keypad_zero_transfers(line.worker)) > routed_before  # noqa: E731
        wait_until(routed, 40, "the rules to send the caller to the queue")
        break_database(line.db_path, broken)  # while the bot says it is putting the caller through
        transferred = caller.wait_for("transfer-request", 40)
        fixed_line.wait_for("state", 15, state="CONFIRMED")
        caller.wait_for("state", 15, state="DISCONNECTED")  # the bot leaves once the line answered
    finally:
        caller_log = caller.stop()
        line_log = fixed_line.stop()
        restore_database(line.db_path, broken)

    assert transferred["target"].strip("<>") == QUEUE_LINE, transferred
    assert [e for e in line_log if e["event"] == "state" and e["state"] == "CONFIRMED"], line_log
    followed = [
        e for e in caller_log if e["event"] == "state" and e["state"] == "CONFIRMED" and e["t"] > transferred["t"]
    ]
    assert followed, f"the caller's phone did not reach the fixed line: {caller_log}"
    log = line.worker.log()
    assert "queue hold failed" in log and "file is not a database" in log, log[-3000:]
    assert f"blind transfer to {QUEUE_LINE} (queue general-en" in log, log[-3000:]
    said = stt.transcribe(recording(tmp_path / "heard.wav"), "en").text.lower()
    assert "went wrong" in said and "colleague" in said, said
    assert "in the queue" not in said, said  # a broken queue announces no place
    assert not acd.waiting(), acd.waiting()
    call_id = keypad_zero_transfers(line.worker)[-1]["call_id"]
    record = wait_for_record(line, call_id, lambda r: bool(r["queue_waits"]) and r["call"]["ended"] is not None)
    assert [w["outcome"] for w in record["queue_waits"]] == ["failed"], record["queue_waits"]
    assert [e["stage"] for e in record["errors"]] == ["queue"] and "not a database" in record["errors"][0]["error"]
    assert record["call"]["outcome"] == "transferred", record["call"]  # to the queue's fixed line


def wait_for_record(line: QueueLine, call_id: str, complete: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The call as the worker recorded it in the call records database (its writer commits every 0.1 s)."""
    found: dict[str, Any] = {}

    def recorded() -> bool:
        found.update(call_record(line.db_path.parent / CALLS_DB_NAME, call_id) or {})
        return bool(found) and complete(found)

    wait_until(recorded, 45, f"call {call_id} in the call records, ended")
    return found


def keypad_zero_transfers(worker: Worker) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e["event"] == "TransferRequested" and e.get("rule") == "keypad-zero"]


def break_database(db_path: Path, keep: Path) -> None:
    """The operations database becomes unreadable: the real files are moved aside (the WAL and shared-memory files
    too, or SQLite would read pages from them) and garbage takes the database's name."""
    keep.mkdir()
    for name in sqlite_files(db_path):
        if name.exists():
            os.replace(name, keep / name.name)
    db_path.write_bytes(np.random.default_rng(5).bytes(64 * 1024))


def restore_database(db_path: Path, keep: Path) -> None:
    for name in sqlite_files(db_path):
        name.unlink(missing_ok=True)
        if (keep / name.name).exists():
            os.replace(keep / name.name, name)
    shutil.rmtree(keep, ignore_errors=True)


def sqlite_files(db_path: Path) -> list[Path]:
    return [db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")]
