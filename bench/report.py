"""Report generation time on a large call records database (issue 6, item 8).

Builds a calls.db of N calls (default 100,000) over 90 days in a temporary directory: ~6 caller turns each,
~20 % handed off (transferred / abandoned / callback), FR 70 % / EN 30 %, queue waits, ratings, KB misses and
errors; then times `compute` and the text, HTML and CSV renderers over the whole period (3 runs each).

    .venv/bin/python bench/report.py [--calls 100000] [--days 90] [--keep calls.db]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicebot.analytics import Analytics, compute, parse_period
from voicebot.call_schema import open_calls_db
from voicebot.report_csv import write_csv_tables
from voicebot.report_html import html_report
from voicebot.report_text import text_report

FIRST_DAY = datetime(2026, 9, 1, tzinfo=UTC)
OUTCOMES = (("resolved", 0.79), ("transferred", 0.14), ("abandoned", 0.04), ("callback", 0.02), ("error", 0.01))
REASONS = ("caller_request", "dtmf_zero", "low_confidence", "repeated_fallback", "emergency", "sensitive_topic")
RULES = ("explicit-request", "keypad-zero", "low-confidence", "fallbacks", "emergency", None)
INTENTS = ("faq", "case_status", "report_problem", "opening_hours", "human_agent", "greet", "affirm", "deny",
           "give_reference", "feedback", "out_of_scope", "change_language", "goodbye", "thanks")  # fmt: skip
KB_IDS = tuple(f"kb-{n:03d}" for n in range(60))
MISSED = tuple(f"question the knowledge base does not cover number {n}" for n in range(500))
HOURS = tuple(range(24))
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 4, 9, 12, 12, 11, 8, 9, 11, 11, 10, 8, 5, 3, 2, 2, 1, 1)
STAGES = ("asr", "dialogue", "tts", "telephony")
Rows = dict[str, list[tuple[object, ...]]]  # table -> rows in insert order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--keep", help="copy the generated database here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voicebot-report-bench-"))
    try:
        run(work, args.calls, args.days, args.keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run(work: Path, calls: int, days: int, keep: str | None) -> None:
    path = work / "calls.db"
    started = time.perf_counter()
    rows = generate(calls, days)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    counts = insert(path, rows)
    insert_s = time.perf_counter() - started
    if keep:
        shutil.copyfile(path, keep)
    size_mb = path.stat().st_size / 1e6
    print(f"database: {counts[0]:,} calls, {counts[1]:,} turns, {size_mb:.0f} MB")
    last_day = (FIRST_DAY + timedelta(days=days - 1)).date().isoformat()
    period = parse_period(FIRST_DAY.date().isoformat(), last_day, tz="Europe/Paris")
    db = open_calls_db(path)
    analytics = compute(db, period)
    results = [
        ("compute (all figures)", timed(lambda: compute(db, period))),
        ("text report", timed(lambda: text_report(analytics))),
        ("HTML report (7 SVG charts)", timed(lambda: html_report(analytics))),
        ("CSV export (13 files)", timed(lambda: write_csv_tables(analytics, work / "csv"))),
    ]
    db.conn.close()
    print(f"period: {period.label()}, {analytics.calls:,} calls, {analytics.turns:,} turns\n")
    print(f"{'step':<28} {'runs':>4} {'min s':>8} {'median s':>9}")
    print(f"{'seed: generate rows':<28} {1:>4} {generate_s:>8.2f} {generate_s:>9.2f}")
    print(f"{'seed: insert (executemany)':<28} {1:>4} {insert_s:>8.2f} {insert_s:>9.2f}")
    for name, runs in results:
        print(f"{name:<28} {len(runs):>4} {min(runs):>8.3f} {statistics.median(runs):>9.3f}")
    totals = analytics.totals
    print(f"\nHTML size {len(html_report(analytics)) / 1e3:.0f} kB; containment "
          f"{totals.containment or 0:.3f}, transfer rate {totals.transfer_rate or 0:.3f}")  # fmt: skip


def timed(job: Callable[[], Analytics | str | list[Path]], runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return times


def generate(calls: int, days: int) -> Rows:
    rng = random.Random(6)
    rows: Rows = {"calls": [], "turns": [], "queue_waits": [], "errors": []}
    starts = sorted(call_start(rng, days) for _ in range(calls))  # a live database is written in call order
    for n, start in enumerate(starts):
        add_call(rng, f"call-{n:06d}", start, rows)
    return rows


def insert(path: Path, rows: Rows) -> tuple[int, int]:
    conn = open_calls_db(path).conn  # creates the schema through call_schema.migrate
    conn.execute("PRAGMA synchronous=OFF")  # a bench fixture: durability does not matter here
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO calls (call_id, started, ended, duration_s, language, outcome, reason, rule, "
                     "queue, turns, csat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["calls"])  # fmt: skip
    conn.executemany("INSERT INTO turns (call_id, turn, at, t, transcript, language, intent, confidence, kb_id, "
                     "kb_miss, endpointing_ms, asr_ms, dialogue_ms, tts_first_audio_ms, response_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["turns"])  # fmt: skip
    conn.executemany("INSERT INTO queue_waits (call_id, queue, wait_s, outcome) VALUES (?, ?, ?, ?)",
                     rows["queue_waits"])  # fmt: skip
    conn.executemany("INSERT INTO errors (call_id, at, stage, error) VALUES (?, ?, ?, ?)", rows["errors"])
    conn.execute("COMMIT")
    conn.close()
    return len(rows["calls"]), len(rows["turns"])


def call_start(rng: random.Random, days: int) -> datetime:
    day = FIRST_DAY + timedelta(days=rng.randrange(days))
    return day + timedelta(hours=rng.choices(HOURS, HOUR_WEIGHTS)[0], seconds=rng.uniform(0, 3600))


def add_call(rng: random.Random, call_id: str, start: datetime, rows: Rows) -> None:
    language = "fr" if rng.random() < 0.7 else "en"
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    handed_off = outcome in ("transferred", "abandoned", "callback")
    which = rng.randrange(len(REASONS))
    reason, rule = (REASONS[which], RULES[which]) if handed_off else (None, None)
    turns = max(1, round(rng.gauss(6, 2)))
    duration = turns * rng.uniform(8, 14)
    csat = rng.choice((1, 2, 3, 4, 4, 5, 5, 5)) if rng.random() < 0.3 else None
    queue = f"general-{language}" if handed_off else None
    ended = stamp(start + timedelta(seconds=duration))
    rows["calls"].append((call_id, stamp(start), ended, duration, language, outcome, reason, rule, queue, turns, csat))
    for turn in range(1, turns + 1):
        rows["turns"].append(turn_row(rng, call_id, turn, start, language))
    if handed_off:
        wait_outcome = {"transferred": "connected", "abandoned": "abandoned", "callback": "callback"}[outcome]
        rows["queue_waits"].append((call_id, f"general-{language}", rng.expovariate(1 / 45), wait_outcome))
    if outcome == "error" or rng.random() < 0.01:
        rows["errors"].append((call_id, stamp(start + timedelta(seconds=5)), rng.choice(STAGES), "engine failed"))


def turn_row(rng: random.Random, call_id: str, turn: int, start: datetime, language: str) -> tuple[object, ...]:
    t = turn * 10.0
    intent = rng.choice(INTENTS)
    missed = intent == "faq" and rng.random() < 0.15
    kb_id = rng.choice(KB_IDS) if intent == "faq" and not missed else None
    transcript = rng.choice(MISSED) if missed else "what the caller said, redacted"
    asr, dialogue, tts = rng.lognormvariate(6, 0.3), rng.lognormvariate(4.5, 0.5), rng.lognormvariate(5, 0.3)
    endpointing = rng.uniform(500, 800)
    return (call_id, turn, stamp(start + timedelta(seconds=t)), t, transcript, language, intent, 1.0, kb_id,
            int(missed), endpointing, asr, dialogue, tts, endpointing + asr + dialogue + tts)  # fmt: skip


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


if __name__ == "__main__":
    sys.exit(main())
