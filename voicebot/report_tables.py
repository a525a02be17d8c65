"""The report's tables, defined once for the terminal, HTML and CSV renderers.

Cells hold raw values (counts, fractions, seconds, milliseconds, None); each column has a kind that says how to
show it. CSV writes the raw values; text and HTML format them with `cell_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from voicebot.analytics import Analytics, Share, Tally


class Measure(NamedTuple):
    """A summary value with its own kind (the summary table mixes counts, rates and durations)."""

    value: float | int | None
    kind: str


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = "text"  # text | count | rate | seconds | ms | mean | measure


@dataclass(frozen=True)
class Table:
    name: str  # file name stem in CSV exports
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    sparse: bool = False  # rows whose second cell (calls) is 0 are left out of text and HTML (kept in CSV)

    def shown_rows(self) -> tuple[tuple[Any, ...], ...]:
        return tuple(row for row in self.rows if row[1]) if self.sparse else self.rows

    def shown_note(self) -> str:
        left_out = len(self.rows) - len(self.shown_rows())
        extra = f"{left_out} rows without calls left out" if left_out else ""
        return "; ".join(text for text in (self.note, extra) if text)


def cell_text(value: Any, kind: str) -> str:
    if isinstance(value, Measure):
        return cell_text(value.value, value.kind)
    if value is None:
        return "–"
    formats = {
        "count": lambda v: f"{v:,}",
        "rate": lambda v: f"{v * 100:.1f} %",
        "seconds": lambda v: f"{v:.1f} s",
        "ms": lambda v: f"{v:,.0f}",
        "mean": lambda v: f"{v:.2f}",
    }
    return formats.get(kind, str)(value)


def csv_value(value: Any) -> Any:
    if isinstance(value, Measure):
        value = value.value
    if value is None:
        return ""
    return round(value, 4) if isinstance(value, float) else value


def tables(analytics: Analytics) -> list[Table]:
    """Every table of the report, in reading order."""
    return [
        summary_table(analytics),
        _share_table("outcomes", "Outcomes", "outcome", "calls", "share of calls", analytics.outcomes),
        _share_table("reasons", "Transfers by reason", "reason", "calls", "of ended calls", analytics.transfer_reasons),
        _share_table("rules", "Transfers by rule", "rule", "calls", "of ended calls", analytics.transfer_rules),
        _share_table("languages", "Languages", "language", "calls", "share of calls", analytics.languages),
        daily_table(analytics),
        hourly_table(analytics),
        _share_table("intents", "Top intents", "intent", "turns", "of turns with an intent", analytics.intents),
        _share_table("faqs", "Top FAQs (KB answers)", "kb entry", "answers", "of KB answers", analytics.faqs),
        kb_misses_table(analytics),
        csat_table(analytics),
        latency_table(analytics),
        _share_table("errors", "Errors by stage", "stage", "errors", "share of errors", analytics.errors_by_stage),
    ]


def summary_table(analytics: Analytics) -> Table:
    totals, wait, csat = analytics.totals, analytics.time_to_answer, analytics.csat
    rows = (
        ("calls", Measure(totals.calls, "count")),
        ("ended calls", Measure(totals.ended, "count")),
        ("containment (resolved by the bot / ended)", Measure(totals.containment, "rate")),
        ("transfer rate (handed off / ended)", Measure(totals.transfer_rate, "rate")),
        ("average handle time", Measure(totals.average_handle_s, "seconds")),
        ("calls that entered a queue", Measure(totals.queued, "count")),
        ("answered by an agent", Measure(wait.n, "count")),
        ("time to answer, mean", Measure(wait.mean, "seconds")),
        ("time to answer, p50", Measure(wait.p(50), "seconds")),
        ("time to answer, p90", Measure(wait.p(90), "seconds")),
        ("abandonment (abandoned / queued)", Measure(totals.abandonment_rate, "rate")),
        ("callbacks", Measure(totals.callbacks, "count")),
        ("calls ended in error", Measure(totals.errors, "count")),
        ("caller turns", Measure(analytics.turns, "count")),
        ("turns the KB could not answer", Measure(analytics.kb_miss_turns, "count")),
        ("CSAT, mean rating (1-5)", Measure(csat.mean, "mean")),
        ("CSAT responses", Measure(csat.responses, "count")),
        ("CSAT response rate (of ended calls)", Measure(csat.response_rate, "rate")),
    )
    return Table("summary", f"Summary — {analytics.period.label()}",
                 (Column("figure"), Column("value", "measure")), rows)  # fmt: skip


def daily_table(analytics: Analytics) -> Table:
    columns = (
        Column("day"),
        *_tally_columns(),
        Column("queued", "count"),
        Column("abandoned", "count"),
        Column("abandonment", "rate"),
        Column("callbacks", "count"),
        Column("handle time", "seconds"),
    )
    rows = tuple(
        (day.isoformat(), *_tally_cells(t), t.queued, t.abandoned, t.abandonment_rate, t.callbacks, t.average_handle_s)
        for day, t in analytics.daily
    )
    return Table("daily", "Per day", columns, rows, sparse=True)


def hourly_table(analytics: Analytics) -> Table:
    rows = tuple((f"{hour:02d}:00", *_tally_cells(t)) for hour, t in enumerate(analytics.hourly))
    title = f"Per hour of the day ({analytics.period.tz})"
    return Table("hourly", title, (Column("hour"), *_tally_columns()), rows, sparse=True)


def kb_misses_table(analytics: Analytics) -> Table:
    rows = tuple((miss.question, miss.language, miss.count) for miss in analytics.kb_misses)
    note = f"{analytics.kb_miss_turns} turns in all, the most frequent first; transcripts are redacted"
    columns = (Column("question"), Column("language"), Column("times", "count"))
    return Table("kb_misses", "Questions the knowledge base could not answer", columns, rows, note)


def csat_table(analytics: Analytics) -> Table:
    csat = analytics.csat
    rows = tuple(
        (str(rating), n, n / csat.responses if csat.responses else None)
        for rating, n in enumerate(csat.distribution, start=1)
    )
    columns = (Column("rating"), Column("responses", "count"), Column("share", "rate"))
    return Table("csat", "Satisfaction (CSAT)", columns, rows)


def latency_table(analytics: Analytics) -> Table:
    columns = (Column("stage"), Column("turns", "count"), *(Column(h, "ms") for h in ("mean", "p50", "p95", "p99")))
    rows = tuple((s.name, s.n, s.mean, s.p(50), s.p(95), s.p(99)) for s in analytics.latency)
    return Table("latency", "Latency per stage (ms)", columns, rows)


def _tally_columns() -> tuple[Column, ...]:
    return (
        Column("calls", "count"),
        Column("ended", "count"),
        Column("resolved", "count"),
        Column("containment", "rate"),
        Column("transfers", "count"),
        Column("transfer rate", "rate"),
    )


def _tally_cells(t: Tally) -> tuple[Any, ...]:
    return (t.calls, t.ended, t.resolved, t.containment, t.handed_off, t.transfer_rate)


def _share_table(name: str, title: str, label: str, counted: str, share: str, shares: tuple[Share, ...]) -> Table:
    columns = (Column(label), Column(counted, "count"), Column(share, "rate"))
    return Table(name, title, columns, tuple((s.label, s.count, s.rate) for s in shares))
