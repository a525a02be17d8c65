"""Supervisor analytics over the call records database (voicebot/call_schema.py): one `compute` call gives every
figure of `voicebot report`, the HTML report and the console charts.

Definitions (the calls counted are those that STARTED in the period):
- ended: calls with an outcome (live calls have none).
- containment: outcome 'resolved' / ended.
- handed off (transfer rate): outcome 'transferred', 'abandoned' or 'callback' (a transfer was decided) / ended;
  by reason and by rule, each as a share of ended calls (they add up to the transfer rate).
- average handle time: mean `duration_s` of ended calls.
- time to answer: `queue_waits.wait_s` of the waits that were connected to an agent.
- abandonment: outcome 'abandoned' / calls with at least one queue wait.
- callbacks: outcome 'callback'.
- CSAT: `calls.csat` (1..5), one rating per call.
- percentiles: nearest rank (the value at rank ceil(p/100 * n) of the sorted values).
- errors by stage: `errors` rows whose `at` is in the period.
Days and hours of the day are local to the period's time zone (hourly buckets of the UTC records, shifted).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from voicebot.report_period import Period, ReportDateError, parse_period

__all__ = ["Analytics", "Csat", "KbMiss", "Period", "ReportDateError", "Share", "Spread", "Tally",
           "compute", "parse_period", "percentile"]  # fmt: skip

HANDED_OFF = ("transferred", "abandoned", "callback")
LATENCY_STAGES = (
    ("endpointing", "endpointing_ms"),
    ("asr", "asr_ms"),
    ("dialogue", "dialogue_ms"),
    ("tts first audio", "tts_first_audio_ms"),
    ("response", "response_ms"),
)
IN_PERIOD = "c.started >= :since AND c.started < :until"
TURNS_IN_PERIOD = f"FROM calls c JOIN turns t ON t.call_id = c.call_id WHERE {IN_PERIOD}"


@dataclass(frozen=True)
class Tally:
    """Call counts of a bucket (the whole period, a day, an hour of the day)."""

    calls: int = 0
    ended: int = 0
    resolved: int = 0
    handed_off: int = 0
    abandoned: int = 0
    queued: int = 0
    callbacks: int = 0
    errors: int = 0
    handle_s: float = 0.0  # sum of duration_s over `timed` calls
    timed: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def containment(self) -> float | None:
        return ratio(self.resolved, self.ended)

    @property
    def transfer_rate(self) -> float | None:
        return ratio(self.handed_off, self.ended)

    @property
    def abandonment_rate(self) -> float | None:
        return ratio(self.abandoned, self.queued)

    @property
    def average_handle_s(self) -> float | None:
        return self.handle_s / self.timed if self.timed else None


@dataclass(frozen=True)
class Share:
    """A labelled count and its share of a whole (which whole is said where the share is used)."""

    label: str
    count: int
    rate: float | None


@dataclass(frozen=True)
class Spread:
    """Mean and percentiles of a set of values (None when there are none)."""

    name: str
    n: int
    mean: float | None
    percentiles: tuple[tuple[int, float | None], ...] = ()  # (rank, value)

    def p(self, rank: int) -> float | None:
        return dict(self.percentiles)[rank]


@dataclass(frozen=True)
class KbMiss:
    question: str  # redacted transcript, as written by the call records writer
    language: str
    count: int


@dataclass(frozen=True)
class Csat:
    responses: int
    mean: float | None
    distribution: tuple[int, int, int, int, int]  # ratings 1..5
    response_rate: float | None  # responses / ended calls


@dataclass(frozen=True)
class Analytics:
    period: Period
    totals: Tally
    daily: tuple[tuple[date, Tally], ...]  # every day of the period, zeros included
    hourly: tuple[Tally, ...]  # 24 entries, local hour of the day
    outcomes: tuple[Share, ...]  # share of all calls ('live' = no outcome yet)
    transfer_reasons: tuple[Share, ...]  # share of ended calls
    transfer_rules: tuple[Share, ...]  # share of ended calls
    time_to_answer: Spread  # seconds: mean, p50, p90
    languages: tuple[Share, ...]  # share of all calls
    turns: int
    intents: tuple[Share, ...]  # share of turns with an intent
    faqs: tuple[Share, ...]  # share of KB answers
    kb_miss_turns: int
    kb_misses: tuple[KbMiss, ...]
    csat: Csat
    latency: tuple[Spread, ...]  # milliseconds: p50, p95, p99 per stage
    errors_by_stage: tuple[Share, ...]  # share of errors

    @property
    def calls(self) -> int:
        return self.totals.calls


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def percentile(sorted_values: Sequence[float] | np.ndarray, p: float) -> float | None:
    """Nearest rank: the value at rank ceil(p/100 * n), 1-based."""
    if len(sorted_values) == 0:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def spread(name: str, values: Iterable[float | None] | np.ndarray, ranks: Sequence[int]) -> Spread:
    """Mean and nearest-rank percentiles of the values that are present (None / NaN left out)."""
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    present = np.sort(array[~np.isnan(array)])
    mean = float(present.mean()) if len(present) else None
    return Spread(name, len(present), mean, tuple((p, percentile(present, p)) for p in ranks))


def compute(db: Any, period: Period, *, top: int = 10, kb_misses: int = 50) -> Analytics:
    """Every figure of the report. `db`: a sqlite_utils.Database (or anything with `.execute(sql, params)`)."""
    since, until = period.bounds()
    window = {"since": since, "until": until}
    buckets = _hour_buckets(db, window)
    daily, hourly = _local_tallies(buckets, period)
    totals = sum((tally for _, tally in buckets), Tally())
    turns = _turn_counts(db, window)
    return Analytics(
        period=period,
        totals=totals,
        daily=daily,
        hourly=hourly,
        outcomes=_shares(_grouped(db, "coalesce(c.outcome, 'live')", "", window), totals.calls),
        transfer_reasons=_shares(_handed_off_by(db, "c.reason", "unknown", window), totals.ended),
        transfer_rules=_shares(_handed_off_by(db, "c.rule", "(no rule)", window), totals.ended),
        time_to_answer=spread("time to answer", _column(db, _CONNECTED_WAITS, window), (50, 90)),
        languages=_shares(_grouped(db, "coalesce(c.language, 'unknown')", "", window), totals.calls),
        turns=turns.total,
        intents=_top(turns.intents, top),
        faqs=_top(turns.faqs, top),
        kb_miss_turns=turns.kb_misses,
        kb_misses=_kb_misses(db, window, kb_misses),
        csat=_csat(db, window, totals.ended),
        latency=_latency(db, window),
        errors_by_stage=_errors_by_stage(db, window),
    )


_CONNECTED_WAITS = f"""SELECT w.wait_s FROM calls c JOIN queue_waits w ON w.call_id = c.call_id
WHERE {IN_PERIOD} AND w.outcome = 'connected' AND w.wait_s IS NOT NULL"""

_HOUR_BUCKETS = f"""
SELECT substr(c.started, 1, 13) AS hour,
       count(*),
       count(*) FILTER (WHERE c.outcome IS NOT NULL),
       count(*) FILTER (WHERE c.outcome = 'resolved'),
       count(*) FILTER (WHERE c.outcome IN ('transferred', 'abandoned', 'callback')),
       count(*) FILTER (WHERE c.outcome = 'abandoned'),
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM queue_waits w WHERE w.call_id = c.call_id)),
       count(*) FILTER (WHERE c.outcome = 'callback'),
       count(*) FILTER (WHERE c.outcome = 'error'),
       total(c.duration_s) FILTER (WHERE c.outcome IS NOT NULL AND c.duration_s IS NOT NULL),
       count(c.duration_s) FILTER (WHERE c.outcome IS NOT NULL)
FROM calls c WHERE {IN_PERIOD}
GROUP BY hour ORDER BY hour
"""


def _hour_buckets(db: Any, window: dict[str, str]) -> list[tuple[datetime, Tally]]:
    """One Tally per UTC hour that has calls."""
    buckets = []
    for hour, *counts in db.execute(_HOUR_BUCKETS, window).fetchall():
        start = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        buckets.append((start, Tally(*counts)))
    return buckets


def _local_tallies(
    buckets: list[tuple[datetime, Tally]], period: Period
) -> tuple[tuple[tuple[date, Tally], ...], tuple[Tally, ...]]:
    by_day = dict.fromkeys(period.days(), Tally())
    by_hour = [Tally()] * 24
    for start, tally in buckets:
        local = start.astimezone(period.zone)
        by_day[local.date()] = by_day.get(local.date(), Tally()) + tally
        by_hour[local.hour] += tally
    return tuple(sorted(by_day.items())), tuple(by_hour)


def _scalar(db: Any, sql: str, params: dict[str, Any]) -> int:
    return int(db.execute(sql, params).fetchone()[0] or 0)


def _column(db: Any, sql: str, params: dict[str, Any]) -> list[float]:
    return [row[0] for row in db.execute(sql, params).fetchall()]


def _grouped(db: Any, key: str, condition: str, params: dict[str, Any], limit: int = -1) -> list[tuple[str, int]]:
    sql = (f"SELECT {key} AS label, count(*) AS n FROM calls c WHERE {IN_PERIOD} {condition} "
           "GROUP BY label ORDER BY n DESC, label LIMIT :limit")  # fmt: skip
    return [(str(label), n) for label, n in db.execute(sql, {**params, "limit": limit}).fetchall()]


def _handed_off_by(db: Any, column: str, missing: str, window: dict[str, str]) -> list[tuple[str, int]]:
    condition = "AND c.outcome IN ('transferred', 'abandoned', 'callback')"
    return _grouped(db, f"coalesce({column}, '{missing}')", condition, window)


def _shares(counts: list[tuple[str, int]], whole: int | None = None) -> tuple[Share, ...]:
    total = sum(n for _, n in counts) if whole is None else whole
    return tuple(Share(label, n, ratio(n, total)) for label, n in counts)


@dataclass(frozen=True)
class _TurnCounts:
    total: int
    intents: Counter[str]
    faqs: Counter[str]
    kb_misses: int


def _turn_counts(db: Any, window: dict[str, str]) -> _TurnCounts:
    """Turns, intents, KB answers and KB misses in one pass over the period's turns."""
    sql = f"SELECT t.intent, t.kb_id, t.kb_miss, count(*) {TURNS_IN_PERIOD} GROUP BY 1, 2, 3"
    intents: Counter[str] = Counter()
    faqs: Counter[str] = Counter()
    total = misses = 0
    for intent, kb_id, kb_miss, n in db.execute(sql, window).fetchall():
        total += n
        misses += n if kb_miss else 0
        if intent:
            intents[str(intent)] += n
        if kb_id:
            faqs[str(kb_id)] += n
    return _TurnCounts(total, intents, faqs, misses)


def _top(counts: Counter[str], top: int) -> tuple[Share, ...]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    whole = sum(counts.values())
    return tuple(Share(label, n, ratio(n, whole)) for label, n in ranked[:top])


def _kb_misses(db: Any, window: dict[str, str], limit: int) -> tuple[KbMiss, ...]:
    sql = f"""SELECT min(t.transcript), coalesce(t.language, c.language, ''), count(*) AS n
    {TURNS_IN_PERIOD} AND t.kb_miss = 1 AND trim(coalesce(t.transcript, '')) != ''
    GROUP BY lower(trim(t.transcript)), 2 ORDER BY n DESC, 1 LIMIT :limit"""
    rows = db.execute(sql, {**window, "limit": limit}).fetchall()
    return tuple(KbMiss(question.strip(), language, n) for question, language, n in rows)


def _csat(db: Any, window: dict[str, str], ended: int) -> Csat:
    sql = f"SELECT c.csat, count(*) FROM calls c WHERE {IN_PERIOD} AND c.csat BETWEEN 1 AND 5 GROUP BY c.csat"
    counts = dict(db.execute(sql, window).fetchall())
    distribution = (counts.get(1, 0), counts.get(2, 0), counts.get(3, 0), counts.get(4, 0), counts.get(5, 0))
    responses = sum(distribution)
    mean = ratio(sum(rating * n for rating, n in enumerate(distribution, start=1)), responses)
    return Csat(responses, mean, distribution, ratio(responses, ended))


def _latency(db: Any, window: dict[str, str]) -> tuple[Spread, ...]:
    columns = ", ".join(f"t.{column}" for _, column in LATENCY_STAGES)
    rows = db.execute(f"SELECT {columns} {TURNS_IN_PERIOD}", window).fetchall()
    matrix = np.array(rows, dtype=float).reshape(-1, len(LATENCY_STAGES))  # NULL -> NaN
    return tuple(spread(name, matrix[:, index], (50, 95, 99)) for index, (name, _) in enumerate(LATENCY_STAGES))


def _errors_by_stage(db: Any, window: dict[str, str]) -> tuple[Share, ...]:
    sql = ("SELECT coalesce(stage, 'unknown') AS label, count(*) AS n FROM errors "
           "WHERE at >= :since AND at < :until GROUP BY label ORDER BY n DESC, label")  # fmt: skip
    return _shares([(str(label), n) for label, n in db.execute(sql, window).fetchall()])
