"""Call records writer: sustained throughput and the cost of emit() on the calling (audio) thread.

    .venv/bin/python bench/record_writer.py [--calls 4000] [--rate 2000] [--seconds 5] [--redactor]

Events follow a realistic call: disclosure, 4 turns (speech, transcript, reply, timings, bot speech), a DTMF key,
a transfer with a queue wait on one call in four, hang-up. Rows:
- throughput: every event of --calls calls emitted at once, time until all are committed (events/s);
- emit cost: events emitted at --rate per second for --seconds while the writer writes; emit() timed on the
  emitting thread (p50/p99/p99.9/max, microseconds);
- locked: the same while another connection holds the database's write lock (the writer buffers), then the time
  to flush once the lock is released.
--redactor redacts through voicebot.redaction.Redactor (when present) instead of passing texts through.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot import events as ev
from voicebot.call_records import RecordRows, Redact
from voicebot.record_writer import RecordWriter


def call_events(n: int) -> list[ev.CallEvent]:
    call = f"bench-{n:07d}"
    events: list[ev.CallEvent] = [
        ev.CallStarted(call, 0.0, caller=f"sip:+3361{n:08d}@example", language="fr"),
        ev.DisclosurePlayed(call, 3.0, notice="ai", prompt_version="ai-v1", heard_to_end=True),
    ]
    for turn in range(1, 5):
        t = 5.0 * turn
        text = "je voudrais savoir les horaires de la mairie annexe du quartier nord"
        events += [
            ev.SpeechStarted(call, t),
            ev.SpeechPaused(call, t + 2.0),
            ev.SpeechEnded(call, t + 2.6, speech_s=2.0),
            ev.Transcript(call, t + 2.8, turn=turn, text=text, language="fr", language_probability=0.93),
            ev.DialogueReplied(call, t + 2.9, turn=turn, texts=("La mairie annexe ouvre à 9 h.",), intent="faq"),
            ev.BotSpeechStarted(call, t + 3.1, turn=turn, text="La mairie annexe ouvre à 9 h."),
            ev.TurnTimings(call, t + 3.1, turn=turn, asr_ms=410.0, end_of_speech_to_first_audio_ms=900.0),
            ev.BotSpeechEnded(call, t + 4.5, turn=turn),
        ]
    events.append(ev.DtmfReceived(call, 26.0, digit="1"))
    if n % 4 == 0:
        events += [
            ev.TransferRequested(call, 27.0, queue="fr-general", reason="asked_for_human", summary="Horaires"),
            ev.CallEnded(call, 29.0, outcome="transferred"),
            ev.QueueJoined(call, 29.1, queue="fr-general"),
            ev.QueueLeft(call, 60.0, queue="fr-general", outcome="connected", agent="alice", wait_s=30.9),
        ]
    else:
        events.append(ev.CallEnded(call, 29.0, outcome="hangup-by-caller"))
    return events


def event_stream() -> Iterator[ev.CallEvent]:
    n = 0
    while True:
        yield from call_events(n)
        n += 1


def redactor(use_real: bool) -> Redact:
    if not use_real:
        return lambda text, language: text
    from voicebot.redaction import Redactor  # type: ignore[import-not-found,unused-ignore]

    return Redactor().redact  # type: ignore[no-any-return,unused-ignore]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def throughput(path: Path, calls: int, redact: Redact) -> tuple[int, float, int]:
    events = [event for n in range(calls) for event in call_events(n)]
    writer = RecordWriter(path, RecordRows(redact, b"bench"), queue_size=len(events) + 1, buffer_limit=len(events))
    writer.flush()
    started = time.perf_counter()
    for event in events:
        writer.emit(event)
    assert writer.flush(timeout=600.0)
    elapsed = time.perf_counter() - started
    return len(events), len(events) / elapsed, writer.close().dropped


def paced_emits(writer: RecordWriter, rate: float, seconds: float) -> list[float]:
    """Emits at `rate` events/s for `seconds`; returns each emit()'s duration in microseconds."""
    costs: list[float] = []
    stream = event_stream()
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        while len(costs) < int((now - start) * rate):
            event = next(stream)
            before = time.perf_counter_ns()
            writer.emit(event)
            costs.append((time.perf_counter_ns() - before) / 1000)
        time.sleep(0.0005)
    return sorted(costs)


def row(label: str, events: int, per_s: str, costs: list[float] | None, dropped: int, note: str = "") -> None:
    cells = [f"{percentile(costs, q):.1f}" for q in (0.5, 0.99, 0.999)] + [f"{costs[-1]:.0f}"] if costs else ["-"] * 4
    print(f"{label:<34}{events:>9}{per_s:>12}" + "".join(f"{c:>9}" for c in cells) + f"{dropped:>9}  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--redactor", action="store_true")
    parser.add_argument("--switch-interval-ms", type=float, default=5.0,
                        help="sys.setswitchinterval (the SIP worker uses 1 ms; Python's default is 5 ms)")  # fmt: skip
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    redact = redactor(args.redactor)
    print(f"{'scenario':<34}{'events':>9}{'events/s':>12}{'p50 µs':>9}{'p99 µs':>9}{'p99.9':>9}{'max µs':>9}"
          f"{'dropped':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        count, per_s, dropped = throughput(Path(tmp) / "throughput.db", args.calls, redact)
        row("throughput (burst, all committed)", count, f"{per_s:,.0f}", None, dropped)

        path = Path(tmp) / "paced.db"
        writer = RecordWriter(path, RecordRows(redact, b"bench"))
        writer.flush()
        costs = paced_emits(writer, args.rate, args.seconds)
        assert writer.flush(timeout=60.0)
        stats = writer.close()
        row(f"emit at {args.rate:,.0f}/s, writer writing", len(costs), f"{args.rate:,.0f}", costs, stats.dropped)

        writer = RecordWriter(path, RecordRows(redact, b"bench"), busy_timeout_s=0.1)
        writer.flush()
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        costs = paced_emits(writer, args.rate, args.seconds)
        buffered = writer.stats()
        locker.execute("ROLLBACK")
        released = time.perf_counter()
        assert writer.flush(timeout=60.0)
        flush_s = time.perf_counter() - released
        stats = writer.close()
        note = f"healthy={buffered.healthy}, {buffered.pending} buffered; flushed {flush_s:.2f} s after release"
        row(f"emit at {args.rate:,.0f}/s, database locked", len(costs), f"{args.rate:,.0f}", costs, stats.dropped, note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
