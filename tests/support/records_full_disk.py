"""Run by tests/unit/test_record_writer.py: a RecordWriter whose database file cannot grow (RLIMIT_FSIZE, what a
full disk looks like to SQLite: a failed write), then can again. Prints the writer's state as JSON lines."""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path

from voicebot import events as ev
from voicebot.call_records import RecordRows
from voicebot.record_writer import RecordWriter


def report(step: str, writer: RecordWriter) -> None:
    stats = writer.stats()
    print(json.dumps({"step": step, "healthy": stats.healthy, "pending": stats.pending, "written": stats.written,
                      "dropped": stats.dropped, "error": stats.last_error}), flush=True)  # fmt: skip


def main() -> None:
    path = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    writer = RecordWriter(path, RecordRows(lambda text, _language: text, b"salt"), retry_interval_s=0.1)
    writer.emit(ev.CallStarted("full-1", 0.0, language="fr"))
    assert writer.flush(10.0)
    size = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, resource.RLIM_INFINITY))
    for n in range(3000):
        writer.emit(ev.Transcript("full-1", n * 0.1, turn=n + 1, text="je voudrais un rendez-vous " * 8, language="fr"))
    deadline = time.monotonic() + 10
    while writer.stats().healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    report("full", writer)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    flushed = writer.flush(30.0)
    report("space again" if flushed else "still failing", writer)
    writer.close()


if __name__ == "__main__":
    main()
