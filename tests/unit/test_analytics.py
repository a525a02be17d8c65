"""Report figures from a seeded call records database whose answers were worked out by hand (see SEEDED below)."""

from __future__ import annotations

import argparse
import csv
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from voicebot.analytics import Analytics, compute, parse_period, percentile
from voicebot.call_schema import RecordsStoreError, open_calls_db
from voicebot.cli_report import add_report_parser
from voicebot.ports import ConfigError
from voicebot.report_charts import charts
from voicebot.report_csv import write_csv_tables
from voicebot.report_html import html_report
from voicebot.report_period import ReportDateError
from voicebot.report_text import text_report

# Eight calls on 2026-11-01/02 (UTC) and two just outside: one a millisecond before the period, one at its end.
# call    started (UTC)             lang outcome      reason          rule              dur  csat  waits (s)
# c1      2026-11-01T00:00:00.000Z  en   resolved                                       60   5
# c2      2026-11-01T09:40          fr   resolved                                       90   4
# c3      2026-11-01T14:05          en   transferred  caller_request  explicit-request  120  2     failed 12, conn. 30
# c4      2026-11-01T14:30          fr   abandoned    low_confidence  low-confidence    200        abandoned 95
# c5      2026-11-02T10:00          en   callback     caller_request  -                 80         callback 40
# c6      2026-11-02T10:20          en   transferred  emergency       emergency         45   5     connected 10
# c7      2026-11-02T16:00          fr   error                                          30
# c8      2026-11-02T16:30          en   (live)
# before  2026-10-31T23:59:59.999Z  en   abandoned    caller_request  explicit-request  500  1     abandoned 300
# after   2026-11-03T00:00:00.000Z  fr   transferred  emergency       emergency         70   1     connected 999
SEEDED = [
    ("c1", "2026-11-01T00:00:00.000Z", "en", "resolved", None, None, 60, 5, []),
    ("c2", "2026-11-01T09:40:00.000Z", "fr", "resolved", None, None, 90, 4, []),
    ("c3", "2026-11-01T14:05:00.000Z", "en", "transferred", "caller_request", "explicit-request", 120, 2,
     [("failed", 12), ("connected", 30)]),
    ("c4", "2026-11-01T14:30:00.000Z", "fr", "abandoned", "low_confidence", "low-confidence", 200, None,
     [("abandoned", 95)]),
    ("c5", "2026-11-02T10:00:00.000Z", "en", "callback", "caller_request", None, 80, None, [("callback", 40)]),
    ("c6", "2026-11-02T10:20:00.000Z", "en", "transferred", "emergency", "emergency", 45, 5, [("connected", 10)]),
    ("c7", "2026-11-02T16:00:00.000Z", "fr", "error", None, None, 30, None, []),
    ("c8", "2026-11-02T16:30:00.000Z", "en", None, None, None, None, None, []),
    ("before", "2026-10-31T23:59:59.999Z", "en", "abandoned", "caller_request", "explicit-request", 500, 1,
     [("abandoned", 300)]),
    ("after", "2026-11-03T00:00:00.000Z", "fr", "transferred", "emergency", "emergency", 70, 1, [("connected", 999)]),
]  # fmt: skip
BOAT_EN = "Can I park my boat at the town hall?"
BOAT_FR = "Où garer mon bateau <près> & vite ?"
# Caller turns in order k = 1..13: (call, intent, kb_id, kb_miss transcript). Stage timings depend on k:
# endpointing 250, asr 10k, dialogue 5k, tts first audio 50k (none for k = 12, a rejected turn), response 100k.
TURNS = [
    ("c1", "faq", "opening_hours", None), ("c1", "faq", None, BOAT_EN),
    ("c2", "faq", "opening_hours", None), ("c2", "case_status", None, None),
    ("c3", "faq", "passport_fees", None), ("c3", "human_agent", None, None),
    ("c4", "faq", None, BOAT_FR), ("c4", "human_agent", None, None),
    ("c5", "faq", None, "  can i park my boat at the TOWN HALL? "), ("c5", "human_agent", None, None),
    ("c6", "emergency", None, None),
    ("c7", None, None, None),
    ("c8", "faq", "opening_hours", None),
]  # fmt: skip
OUTSIDE_TURNS = [
    ("before", "faq", "opening_hours", None),
    ("before", "faq", None, BOAT_EN),
    ("after", "emergency", None, None),
]
ERRORS = [  # (call, at, stage)
    ("c3", "2026-11-01T14:06:00.000Z", "tts"),
    ("c7", "2026-11-02T16:00:05.000Z", "asr"),
    ("c7", "2026-11-02T16:00:09.000Z", "asr"),
    ("before", "2026-10-31T23:59:59.999Z", "tts"),
    ("after", "2026-11-03T00:00:01.000Z", "asr"),
]


def seed(path: Path) -> sqlite_utils.Database:
    db = open_calls_db(path)  # runs call_schema.migrate
    language = {row[0]: row[2] for row in SEEDED}
    for call_id, started, lang, outcome, reason, rule, duration, csat, waits in SEEDED:
        db.table("calls").insert({"call_id": call_id, "started": started, "language": lang, "outcome": outcome,
                                  "reason": reason, "rule": rule, "duration_s": duration, "csat": csat})  # fmt: skip
        for outcome_of_wait, wait_s in waits:
            wait = {"call_id": call_id, "queue": "general", "outcome": outcome_of_wait, "wait_s": wait_s}
            db.table("queue_waits").insert(wait)
    for k, (call_id, intent, kb_id, miss) in enumerate(TURNS, start=1):
        db.table("turns").insert(_turn(call_id, k, intent, kb_id, miss, language[call_id], k))
    for k, (call_id, intent, kb_id, miss) in enumerate(OUTSIDE_TURNS, start=1):
        db.table("turns").insert(_turn(call_id, k, intent, kb_id, miss, language[call_id], 999))
    for call_id, at, stage in ERRORS:
        db.table("errors").insert({"call_id": call_id, "at": at, "stage": stage, "error": "boom"})
    return db


def _turn(call_id: str, turn: int, intent: str | None, kb_id: str | None, miss: str | None, lang: str, k: int
          ) -> dict[str, Any]:  # fmt: skip
    return {
        "call_id": call_id, "turn": turn, "intent": intent, "kb_id": kb_id, "kb_miss": int(miss is not None),
        "transcript": miss or "something", "language": lang, "accepted": int(intent is not None),
        "endpointing_ms": 250.0, "asr_ms": 10.0 * k, "dialogue_ms": 5.0 * k,
        "tts_first_audio_ms": None if k == 12 else 50.0 * k, "response_ms": 100.0 * k,
    }  # fmt: skip


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "calls.db"
    seed(path).conn.close()
    return path


@pytest.fixture
def analytics(db_path: Path) -> Analytics:
    db = open_calls_db(db_path)
    try:
        return compute(db, parse_period("2026-11-01", "2026-11-02", tz="UTC"))
    finally:
        db.conn.close()


def test_call_outcome_figures(analytics: Analytics) -> None:
    totals = analytics.totals
    assert (totals.calls, totals.ended, totals.resolved, totals.handed_off) == (8, 7, 2, 4)
    assert totals.containment == pytest.approx(2 / 7)
    assert totals.transfer_rate == pytest.approx(4 / 7)
    assert totals.average_handle_s == pytest.approx((60 + 90 + 120 + 200 + 80 + 45 + 30) / 7)
    assert (totals.queued, totals.abandoned, totals.callbacks, totals.errors) == (4, 1, 1, 1)
    assert totals.abandonment_rate == pytest.approx(1 / 4)
    assert [(s.label, s.count) for s in analytics.outcomes] == [
        ("resolved", 2), ("transferred", 2), ("abandoned", 1), ("callback", 1), ("error", 1), ("live", 1)
    ]  # fmt: skip


def test_transfers_by_reason_and_rule_are_shares_of_ended_calls(analytics: Analytics) -> None:
    reasons = [(s.label, s.count, s.rate) for s in analytics.transfer_reasons]
    assert reasons == [("caller_request", 2, pytest.approx(2 / 7)), ("emergency", 1, pytest.approx(1 / 7)),
                       ("low_confidence", 1, pytest.approx(1 / 7))]  # fmt: skip
    rules = [(s.label, s.count) for s in analytics.transfer_rules]
    assert rules == [("(no rule)", 1), ("emergency", 1), ("explicit-request", 1), ("low-confidence", 1)]


def test_time_to_answer_counts_connected_waits_only(analytics: Analytics) -> None:
    wait = analytics.time_to_answer
    assert (wait.n, wait.mean, wait.p(50), wait.p(90)) == (2, 20.0, 10.0, 30.0)


def test_languages_intents_faqs_and_kb_misses(analytics: Analytics) -> None:
    assert [(s.label, s.count, s.rate) for s in analytics.languages] == [("en", 5, 5 / 8), ("fr", 3, 3 / 8)]
    assert analytics.turns == 13
    assert [(s.label, s.count) for s in analytics.intents] == [
        ("faq", 7), ("human_agent", 3), ("case_status", 1), ("emergency", 1)
    ]  # fmt: skip
    assert analytics.intents[0].rate == pytest.approx(7 / 12)
    faqs = [(s.label, s.count, s.rate) for s in analytics.faqs]
    assert faqs == [("opening_hours", 3, 3 / 4), ("passport_fees", 1, 1 / 4)]
    assert analytics.kb_miss_turns == 3
    misses = [(m.question.lower(), m.language, m.count) for m in analytics.kb_misses]
    assert misses == [(BOAT_EN.lower(), "en", 2), (BOAT_FR.lower(), "fr", 1)]


def test_csat(analytics: Analytics) -> None:
    csat = analytics.csat
    assert (csat.responses, csat.mean, csat.distribution) == (4, 4.0, (0, 1, 0, 1, 2))
    assert csat.response_rate == pytest.approx(4 / 7)


def test_latency_percentiles_per_stage(analytics: Analytics) -> None:
    by_stage = {s.name: s for s in analytics.latency}
    response, tts, asr = by_stage["response"], by_stage["tts first audio"], by_stage["asr"]
    assert (response.n, response.mean, response.p(50), response.p(95), response.p(99)) == (13, 700, 700, 1300, 1300)
    assert (tts.n, tts.p(50), tts.p(95), tts.p(99)) == (12, 300, 650, 650)  # k = 12 has no TTS timing
    assert (asr.p(50), asr.p(95)) == (70, 130)
    assert (by_stage["endpointing"].p(50), by_stage["endpointing"].p(99)) == (250, 250)
    assert set(by_stage) == {"endpointing", "asr", "dialogue", "tts first audio", "response"}


def test_errors_by_stage(analytics: Analytics) -> None:
    assert [(s.label, s.count, s.rate) for s in analytics.errors_by_stage] == [("asr", 2, 2 / 3), ("tts", 1, 1 / 3)]


def test_by_day_and_hour(analytics: Analytics) -> None:
    days = dict(analytics.daily)
    assert list(days) == [date(2026, 11, 1), date(2026, 11, 2)]
    first, second = days[date(2026, 11, 1)], days[date(2026, 11, 2)]
    assert (first.calls, first.ended, first.resolved, first.handed_off) == (4, 4, 2, 2)
    assert (first.queued, first.abandoned, first.callbacks) == (2, 1, 0)
    assert (first.containment, first.abandonment_rate, first.average_handle_s) == (0.5, 0.5, 117.5)
    assert (second.calls, second.ended, second.resolved, second.handed_off, second.callbacks) == (4, 3, 0, 2, 1)
    assert second.containment == 0.0
    assert second.transfer_rate == pytest.approx(2 / 3)
    assert second.average_handle_s == pytest.approx((80 + 45 + 30) / 3)
    calls_per_hour = {hour: t.calls for hour, t in enumerate(analytics.hourly) if t.calls}
    assert calls_per_hour == {0: 1, 9: 1, 10: 2, 14: 2, 16: 2}


def test_days_and_hours_follow_the_time_zone(db_path: Path) -> None:
    # Paris is UTC+1 in November: the period starts at 2026-10-31T23:00Z, so "before" (23:59:59.999Z) is in it.
    db = open_calls_db(db_path)
    paris = compute(db, parse_period("2026-11-01", "2026-11-02", tz="Europe/Paris"))
    db.conn.close()
    assert paris.calls == 9
    assert [(day, t.calls) for day, t in paris.daily] == [(date(2026, 11, 1), 5), (date(2026, 11, 2), 4)]
    assert (paris.hourly[0].calls, paris.hourly[1].calls, paris.hourly[10].calls) == (1, 1, 1)


def test_empty_period_has_no_rates(db_path: Path) -> None:
    db = open_calls_db(db_path)
    empty = compute(db, parse_period("2026-12-01", "2026-12-01", tz="UTC"))
    db.conn.close()
    assert (empty.calls, empty.totals.containment, empty.csat.mean, empty.time_to_answer.p(50)) == (0, None, None, None)
    assert "no data in this period" in charts(empty)["calls_per_day"]


def test_nearest_rank_percentile() -> None:
    hundred = [float(v) for v in range(1, 101)]
    assert (percentile(hundred, 50), percentile(hundred, 95), percentile(hundred, 99)) == (50, 95, 99)
    assert (percentile([7.0], 99), percentile([], 50)) == (7.0, None)


# --- periods -------------------------------------------------------------------------------------------------


def test_dates_name_whole_days_and_relative_forms_count_back_from_now() -> None:
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    period = parse_period("2026-11-01", "2026-11-02", tz="UTC", now=now)
    assert (period.since, period.until) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    assert period.bounds() == ("2026-11-01T00:00:00.000Z", "2026-11-03T00:00:00.000Z")
    assert parse_period("7d", tz="UTC", now=now).since == datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    assert parse_period("24h", tz="UTC", now=now).since == datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
    assert parse_period("7d", tz="UTC", now=now).until == now
    yesterday = parse_period("yesterday", "yesterday", tz="UTC", now=now)
    assert (yesterday.since, yesterday.until) == (datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC))
    at = parse_period("2026-11-01T08:30", "2026-11-01T17:45", tz="UTC", now=now)
    assert at.bounds() == ("2026-11-01T08:30:00.000Z", "2026-11-01T17:45:00.000Z")


def test_today_is_the_local_day() -> None:
    now = datetime(2026, 11, 10, 23, 30, tzinfo=UTC)  # already 11 November, 00:30, in Paris
    today = parse_period("today", tz="Europe/Paris", now=now)
    assert today.bounds()[0] == "2026-11-10T23:00:00.000Z"


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "next week", "01/11/2026", "", "2026-11-01T25:00"])
def test_malformed_dates_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ReportDateError) as caught:
        parse_period(text, tz="UTC")
    assert str(caught.value) == (
        f"--since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (or 7d, 24h, today, yesterday)"
    )
    assert isinstance(caught.value, ConfigError)


def test_since_after_until_and_unknown_zone_are_refused() -> None:
    with pytest.raises(ReportDateError, match=r"--since 2026-11-05 00:00 is not before --until 2026-11-02 00:00"):
        parse_period("2026-11-05", "2026-11-01", tz="UTC")
    with pytest.raises(ReportDateError, match="--until 'soon' is not a date"):
        parse_period("2026-11-05", "soon", tz="UTC")
    with pytest.raises(ReportDateError, match="--tz 'Mars/Olympus' is not a time zone"):
        parse_period("7d", tz="Mars/Olympus")


# --- renderers -----------------------------------------------------------------------------------------------


def test_text_report_shows_the_figures(analytics: Analytics) -> None:
    text = text_report(analytics)
    lines = text.splitlines()
    assert any(line.startswith("containment (resolved by the bot") and line.endswith("28.6 %") for line in lines)
    assert any(line.startswith("average handle time") and line.endswith("89.3 s") for line in lines)
    assert any(line.startswith("2026-11-01") and "50.0 %" in line for line in lines)
    assert "(19 rows without calls left out)" in text  # hours of the day: 5 of 24 had calls
    assert BOAT_FR in text


def test_html_report_is_self_contained(analytics: Analytics, tmp_path: Path) -> None:
    page = html_report(analytics)
    assert page.count("<svg") == 7
    for external in ("http://", "https://", "<script", " src=", "<link", "@import", "url("):
        assert external not in page
    assert "Où garer mon bateau &lt;près&gt; &amp; vite ?" in page
    assert "<près>" not in page
    assert "28.6 %" in page


def test_charts_carry_the_figures(analytics: Analytics) -> None:
    svgs = charts(analytics)
    assert set(svgs) == {"calls_per_day", "containment_per_day", "calls_per_hour", "transfer_reasons", "latency",
                         "languages", "csat"}  # fmt: skip
    assert all(svg.startswith("<svg") and svg.endswith("</svg>") for svg in svgs.values())
    assert "<title>11-01: 4</title>" in svgs["calls_per_day"]
    assert "<title>11-02: 0 %</title>" in svgs["containment_per_day"]
    assert "<title>caller_request 2</title>" in svgs["transfer_reasons"]
    assert "<title>response p95 1,300</title>" in svgs["latency"]
    assert "<title>5: 2</title>" in svgs["csat"]


def test_csv_tables(analytics: Analytics, tmp_path: Path) -> None:
    files = write_csv_tables(analytics, tmp_path / "csv")
    assert {f.name for f in files} >= {"daily.csv", "hourly.csv", "reasons.csv", "intents.csv", "faqs.csv",
                                       "kb_misses.csv", "latency.csv", "summary.csv"}  # fmt: skip
    daily = _csv(tmp_path / "csv" / "daily.csv")
    assert [(r["day"], r["calls"], r["containment (fraction)"], r["handle time (s)"]) for r in daily] == [
        ("2026-11-01", "4", "0.5", "117.5"), ("2026-11-02", "4", "0.0", "51.6667")
    ]  # fmt: skip
    hourly = _csv(tmp_path / "csv" / "hourly.csv")
    assert len(hourly) == 24 and hourly[14]["calls"] == "2" and hourly[3]["containment (fraction)"] == ""
    misses = _csv(tmp_path / "csv" / "kb_misses.csv")
    assert [(r["question"], r["times"]) for r in misses][1] == (BOAT_FR, "1")
    summary = {r["figure"]: (r["value"], r["unit"]) for r in _csv(tmp_path / "csv" / "summary.csv")}
    assert summary["calls"] == ("8", "count")
    assert summary["transfer rate (handed off / ended)"] == ("0.5714", "fraction")
    latency = {r["stage"]: r for r in _csv(tmp_path / "csv" / "latency.csv")}
    assert latency["response"]["p50 (ms)"] == "700.0"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


# --- command line --------------------------------------------------------------------------------------------


def run_report(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="voicebot")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return int(args.func(args))


def test_report_command_prints_tables_and_writes_files(db_path: Path, tmp_path: Path, capsys: Any) -> None:
    html, csv_dir = tmp_path / "out" / "report.html", tmp_path / "out" / "csv"
    code = run_report("--since", "2026-11-01", "--until", "2026-11-02", "--tz", "UTC", "--db", str(db_path),
                      "--html", str(html), "--csv", str(csv_dir))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Summary — 2026-11-01 00:00 → 2026-11-03 00:00 (UTC)" in out
    assert f"HTML report: {html}" in out
    assert html.read_text(encoding="utf-8").count("<svg") == 7
    assert _csv(csv_dir / "summary.csv")[0] == {"figure": "calls", "value": "8", "unit": "count"}


def test_report_command_errors(db_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportDateError, match="--since '2026-13-01' is not a date"):
        run_report("--since", "2026-13-01", "--db", str(tmp_path / "missing.db"))
    with pytest.raises(ConfigError, match="no call records database at"):
        run_report("--since", "7d", "--db", str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "operations.db"
    sqlite_utils.Database(other).execute("CREATE TABLE agents (id TEXT)")
    with pytest.raises(ConfigError, match="holds no call records"):
        run_report("--since", "7d", "--db", str(other))
    assert sqlite_utils.Database(other).table_names() == ["agents"]  # nothing was created in it
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RecordsStoreError, match="is not a call records database"):
        run_report("--since", "7d", "--db", str(corrupt))


def test_days_are_counted_in_the_agents_file_timezone_by_default(db_path: Path, tmp_path: Path, capsys: Any) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text("timezone: America/Montreal\n", encoding="utf-8")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"agents_file: {agents}\n", encoding="utf-8")
    code = run_report("--since", "2026-11-01", "--until", "2026-11-02", "--db", str(db_path), "--config", str(config))
    assert code == 0
    out = capsys.readouterr().out
    assert "Summary — 2026-11-01 00:00 → 2026-11-03 00:00 (America/Montreal)" in out
    assert "Per hour of the day (America/Montreal)" in out
