"""CSV export: a directory with one CSV file per report table (summary.csv, daily.csv, hourly.csv, reasons.csv,
rules.csv, outcomes.csv, languages.csv, intents.csv, faqs.csv, kb_misses.csv, csat.csv, latency.csv, errors.csv).

Cells are raw values for spreadsheets: counts, rates as fractions (0.2857), seconds, milliseconds; empty when
there is no value (summary.csv has a unit column). Every day and hour of the period has a row, zeros included.
UTF-8, comma-separated, header row.
"""

from __future__ import annotations

import csv
from pathlib import Path

from voicebot.analytics import Analytics
from voicebot.report_tables import Measure, Table, csv_value, tables

UNITS = {"count": "count", "rate": "fraction", "seconds": "s", "ms": "ms", "mean": "rating"}


def write_csv_tables(analytics: Analytics, directory: Path) -> list[Path]:
    """Writes (or replaces) one CSV per table in `directory`; returns the files in report order."""
    directory.mkdir(parents=True, exist_ok=True)
    return [write_csv_table(table, directory / f"{table.name}.csv") for table in tables(analytics)]


def write_csv_table(table: Table, path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([header for column in table.columns for header in _headers(column.header, column.kind)])
        writer.writerows([cell for value in row for cell in _cells(value)] for row in table.rows)
    return path


def _headers(header: str, kind: str) -> list[str]:
    """A summary value (kind 'measure') gets a unit column next to it."""
    if kind == "measure":
        return [header, "unit"]
    units = {"rate": " (fraction)", "seconds": " (s)", "ms": " (ms)"}
    return [header + units.get(kind, "")]


def _cells(value: object) -> list[object]:
    if isinstance(value, Measure):
        return [csv_value(value), UNITS.get(value.kind, value.kind)]
    return [csv_value(value)]
