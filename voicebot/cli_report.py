"""`voicebot report`: supervisor analytics over the call records database, as terminal tables, a self-contained
HTML file and CSV files."""

from __future__ import annotations

import argparse
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicebot.call_schema import CALLS_DB_NAME, open_calls_db, store_error
from voicebot.ports import ConfigError

if TYPE_CHECKING:
    from voicebot.analytics import Analytics
    from voicebot.report_period import Period

DEFAULT_TIMEZONE = "Europe/Paris"


def add_report_parser(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report", help="call analytics: containment, transfers, waits, CSAT, latency (tables, HTML, CSV)"
    )
    report.add_argument(
        "--since",
        default="7d",
        help="start: YYYY-MM-DD, YYYY-MM-DDTHH:MM, 7d, 24h, today or yesterday (default: 7d)",
    )
    report.add_argument("--until", help="end, same forms; a day is included whole (default: now)")
    report.add_argument("--db", help=f"call records database (default: <state dir>/{CALLS_DB_NAME})")
    report.add_argument("--tz", help="time zone of dates, days and hours (default: the agents file's timezone)")
    report.add_argument("--html", metavar="FILE", help="write the self-contained HTML report with charts here")
    report.add_argument("--csv", metavar="DIR", help="write one CSV file per table into this directory")
    report.add_argument("--top", type=int, default=10, help="how many intents and FAQs to list (default 10)")
    report.add_argument("--config", help="YAML settings file (for the agents file's timezone)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from voicebot.report_csv import write_csv_tables
    from voicebot.report_html import write_html_report
    from voicebot.report_period import parse_period
    from voicebot.report_text import text_report

    if args.top < 1:
        raise ConfigError(f"--top {args.top}: give a positive number of rows")
    tz = args.tz or _directory_timezone(args.config)
    period = parse_period(args.since, args.until, tz)  # bad dates fail before any file is opened
    analytics = load_analytics(_db_path(args.db), period, top=args.top)
    print(text_report(analytics), end="")
    if args.html:
        print(f"\nHTML report: {write_html_report(analytics, Path(args.html))}")
    if args.csv:
        files = write_csv_tables(analytics, Path(args.csv))
        print(f"CSV tables ({len(files)} files): {Path(args.csv)}")
    return 0


def load_analytics(path: Path, period: Period, top: int = 10, migrate: bool = True) -> Analytics:
    """Opens the records database (bringing its schema up to date unless `migrate` is False: the console reads
    only) and computes the period's figures."""
    from voicebot.analytics import compute

    _require_calls_table(path)
    db = open_calls_db(path, run_migrations=migrate)
    try:
        return compute(db, period, top=top)
    except sqlite3.DatabaseError as exc:
        raise store_error(path, exc) from exc
    finally:
        db.conn.close()


def _require_calls_table(path: Path) -> None:
    """Refuses a missing file or another SQLite database (opening it would create the call tables in it)."""
    if not path.is_file():
        raise ConfigError(
            f"no call records database at {path}: `voicebot serve` records calls there; give --db PATH for another"
        )
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise store_error(path, exc) from exc
    if not found:
        raise ConfigError(f"{path} holds no call records (no calls table): give the state directory's {CALLS_DB_NAME}")


def _db_path(option: str | None) -> Path:
    from dialogue.state import state_dir

    return Path(option) if option else state_dir() / CALLS_DB_NAME


def _directory_timezone(config: str | None) -> str:
    from voicebot.config import load_settings

    return directory_timezone(load_settings(config).agents_file)


def directory_timezone(agents_file: Path) -> str:
    """The agents file's top-level `timezone` (the queues' business hours are in it), else Europe/Paris."""
    from voicebot.yamlfile import read_mapping

    try:
        zone = read_mapping(agents_file, "agents file").get("timezone", DEFAULT_TIMEZONE)
    except ConfigError:
        return DEFAULT_TIMEZONE
    return str(zone)
