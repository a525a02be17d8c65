"""The report as terminal tables (what `voicebot report` prints)."""

from __future__ import annotations

from voicebot.analytics import Analytics
from voicebot.report_tables import Table, cell_text, tables

TEXT_CELL_LIMIT = 72
LEFT_ALIGNED = ("text",)


def text_report(analytics: Analytics) -> str:
    return "\n\n".join(render_table(table) for table in tables(analytics)) + "\n"


def render_table(table: Table) -> str:
    rows = [[_clip(cell_text(value, column.kind)) for value, column in zip(row, table.columns, strict=True)]
            for row in table.shown_rows()]  # fmt: skip
    headers = [column.header for column in table.columns]
    widths = [max(len(text) for text in column) for column in zip(headers, *rows, strict=True)]
    lines = [table.title, _line(headers, widths, table), "  ".join("─" * width for width in widths)]
    lines += [_line(row, widths, table) for row in rows] or ["(none)"]
    if table.shown_note():
        lines.append(f"({table.shown_note()})")
    return "\n".join(lines)


def _line(cells: list[str], widths: list[int], table: Table) -> str:
    aligned = [
        cell.ljust(width) if column.kind in LEFT_ALIGNED else cell.rjust(width)
        for cell, width, column in zip(cells, widths, table.columns, strict=True)
    ]
    return "  ".join(aligned).rstrip()


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CELL_LIMIT else text[: TEXT_CELL_LIMIT - 1] + "…"
