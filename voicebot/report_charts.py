"""Inline SVG charts of the analytics (no JavaScript, no external resources), for the HTML report and the console.

`charts(analytics)` returns name -> `<svg>` markup; every text is escaped, colours are attributes so a chart looks
the same wherever it is embedded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from voicebot.analytics import Analytics

WIDTH = 720
PLOT_TOP = 34
AXIS_LEFT = 56
INK = "#2d3748"
GRID = "#e2e8f0"
SERIES_COLOURS = ("#2b6cb0", "#dd6b20", "#c53030", "#38a169", "#805ad5")
ValueText = Callable[[float], str]


def charts(analytics: Analytics) -> dict[str, str]:
    """The report's charts, name -> SVG: calls_per_day, containment_per_day, calls_per_hour, transfer_reasons,
    latency, languages, csat."""
    days = [day.strftime("%m-%d") for day, _ in analytics.daily]
    latency = [s for s in analytics.latency if s.n]
    return {
        "calls_per_day": column_chart("Calls per day", days, [t.calls for _, t in analytics.daily], count_text),
        "containment_per_day": line_chart(
            "Containment per day (resolved by the bot / ended calls)",
            days,
            [t.containment for _, t in analytics.daily],
            percent_text,
        ),
        "calls_per_hour": column_chart(
            f"Calls per hour of the day ({analytics.period.tz})",
            [f"{hour:02d}" for hour in range(24)],
            [t.calls for t in analytics.hourly],
            count_text,
        ),
        "transfer_reasons": bar_list_chart(
            "Transfers by reason", [(s.label, s.count) for s in analytics.transfer_reasons], count_text
        ),
        "latency": grouped_bar_list_chart(
            "Latency per stage (ms)",
            [s.name for s in latency],
            ("p50", "p95", "p99"),
            [[s.p(50), s.p(95), s.p(99)] for s in latency],
            ms_text,
        ),
        "languages": bar_list_chart("Calls by language", [(s.label, s.count) for s in analytics.languages], count_text),
        "csat": column_chart(
            f"Satisfaction ratings ({analytics.csat.responses:,} responses)",
            ["1", "2", "3", "4", "5"],
            list(analytics.csat.distribution),
            count_text,
        ),
    }


def count_text(value: float) -> str:
    return f"{value:,.0f}"


def percent_text(value: float) -> str:
    return f"{value * 100:.0f} %"


def ms_text(value: float) -> str:
    return f"{value:,.0f}"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above value (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def count_axis_top(value: float) -> float:
    """The top of a count axis: 4 equal whole-number steps, close above value (4, 8, 12, 16, 20, 24, 32, 40...)."""
    need = max(value, 1) / 4
    magnitude = 10 ** math.floor(math.log10(need)) if need >= 1 else 1
    steps = (step * magnitude for step in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10))
    return 4 * next(step for step in steps if step >= need and step == int(step))


def column_chart(title: str, labels: Sequence[str], values: Sequence[float], value_text: ValueText) -> str:
    """Vertical bars, one per label (days, hours, ratings)."""
    height, plot_h = 260, 180
    top = count_axis_top(max(values, default=0))
    slot = (WIDTH - AXIS_LEFT - 10) / max(len(labels), 1)
    label_every = max(1, math.ceil(len(labels) / 16))
    parts = [*_y_axis(top, plot_h, value_text)]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = AXIS_LEFT + index * slot
        bar_h = plot_h * value / top
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{PLOT_TOP + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{SERIES_COLOURS[0]}">'
            f"<title>{escape(label)}: {value_text(value)}</title></rect>"
        )
        if index % label_every == 0:
            parts.append(_text(x + slot / 2, PLOT_TOP + plot_h + 16, label, anchor="middle"))
    return _svg(title, height, parts, empty=not any(values))


def line_chart(title: str, labels: Sequence[str], values: Sequence[float | None], value_text: ValueText) -> str:
    """A line over 0..1 (rates); points without a value (no ended call that day) break the line."""
    height, plot_h = 260, 180
    slot = (WIDTH - AXIS_LEFT - 10) / max(len(labels), 1)
    label_every = max(1, math.ceil(len(labels) / 16))
    parts = [*_y_axis(1.0, plot_h, value_text)]
    segments: list[list[str]] = [[]]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = AXIS_LEFT + index * slot + slot / 2
        if index % label_every == 0:
            parts.append(_text(x, PLOT_TOP + plot_h + 16, label, anchor="middle"))
        if value is None:
            segments.append([])
            continue
        y = PLOT_TOP + plot_h * (1 - value)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{SERIES_COLOURS[0]}">'
            f"<title>{escape(label)}: {value_text(value)}</title></circle>"
        )
    for points in segments:
        if len(points) > 1:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{SERIES_COLOURS[0]}" stroke-width="2"/>'
            )
    return _svg(title, height, parts, empty=all(v is None for v in values))


def bar_list_chart(title: str, items: Sequence[tuple[str, float]], value_text: ValueText) -> str:
    """Horizontal bars, one per labelled item (reasons, languages), largest first as given."""
    return grouped_bar_list_chart(title, [label for label, _ in items], (), [[value] for _, value in items], value_text)


def grouped_bar_list_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float | None]],
    value_text: ValueText,
) -> str:
    """Horizontal bars: one group per label, one bar per series (with a legend when there are several)."""
    label_w, bar_h, gap = 170, 16, 10
    per_group = max(len(series), 1)
    legend_h = 22 if series else 0
    top = nice_ceiling(max((v for row in values for v in row if v is not None), default=0))
    plot_w = WIDTH - label_w - 80
    parts = _legend(series, PLOT_TOP) if series else []
    y = PLOT_TOP + legend_h
    for group, row in zip(groups, values, strict=True):
        parts.append(_text(label_w - 8, y + per_group * bar_h / 2 + 4, _shorten(group, 26), anchor="end"))
        for index, value in enumerate(row):
            width = 0.0 if value is None else plot_w * value / top
            shown = "–" if value is None else value_text(value)
            colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
            name = f"{series[index]} " if series else ""
            parts.append(
                f'<rect x="{label_w}" y="{y:.1f}" width="{width:.1f}" height="{bar_h - 2}" fill="{colour}">'
                f"<title>{escape(group)} {escape(name)}{shown}</title></rect>"
            )
            parts.append(_text(label_w + width + 4, y + bar_h - 5, shown))
            y += bar_h
        y += gap
    height = max(int(y) + 10, PLOT_TOP + 40)
    return _svg(title, height, parts, empty=not groups)


def _y_axis(top: float, plot_h: float, value_text: ValueText) -> list[str]:
    parts = []
    for step in range(5):
        value = top * step / 4
        y = PLOT_TOP + plot_h * (1 - step / 4)
        parts.append(f'<line x1="{AXIS_LEFT}" y1="{y:.1f}" x2="{WIDTH - 10}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(AXIS_LEFT - 6, y + 4, value_text(value), anchor="end"))
    return parts


def _legend(series: Sequence[str], y: float) -> list[str]:
    parts = []
    for index, name in enumerate(series):
        x = 170 + index * 90
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        parts.append(f'<rect x="{x}" y="{y:.1f}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 16, y + 11, name))
    return parts


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11" fill="{INK}">{escape(text)}</text>'


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(title: str, height: int, parts: list[str], *, empty: bool) -> str:
    body = [_text(WIDTH / 2, PLOT_TOP + 60, "no data in this period", anchor="middle")] if empty else parts
    return (
        f'<svg viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px" role="img" '
        f'font-family="sans-serif"><title>{escape(title)}</title>'
        f'<text x="8" y="18" font-size="14" font-weight="bold" fill="{INK}">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )
