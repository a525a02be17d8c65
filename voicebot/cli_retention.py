"""`voicebot retention apply [--dry-run]`: delete the call data the retention policy says has aged out."""

from __future__ import annotations

import argparse
from typing import Any

from voicebot.config import load_settings
from voicebot.retention import CONFIRM_FLAG, Retention, RetentionReport


def cmd_retention_apply(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    retention = Retention.from_settings(settings, confirmed=args.confirm_destructive_policy)
    report = retention.apply(dry_run=args.dry_run)
    print(report_table(report, retention))
    return 0


def report_table(report: RetentionReport, retention: Retention) -> str:
    policy = retention.policy
    kept = {"recordings": policy.recordings_days, "transcripts": policy.transcripts_days,
            "metadata": policy.metadata_days}  # fmt: skip
    verb = "would delete" if report.dry_run else "deleted"
    lines = [f"{'data type':<12} {'kept (days)':>11}  {'what':<22} {verb:>12}"]
    for data_type, days in kept.items():
        counts = report.counts.get(data_type) or {"-": 0}
        for what, count in counts.items():
            lines.append(f"{data_type:<12} {days:>11}  {what:<22} {count:>12}")
    footer = "dry run: nothing was changed" if report.dry_run else "written to the audit log (retention_apply)"
    return "\n".join([*lines, footer])


def add_retention_parser(sub: Any) -> None:
    retention = sub.add_parser("retention", help="delete call data older than the retention policy")
    actions = retention.add_subparsers(dest="retention_action", required=True)
    apply = actions.add_parser("apply", help="apply the `retention` settings now (serve does it every hour)")
    apply.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    apply.add_argument(
        CONFIRM_FLAG,
        action="store_true",
        help="run a policy that deletes everything or contradicts itself (0 days, transcripts kept longer than calls)",
    )
    apply.add_argument("--config", help="YAML settings file (default: embedded defaults, or $VOICEBOT_CONFIG)")
    apply.set_defaults(func=cmd_retention_apply)
