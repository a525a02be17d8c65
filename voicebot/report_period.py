"""The time window of a report: `--since`/`--until` as dates, date-times or relative forms, in a time zone.

Dates and words name whole days: as `--since` the day's first instant, as `--until` its last (the day is
included). `7d` / `24h` are instants counted back from now. The window is half-open, [since, until), and
compared with the records' UTC timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicebot.ports import ConfigError

DATE_FORMS = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM (or 7d, 24h, today, yesterday)"
_ABSOLUTE = re.compile(r"^\d{4}-\d{2}-\d{2}(?P<clock>[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")
_RELATIVE = re.compile(r"^(?P<amount>\d+)\s*(?P<unit>[dh])$", re.IGNORECASE)
_DAY_WORDS = {"today": 0, "yesterday": 1}


class ReportDateError(ConfigError):
    """A malformed or inverted report period."""


@dataclass(frozen=True)
class Period:
    """[since, until) as aware datetimes; `tz` is the zone days and hours of the day are counted in."""

    since: datetime
    until: datetime
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("Period needs timezone-aware datetimes")
        if self.since >= self.until:
            raise ReportDateError(
                f"--since {_shown(self.since, self.zone)} is not before --until {_shown(self.until, self.zone)}: "
                "give the earlier time first"
            )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def bounds(self) -> tuple[str, str]:
        """The window as the records' timestamp text (ISO-8601 UTC, milliseconds), for SQL comparisons."""
        return record_time(self.since), record_time(self.until)

    def days(self) -> list[date]:
        """Every local day the window touches, in order."""
        first = self.since.astimezone(self.zone).date()
        last = (self.until - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def label(self) -> str:
        return f"{_shown(self.since, self.zone)} → {_shown(self.until, self.zone)} ({self.tz})"


def record_time(moment: datetime) -> str:
    """`2026-11-28T21:15:54.123Z`: how the call records store times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def zone_named(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportDateError(f"--tz {tz!r} is not a time zone: use an IANA name like Europe/Paris or UTC") from exc


def parse_period(since: str, until: str | None = None, tz: str = "UTC", now: datetime | None = None) -> Period:
    """`until` None = now. Raises ReportDateError naming the option and the accepted forms."""
    zone = zone_named(tz)
    moment = now or datetime.now(UTC)
    start = parse_moment("--since", since, zone, moment, end_of_day=False)
    end = moment if until is None else parse_moment("--until", until, zone, moment, end_of_day=True)
    return Period(start, end, tz)


def parse_moment(option: str, text: str, zone: ZoneInfo, now: datetime, *, end_of_day: bool) -> datetime:
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        amount = int(relative["amount"])
        unit = timedelta(days=1) if relative["unit"].lower() == "d" else timedelta(hours=1)
        return now - amount * unit
    if value.lower() in _DAY_WORDS:
        day = now.astimezone(zone).date() - timedelta(days=_DAY_WORDS[value.lower()])
        return _day_edge(day, zone, end_of_day)
    absolute = _ABSOLUTE.match(value)
    try:
        if absolute is None:
            raise ValueError(value)
        if absolute["clock"] is None:
            return _day_edge(date.fromisoformat(value), zone, end_of_day)
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ReportDateError(f"{option} {text!r} is not a date: {DATE_FORMS}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _day_edge(day: date, zone: ZoneInfo, end_of_day: bool) -> datetime:
    if end_of_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), zone)


def _shown(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
