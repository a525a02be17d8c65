"""Emits call events through a RecordWriter at a steady rate until it is killed (for the records kill test).

    records_emitter.py DB_PATH [--rate EVENTS_PER_S] [--max-s SECONDS]

Event number i is fact i % 5 of call i // 5 (see `event_number`); every 0.1 s it prints
"EMITTED <count> <time.time()>": the first <count> events were emitted by then.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from voicebot import events as ev
from voicebot.call_records import RecordRows
from voicebot.record_writer import RecordWriter

FACTS_PER_CALL = 5


def call_id(number: int) -> str:
    return f"kill-{number:06d}"


def event_number(i: int) -> ev.CallEvent:
    call, fact = call_id(i // FACTS_PER_CALL), i % FACTS_PER_CALL
    if fact == 0:
        return ev.CallStarted(call, 0.0, caller=f"sip:+3361{i:08d}@example", language="fr")
    if fact == 1:
        return ev.Transcript(call, 2.0, turn=1, text=f"utterance {i}", language="fr", language_probability=0.9)
    if fact == 2:
        return ev.DialogueReplied(call, 2.2, turn=1, texts=("Bien sûr.",), intent="opening_hours", confidence=0.9)
    if fact == 3:
        return ev.DtmfReceived(call, 3.0, digit="1")
    return ev.CallEnded(call, 4.0, outcome="hangup-by-caller")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--max-s", type=float, default=60.0)
    args = parser.parse_args()
    writer = RecordWriter(args.db, RecordRows(lambda text, language: text, b"kill-test"))
    print("READY", flush=True)
    start = time.monotonic()
    emitted, next_report = 0, start
    while (now := time.monotonic()) - start < args.max_s:
        due = int((now - start) * args.rate)
        while emitted < due:
            writer.emit(event_number(emitted))
            emitted += 1
        if now >= next_report:
            sys.stdout.write(f"EMITTED {emitted} {time.time():.6f}\n")
            sys.stdout.flush()
            next_report += 0.1
        time.sleep(0.001)
    writer.close()


if __name__ == "__main__":
    main()
