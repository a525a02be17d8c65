"""`voicebot rules validate|import|export|history|test`: the supervisors' transfer rules from the command line.
Versions live in the operations database (dialogue/rule_store.py); `test` is a dry run over conversation dialogues."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogue.ops_db import ops_db_path
from dialogue.rule_store import RuleStore, current_queues, rules_validator
from dialogue.transfer_rules import RuleError, RuleSet
from voicebot.config import REPO_ROOT, load_settings
from voicebot.ports import ConfigError
from voicebot.rules_dry_run import Situation, table, verdicts

if TYPE_CHECKING:
    from voicebot.convtest import DialogueOutcome

DEFAULT_DIALOGUES = REPO_ROOT / "tests" / "dialogues"


def add_rules_parser(subparsers: Any) -> None:
    from voicebot.cli import _engine_options

    rules = subparsers.add_parser("rules", help="supervisor transfer rules: validate, import, export, history, test")
    sub = rules.add_subparsers(dest="rules_command", required=True)

    validate = sub.add_parser("validate", help="check a rules file; every problem with its line")
    validate.add_argument("file")
    validate.add_argument("--config", help="YAML settings file (languages)")
    validate.set_defaults(func=cmd_rules_validate)

    load = sub.add_parser("import", help="validate a rules file and make it the new live version")
    load.add_argument("file")
    load.add_argument("--author", default=getpass.getuser(), help="who made the change (default: you)")
    load.add_argument("--comment", default="", help="why")
    load.add_argument("--config", help="YAML settings file (languages)")
    load.set_defaults(func=cmd_rules_import)

    export = sub.add_parser("export", help="the live rules (or a version) as YAML")
    export.add_argument("--version", type=int, help="this version instead of the live one")
    export.add_argument("-o", "--output", help="write to this file instead of standard output")
    export.add_argument("--config", help="YAML settings file (languages)")
    export.set_defaults(func=cmd_rules_export)

    history = sub.add_parser("history", help="every version: when, who, why")
    history.add_argument("--config", help="YAML settings file (languages)")
    history.set_defaults(func=cmd_rules_history)

    test = sub.add_parser("test", help="dry run: replay conversation dialogues, show which rule fires at which turn")
    test.add_argument("files", nargs="*", help="rules files (default: the live rules)")
    test.add_argument("--dialogues", nargs="+", default=[str(DEFAULT_DIALOGUES)], help="dialogue YAML files/folders")
    test.add_argument("--at", help="the time of the calls, ISO 8601 (default: now; no offset = the queues' local time)")
    test.add_argument("--closed", action="append", default=[], metavar="QUEUE", help="treat this queue as closed")
    test.add_argument("--queue-length", action="append", default=[], metavar="QUEUE=N", help="callers waiting")
    test.add_argument("--wait", action="append", default=[], metavar="QUEUE=S", help="expected wait in seconds")
    test.add_argument("--calls-today", type=int, default=1, help="the caller's calls today, this one included")
    test.add_argument("--json", help="also write every turn's verdict to this JSON file")
    _engine_options(test)
    test.set_defaults(func=cmd_rules_test)


def _languages(args: argparse.Namespace) -> tuple[str, ...]:
    return load_settings(args.config).call.languages


def _store(args: argparse.Namespace) -> RuleStore:
    db_path = ops_db_path()
    return RuleStore(db_path, rules_validator(db_path, _languages(args)))


def _read(file: str) -> str:
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"rules file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read rules file {path}: {exc}") from exc


def _print_problems(source: str, error: RuleError) -> None:
    for problem in error.problems:
        line = f":{problem.line}" if problem.line else ""
        print(f"{source}{line}: {problem.where}: {problem.message}", file=sys.stderr)


def _parse(file: str, args: argparse.Namespace) -> RuleSet | None:
    """The rules of `file`, or None after printing its problems."""
    db_path = ops_db_path()
    try:
        return rules_validator(db_path, _languages(args))(_read(file))
    except RuleError as exc:
        _print_problems(file, exc)
        print(f"voicebot: error: {file}: {_count(exc)}", file=sys.stderr)
        return None


def _count(error: RuleError) -> str:
    return f"{len(error.problems)} problem{'s' if len(error.problems) != 1 else ''}"


def cmd_rules_validate(args: argparse.Namespace) -> int:
    rules = _parse(args.file, args)
    if rules is None:
        return 1
    print(f"{args.file}: {len(rules)} rules, valid")
    return 0


def cmd_rules_import(args: argparse.Namespace) -> int:
    store = _store(args)
    text = _read(args.file)
    before = store.live_text()
    try:
        version = store.save(text, args.author, args.comment)
    except RuleError as exc:
        _print_problems(args.file, exc)
        live = f"version {before[0]}" if before else "no version"
        print(f"voicebot: error: {args.file}: {_count(exc)}; the live rules ({live}) were not changed", file=sys.stderr)
        return 1
    if before and before[0] == version:
        print(f"{args.file} is the same as the live version {version}: nothing to import")
    else:
        from voicebot.audit import Audit

        previous = {"version": before[0] if before else None}
        after = {"version": version, "file": args.file, "comment": args.comment}
        Audit(ops_db_path()).record(args.author, "rules_import", "transfer_rules", previous, after)
        print(f"version {version} is live ({args.file}, by {args.author})")
    return 0


def cmd_rules_export(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.version is not None:
        try:
            version, text = args.version, store.text_of(args.version)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from exc
    else:
        live = store.live_text()
        if live is None:
            raise ConfigError("there are no transfer rules yet: import a file with `voicebot rules import FILE`")
        version, text = live
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"version {version} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_rules_history(args: argparse.Namespace) -> int:
    versions = _store(args).versions()
    print(f"  {'version':>7}  {'saved':<19}  {'author':<16} {'rules':>5}  comment")
    for entry in versions:
        saved = datetime.fromtimestamp(entry["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        mark = "*" if entry["live"] else " "
        print(f"{mark} {entry['version']:>7}  {saved:<19}  {entry['author']:<16} {entry['rule_count']:>5}  "
              f"{entry['comment']}")  # fmt: skip
    print("* = live")
    return 0


# --- test (dry run) -----------------------------------------------------------------------------------------


def cmd_rules_test(args: argparse.Namespace) -> int:
    from voicebot.cli import UserError, _runtime, _settings, _with_dialogue
    from voicebot.convtest import load_all, prepare_audio, run_dialogue
    from voicebot.convtest_spec import load_dialogue

    rule_sets = _rule_sets(args)
    if rule_sets is None:
        return 1
    files = load_all([Path(p) for p in args.dialogues])
    if not files:
        raise UserError("no dialogue files found (give YAML files or folders that contain them with --dialogues)")
    specs = [load_dialogue(path) for path in files]
    settings = _settings(args)
    situation = _situation(args, settings.call.languages, settings.call.default_language,
                           settings.speech.language_threshold)  # fmt: skip
    runtime = _runtime(settings)
    clips = [prepare_audio(runtime, spec) for spec in specs]  # bad audio or voices fail before Rasa starts

    async def replay() -> list[DialogueOutcome]:
        try:
            await runtime.warm_up(16000)
            return [await run_dialogue(runtime, spec, args.speed, c) for spec, c in zip(specs, clips, strict=True)]
        finally:
            await runtime.aclose()

    def job() -> int:
        _report(asyncio.run(replay()), rule_sets, situation, args.json)
        return 0

    return _with_dialogue(settings, args.rasa_url, job)


def _report(
    outcomes: list[DialogueOutcome], rule_sets: list[tuple[str, RuleSet]], situation: Situation, json_file: str | None
) -> None:
    verdict_rows: list[dict[str, Any]] = []
    for label, rules in rule_sets:
        results = [(outcome, verdicts(outcome, rules, situation)) for outcome in outcomes]
        print(f"\nrules: {label} ({len(rules)} rules)\n{table(results)}")
        verdict_rows += [{"rules": label, **v.to_dict()} for _, turn_verdicts in results for v in turn_verdicts]
    if json_file:
        Path(json_file).write_text(json.dumps(verdict_rows, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"verdicts: {json_file}")


def _rule_sets(args: argparse.Namespace) -> list[tuple[str, RuleSet]] | None:
    """(label, rules) for each file given, or the live version; None after printing problems."""
    if not args.files:
        try:
            live = _store(args).live()
        except RuleError as exc:
            _print_problems("live rules", exc)
            return None
        if live is None:
            raise ConfigError("there are no live transfer rules: give a rules file")
        return [(f"live version {live[0]}", live[2])]
    parsed = [(file, _parse(file, args)) for file in args.files]
    if any(rules is None for _, rules in parsed):
        return None
    return [(file, rules) for file, rules in parsed if rules is not None]


def _situation(
    args: argparse.Namespace, languages: tuple[str, ...], default_language: str, threshold: float
) -> Situation:
    now = _when(args.at)
    queues = current_queues(ops_db_path())
    closed = set(args.closed)
    unknown = closed - {queue.name for queue in queues}
    if unknown:
        raise ConfigError(f"--closed: unknown queue {sorted(unknown)[0]!r} (queues: "
                          f"{', '.join(sorted(q.name for q in queues))})")  # fmt: skip
    return Situation(
        now=now,
        supported_languages=languages,
        default_language=default_language,
        open_queues=frozenset(q.name for q in queues if q.hours.is_open(now) and q.name not in closed),
        queue_lengths={name: int(value) for name, value in _pairs(args.queue_length, "--queue-length").items()},
        expected_wait_s=_pairs(args.wait, "--wait"),
        calls_today=args.calls_today,
        language_threshold=threshold,
    )


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--at {text!r} is not an ISO 8601 time (like 2026-03-04T10:30)") from exc


def _pairs(items: list[str], option: str) -> dict[str, float]:
    pairs: dict[str, float] = {}
    for item in items:
        name, equals, value = item.partition("=")
        try:
            pairs[name] = float(value)
        except ValueError:
            equals = ""
        if not equals or not name:
            raise ConfigError(f"{option} {item!r}: expected QUEUE=NUMBER, like general-en=3")
    return pairs
