"""The `voicebot` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from voicebot.audio import AudioFileError
from voicebot.cli_recordings import add_recordings_parser
from voicebot.cli_records import add_audit_parser
from voicebot.cli_report import add_report_parser
from voicebot.cli_retention import add_retention_parser
from voicebot.cli_rules import add_rules_parser
from voicebot.config import REPO_ROOT, Settings, load_settings
from voicebot.console.cli import add_console_parser
from voicebot.logs import LOG_FORMATS, configure_logging
from voicebot.ports import ConfigError, DialogueError

if TYPE_CHECKING:
    from voicebot.compose import Runtime

log = logging.getLogger("voicebot")


class UserError(Exception):
    """Printed as one line, no traceback, exit code 2."""


def progress(message: str) -> None:
    print(f"» {message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    speech_changes = {k: v for k, v in (("stt_model", args.model), ("vad", args.vad)) if v is not None}
    if speech_changes:
        settings = settings.replace("speech", **speech_changes)
    if args.rasa_url:
        settings = settings.replace("dialogue", rasa_url=args.rasa_url)
    return settings


# --- simulate --------------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from voicebot.audio import read_wav
    from voicebot.simulate import DEFAULT_CALLER, ChannelSpec, simulate_call, write_outputs

    source = Path(args.caller) if args.caller else DEFAULT_CALLER
    caller_audio = read_wav(source)  # fail fast on a bad file, before any model loads
    try:
        channel = ChannelSpec(args.rate, args.codec)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    settings = _settings(args)
    out_dir = Path(args.out)
    runtime = _runtime(settings)  # an unknown model or voice fails here, before Rasa starts

    async def run() -> int:
        try:
            await runtime.warm_up(channel.rate)
            result = await simulate_call(
                runtime, caller_audio, channel, args.lang, args.speed, out_dir / "events.jsonl"
            )
        finally:
            await runtime.aclose()
        wav, doc = write_outputs(result, out_dir, str(source), channel)
        _print_turns(result.turns())
        print(f"outcome: {result.outcome}\nstereo WAV (caller left, bot right): {wav}\ntranscript: {doc}")
        return 0

    return _with_dialogue(settings, args.rasa_url, lambda: asyncio.run(run()))


def _print_turns(turns: list[dict[str, object]]) -> None:
    for turn in turns:
        for line in turn.get("bot", []):  # type: ignore[attr-defined]
            print(f"  bot    : {line['text']}")
        if turn.get("caller") is not None:
            understood = turn.get("intent") or f"rejected: {turn.get('rejected_because')}"
            print(f"  caller : {turn['caller']}  [{understood}]")
        timings = turn.get("timings_ms")
        if isinstance(timings, dict):
            print("           " + "  ".join(f"{k.removesuffix('_ms')}={v:.0f}ms" for k, v in timings.items()))


def _runtime(settings: Settings) -> Runtime:
    from voicebot.compose import build_runtime

    return build_runtime(settings)


def _with_dialogue(settings: Settings, external_url: str | None, job: Callable[[], int]) -> int:
    """Runs `job` with a Rasa server: a running one, or one started (and stopped) for this command."""
    from voicebot.compose import ensure_dialogue, rasa_service

    if external_url and not rasa_service(settings).is_up():
        raise UserError(
            f"Rasa is not reachable at {external_url}: start it with `voicebot dialogue serve`, "
            "or leave out --rasa-url and voicebot starts one"
        )
    started = None if external_url else ensure_dialogue(settings, progress)
    try:
        return job()
    finally:
        if started is not None:
            progress("stopping the Rasa server started for this command")
            started.stop()


# --- test --------------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    from voicebot.convtest import load_all, prepare_audio, run_dialogue
    from voicebot.convtest_report import junit, table
    from voicebot.convtest_spec import load_dialogue

    files = load_all([Path(p) for p in args.files])
    if not files:
        raise UserError("no dialogue files found (give YAML files or folders that contain them)")
    specs = [load_dialogue(path) for path in files]
    settings = _settings(args)
    runtime = _runtime(settings)
    clips = [prepare_audio(runtime, spec) for spec in specs]  # bad audio or voices fail before Rasa starts

    async def run() -> int:
        try:
            await runtime.warm_up(16000)
            outcomes = [await run_dialogue(runtime, spec, args.speed, c) for spec, c in zip(specs, clips, strict=True)]
        finally:
            await runtime.aclose()
        print(table(outcomes))
        if args.junit:
            junit(outcomes, Path(args.junit))
            print(f"JUnit XML: {args.junit}")
        return 0 if all(o.passed for o in outcomes) else 1

    return _with_dialogue(settings, args.rasa_url, lambda: asyncio.run(run()))


# --- set-up helpers ------------------------------------------------------------------------------------


def cmd_models_install(args: argparse.Namespace) -> int:
    from voicebot.models import install_models

    install_models(load_settings(args.config).models_dir, progress)
    return 0


def cmd_recordings_fetch(args: argparse.Namespace) -> int:
    from voicebot.recordings import default_recordings_dir, fetch_recordings

    recordings = fetch_recordings(default_recordings_dir(), progress)
    progress(f"{len(recordings)} real-speech recordings ready in {default_recordings_dir()}")
    return 0


def cmd_kb(args: argparse.Namespace) -> int:
    from dialogue.kb import KbError, KnowledgeBase

    kb = KnowledgeBase()
    kb.ensure_seeded(REPO_ROOT / "data" / "kb")
    try:
        if args.action == "import":
            for file in args.args:
                report = kb.import_file(Path(file))
                _audit_kb_import(report.file, report.added, report.replaced)
                print(f"{report.file}: {report.added} added, {report.replaced} replaced (live, no retraining)")
            return 0
        question = " ".join(args.args)
        matches = kb.search(question, args.lang)
    except KbError as exc:
        raise UserError(f"{exc} (the live knowledge base was not changed)") from exc
    if not matches:
        print("no verified answer: the bot says it does not know and offers a person")
    for match in matches:
        entry = match.entry
        print(f"{match.score:6.2f}  [{entry.id}] {entry.answer}  ({entry.source}, {entry.updated})")
    return 0


def _audit_kb_import(file: object, added: int, replaced: int) -> None:
    from dialogue.ops_db import ops_db_path
    from voicebot.audit import Audit

    Audit(ops_db_path()).record("cli", "kb_import", str(file), None, {"added": added, "replaced": replaced})


def cmd_dialogue(args: argparse.Namespace) -> int:
    from voicebot.compose import rasa_service

    service = rasa_service(load_settings(args.config))
    if args.action == "train":
        service.train(progress, force=args.force)
        return 0
    if args.action == "validate":
        return service.validate(progress)
    service.ensure_running()
    progress(f"Rasa is serving at {service.url} (Ctrl-C to stop)")
    try:
        while service.is_up():
            asyncio.run(asyncio.sleep(5))
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


# --- serve ---------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from voicebot.serve import serve

    settings = load_settings(args.config)
    if args.model:
        settings = settings.replace("speech", stt_model=args.model)
    if args.rasa_url:
        settings = settings.replace("dialogue", rasa_url=args.rasa_url)
    sip_changes = {k: v for k, v in (("workers", args.workers), ("host", args.host), ("port", args.port)) if v}
    if sip_changes:
        settings = settings.replace("sip", **sip_changes)
    worker_args = ["--rasa-url", settings.dialogue.rasa_url, "--model", settings.speech.stt_model]
    if args.config:
        worker_args += ["--config", str(Path(args.config).resolve())]
    if args.verbose:
        worker_args.append("-v")
    if args.events:
        worker_args += ["--events", str(Path(args.events).resolve())]
    log_format = args.log_format or settings.logging.format
    configure_logging(log_format)
    worker_args += ["--log-format", log_format]
    return serve(settings, worker_args, progress)


# --- parser --------------------------------------------------------------------------------------------


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (default: embedded defaults, or $VOICEBOT_CONFIG)")
    parser.add_argument("--model", help="Whisper model: tiny.en, base, a faster-whisper name or a model directory")
    parser.add_argument("--vad", choices=["webrtc", "silero"], help="voice activity detector for turn-taking")
    parser.add_argument("--rasa-url", help="use this running Rasa server instead of starting one")
    parser.add_argument("--speed", type=float, default=0.0, help="1 = real time, 0 = as fast as possible (default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description="Self-hosted voice assistant for public hotlines")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every call event")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="play a recorded caller through the whole pipeline")
    sim.add_argument("caller", nargs="?", help="caller recording (default: a bundled sample call)")
    sim.add_argument("--rate", type=int, default=16000, choices=[8000, 16000], help="channel sample rate")
    sim.add_argument("--codec", choices=["pcmu", "pcma"], help="G.711 line codec (needs --rate 8000)")
    sim.add_argument("--lang", help="force the call language (default: detect, or the configured default)")
    sim.add_argument("--out", default="out/simulate", help="folder for the stereo WAV and JSON transcript")
    _engine_options(sim)
    sim.set_defaults(func=cmd_simulate)

    test = sub.add_parser("test", help="run YAML conversation tests")
    test.add_argument("files", nargs="+", help="dialogue YAML files or folders")
    test.add_argument("--junit", help="write JUnit XML here")
    _engine_options(test)
    test.set_defaults(func=cmd_test)

    models = sub.add_parser("models", help="offline models")
    models.add_argument("action", choices=["install"])
    models.add_argument("--config")
    models.set_defaults(func=cmd_models_install)

    add_recordings_parser(sub, cmd_recordings_fetch)

    kb = sub.add_parser("kb", help="the verified knowledge base the bot answers FAQs from")
    kb.add_argument("action", choices=["import", "search"])
    kb.add_argument("args", nargs="+", help="import: YAML files; search: a question")
    kb.add_argument("--lang", default="en", help="search language")
    kb.set_defaults(func=cmd_kb)

    dialogue = sub.add_parser("dialogue", help="the Rasa dialogue manager")
    dialogue.add_argument("action", choices=["train", "serve", "validate"])
    dialogue.add_argument("--force", action="store_true", help="train even when data and config are unchanged")
    dialogue.add_argument("--config")
    dialogue.set_defaults(func=cmd_dialogue)

    srv = sub.add_parser("serve", help="answer phone calls: Rasa, SIP workers and (with --workers > 1) Kamailio")
    srv.add_argument("--config", help="YAML settings file (default: embedded defaults, or $VOICEBOT_CONFIG)")
    srv.add_argument("--workers", type=int, help="SIP worker processes, 4 calls each (default: sip.workers)")
    srv.add_argument("--host", help="SIP address callers reach (default: sip.host)")
    srv.add_argument("--port", type=int, help="SIP port callers reach (default: sip.port)")
    srv.add_argument("--model", help="Whisper model")
    srv.add_argument("--rasa-url", help="use this running Rasa server instead of starting one")
    srv.add_argument("--events", help="append every call event to this JSONL file")
    srv.add_argument("--log-format", choices=LOG_FORMATS, help="log lines as text or JSON (default: logging.format)")
    srv.set_defaults(func=cmd_serve)

    add_rules_parser(sub)
    add_console_parser(sub)
    add_audit_parser(sub)
    add_report_parser(sub)
    add_retention_parser(sub)
    return parser


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds `finally` blocks: servers started by this command are stopped


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configure_logging("text")
    logging.getLogger("voicebot.call").setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except (UserError, ConfigError, AudioFileError, DialogueError) as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
