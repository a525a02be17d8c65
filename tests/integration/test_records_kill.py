"""Kill test: a process recording calls is SIGKILLed; every event it emitted more than 1 s before is on disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.records_emitter import FACTS_PER_CALL, call_id

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE = 2000.0  # events per second
RUN_S = 3.0


def read_reports(process: subprocess.Popen[str], reports: list[tuple[int, float]], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("READY"):
            ready.set()
        elif line.startswith("EMITTED"):
            _, count, wall = line.split()
            reports.append((int(count), float(wall)))


def missing_facts(db_path: Path, emitted: int) -> list[int]:
    """Numbers of the first `emitted` events whose rows are not in the database."""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        calls = {row[0] for row in conn.execute("SELECT call_id FROM calls")}
        ended = {row[0] for row in conn.execute("SELECT call_id FROM calls WHERE ended IS NOT NULL")}
        heard = {row[0] for row in conn.execute("SELECT call_id FROM turns WHERE transcript IS NOT NULL")}
        replied = {row[0] for row in conn.execute("SELECT call_id FROM turns WHERE intent IS NOT NULL")}
        keyed = {row[0] for row in conn.execute("SELECT call_id FROM dtmf")}
    finally:
        conn.close()
    recorded_by_fact = (calls, heard, replied, keyed, ended)
    return [i for i in range(emitted) if call_id(i // FACTS_PER_CALL) not in recorded_by_fact[i % FACTS_PER_CALL]]


def test_a_killed_process_loses_at_most_the_last_second_of_events(tmp_path: Path) -> None:
    db_path = tmp_path / "calls.db"
    script = REPO_ROOT / "tests" / "support" / "records_emitter.py"
    process = subprocess.Popen(
        [sys.executable, "-u", str(script), str(db_path), "--rate", str(RATE)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
    )
    reports: list[tuple[int, float]] = []
    ready = threading.Event()
    reader = threading.Thread(target=read_reports, args=(process, reports, ready), daemon=True)
    reader.start()
    try:
        assert ready.wait(30.0), "the emitter did not start"
        time.sleep(RUN_S)
        assert process.poll() is None, "the emitter stopped before it was killed"
        killed_at = time.time()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10.0)
    reader.join(10.0)
    assert process.returncode == -signal.SIGKILL

    before_last_second = [count for count, wall in reports if wall <= killed_at - 1.0]
    emitted = max(before_last_second)
    assert emitted >= RATE * (RUN_S - 1.5)  # the emitter really ran at its rate for seconds before the kill
    missing = missing_facts(db_path, emitted)
    assert missing == [], f"{len(missing)} of {emitted} events emitted > 1 s before the kill are lost: {missing[:5]}"
