"""`voicebot audit ...`: the hash-chained audit log from the terminal."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any


def _ops_db(args: argparse.Namespace) -> Path:
    from dialogue.ops_db import ops_db_path

    return Path(args.db) if args.db else ops_db_path()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from voicebot.audit import Audit

    audit = Audit(_ops_db(args))
    problems = audit.verify()
    for problem in problems:
        print(f"TAMPERED: {problem}")
    if problems:
        print(f"audit log {audit.db_path}: {len(problems)} problem(s): entries were edited, deleted or reordered")
        return 1
    print(f"audit log {audit.db_path}: chain intact ({len(audit.entries(limit=1_000_000))} entries)")
    return 0


def cmd_audit_list(args: argparse.Namespace) -> int:
    from voicebot.audit import Audit

    for entry in reversed(Audit(_ops_db(args)).entries(limit=args.limit)):
        at = dt.datetime.fromtimestamp(entry.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{entry.id:6d}  {at}  {entry.actor:<12} {entry.action:<20} {entry.target}  {_short(entry.after)}")
    return 0


def _short(value: Any, width: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def add_audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    actions = audit.add_subparsers(dest="audit_action", required=True)
    verify = actions.add_parser("verify", help="check the hash chain: exit 1 when an entry was edited or deleted")
    verify.set_defaults(func=cmd_audit_verify)
    listing = actions.add_parser("list", help="the latest entries, oldest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_audit_list)
    for parser in (verify, listing):
        parser.add_argument("--db", help="operations database (default: $VOICEBOT_STATE_DIR/operations.db)")
