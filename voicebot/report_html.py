"""The report as ONE self-contained HTML file: inline CSS and inline SVG charts, no script, no external resource."""

from __future__ import annotations

from html import escape
from pathlib import Path

from voicebot.analytics import Analytics
from voicebot.report_charts import charts
from voicebot.report_tables import Table, cell_text, tables

STYLE = """
body { font-family: sans-serif; color: #2d3748; margin: 2em auto; max-width: 1100px; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 0.4em; }
.period { color: #4a5568; margin-top: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1em; }
.chart { border: 1px solid #e2e8f0; border-radius: 6px; padding: 0.5em; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 0 2em; }
.wide { grid-column: 1 / -1; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e2e8f0; }
td.num, th.num, td:first-child { white-space: nowrap; }
th { text-align: left; background: #f7fafc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #718096; font-size: 0.85em; }
"""
WIDE_TABLES = ("daily", "hourly", "kb_misses", "latency")
CHART_ORDER = (
    "calls_per_day",
    "containment_per_day",
    "calls_per_hour",
    "transfer_reasons",
    "latency",
    "languages",
    "csat",
)


def html_report(analytics: Analytics) -> str:
    svgs = charts(analytics)
    chart_cells = "".join(f'<div class="chart">{svgs[name]}</div>' for name in CHART_ORDER)
    table_cells = "".join(table_html(table) for table in tables(analytics))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>voicebot call report {escape(analytics.period.label())}</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>voicebot call report</h1>"
        f'<p class="period">{escape(analytics.period.label())} · {analytics.calls:,} calls</p>'
        f'<h2>Charts</h2><div class="charts">{chart_cells}</div>'
        f'<div class="tables">{table_cells}</div>'
        "</body></html>\n"
    )


def write_html_report(analytics: Analytics, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(analytics), encoding="utf-8")
    return path


def table_html(table: Table) -> str:
    head = "".join(f'<th class="{_css(column.kind)}">{escape(column.header)}</th>' for column in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{_css(column.kind)}">{escape(cell_text(value, column.kind))}</td>'
            for value, column in zip(row, table.columns, strict=True)
        )
        + "</tr>"
        for row in table.shown_rows()
    )
    if not body:
        body = f'<tr><td colspan="{len(table.columns)}">(none)</td></tr>'
    note = f'<p class="note">{escape(table.shown_note())}</p>' if table.shown_note() else ""
    wide = " wide" if table.name in WIDE_TABLES else ""
    return (
        f'<section class="table{wide}" id="{table.name}"><h2>{escape(table.title)}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</section>"
    )


def _css(kind: str) -> str:
    return "text" if kind == "text" else "num"
