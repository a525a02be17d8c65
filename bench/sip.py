"""SIP bench: real calls over loopback into `voicebot serve`, at 1, 4, 8 and 12 concurrent calls.

    .venv/bin/python bench/sip.py [--levels 1,4,8,12] [--turns 2] [--ramp-s 0.5] [--rasa-url URL] [--json out.json]

For each level the bench starts `voicebot serve --workers N --port P --rasa-url URL --events FILE --config C` as a
subprocess, with N = ceil(calls / 4) SIP workers (pjsua2 takes 4 calls per process) behind Kamailio when N > 1,
waits for its "call sip:" line, places the calls and stops it with SIGTERM (it must drain and exit 0). The
callers are telephony/uac.py's asyncio SIP/RTP generator (no 4-call limit), started `--ramp-s` apart. Each
caller waits for the greeting to end, then `--turns` times plays a recorded question ("What are your opening
hours?", data/samples/caller-opening-hours.wav 5.3-7.6 s, sent as 8 kHz G.711 µ-law) and waits for the answer
(over once the bot is quiet for `--quiet-s`; a longer stall mid-answer makes the next question a barge-in).

Measured by the caller (kernel receive timestamps): INVITE -> first non-silent greeting audio; end of the
caller's speech (its last voiced packet) -> first non-silent bot audio; the inter-arrival gaps of the bot's
RTP. From /proc: CPU of the workers and Kamailio over the calls (% of one core) and the workers' peak RSS.
From the workers' events file: the session's TurnTimings (endpointing, ASR, dialogue, TTS first audio).

Rasa: `--rasa-url http://127.0.0.1:5005` uses a running server (e.g. `.venv/bin/voicebot dialogue serve`; set
VOICEBOT_RASA_TOKEN if its token is not the default). Without it the bench reuses the server at the configured
URL (dialogue.rasa_url, 5005) if one answers, else starts one itself (trains the model if stale; 60-80 s) and
stops it at the end. Ports: SIP 5300 (front) / 5301.. (workers) / 5310 (callers); RTP 44000.. (workers, 1000
each) and 47000-47999 (callers). Files (config, events, serve logs, worker logs) go to .cache/bench-sip/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip_call import BOT_DONE_QUIET_S, Question, bench_call, load_question
from sip_procs import ServeError, ServeProcess, UsageSampler
from sip_report import LevelResult, dump_json, print_profile, print_table, targets

from telephony.uac import SipCaller
from voicebot.cli import progress
from voicebot.compose import ensure_dialogue, rasa_service
from voicebot.config import REPO_ROOT, load_settings
from voicebot.simulate import DEFAULT_CALLER

CALLS_PER_WORKER = 4
BENCH_DIR = REPO_ROOT / ".cache" / "bench-sip"


# --- one level ---------------------------------------------------------------------------------------------


def write_config(port: int) -> Path:
    config = {
        "cache_dir": str(BENCH_DIR),  # run/ (worker and Kamailio files) apart from other `voicebot serve`s
        "sip": {"worker_base_port": port + 1, "rtp_port": 44000, "invite_rate_per_s": 20.0},
    }
    path = BENCH_DIR / "voicebot.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def run_level(args: argparse.Namespace, calls: int, question: Question, rasa_url: str) -> LevelResult:
    workers = math.ceil(calls / CALLS_PER_WORKER)
    events_path = BENCH_DIR / f"events-{calls}.jsonl"
    events_path.unlink(missing_ok=True)
    for stale in (BENCH_DIR / "run").glob("worker-*.log"):
        stale.unlink()  # serve appends to them and takes any "READY " line in them for a ready worker
    serve_args = ["--config", str(write_config(args.port)), "--workers", str(workers), "--port", str(args.port),
                  "--rasa-url", rasa_url, "--events", str(events_path)]  # fmt: skip
    if args.model:
        serve_args += ["--model", args.model]
    serve = ServeProcess(serve_args, BENCH_DIR / f"serve-{calls}.log")
    progress(f"{calls} calls: starting voicebot serve with {workers} worker(s)")
    await serve.start(args.ready_timeout_s)
    try:
        sampler = UsageSampler(serve.pid)
        sampler.start()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        target = f"sip:voicebot@127.0.0.1:{args.port}"
        async with SipCaller(sip_port=args.port + 10, rtp_ports=(47000, 47999)) as caller:
            measures = await asyncio.gather(
                *(bench_call(caller, target, question, args.turns, i * args.ramp_s, args.quiet_s) for i in range(calls))
            )
        usage = await sampler.stop()
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        used_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        generator_pct = used_s / (time.monotonic() - started) * 100
        load = os.getloadavg()[0]
    finally:
        code = await serve.stop()
    if code != 0:
        progress(f"voicebot serve exited with {code} after SIGTERM (expected 0): {serve.log_tail()}")
    for index, m in enumerate(measures, start=1):
        for error in m.errors:
            progress(f"{calls} calls: call {index}: {error}")
    return LevelResult(calls, workers, measures, usage, read_events(events_path), generator_pct, load, code)


# --- main --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,4,8,12", help="concurrent calls per level (default 1,4,8,12)")
    parser.add_argument("--turns", type=int, default=2, help="questions per call (default 2)")
    parser.add_argument("--ramp-s", type=float, default=0.5, help="delay between call starts (default 0.5)")
    parser.add_argument(
        "--quiet-s",
        type=float,
        default=BOT_DONE_QUIET_S,
        help=f"bot silence that ends its answer for the caller (default {BOT_DONE_QUIET_S:g})",
    )
    parser.add_argument("--question", type=Path, default=DEFAULT_CALLER, help="WAV the callers play at each turn")
    parser.add_argument("--span", default="5.3-7.6", help="START-END seconds of --question to play ('' = all)")
    parser.add_argument("--rasa-url", help="a running Rasa server (default: reuse or start one, see above)")
    parser.add_argument("--model", help="Whisper model for the workers (default from settings: tiny.en)")
    parser.add_argument("--port", type=int, default=5300, help="SIP port callers dial (default 5300)")
    parser.add_argument("--ready-timeout-s", type=float, default=240.0, help="wait this long for serve to be ready")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args()


def parse_span(text: str) -> tuple[float, float] | None:
    if not text:
        return None
    start, _, end = text.partition("-")
    return float(start), float(end)


async def run(args: argparse.Namespace, levels: list[int], question: Question, rasa_url: str) -> list[LevelResult]:
    return [await run_level(args, calls, question, rasa_url) for calls in levels]


def main() -> int:
    args = parse_args()
    try:
        levels = [int(n) for n in args.levels.split(",")]
        question = load_question(args.question, parse_span(args.span))
    except ValueError as exc:
        print(f"bench/sip.py: error: {exc}", file=sys.stderr)
        return 2
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    if args.rasa_url:
        settings = settings.replace("dialogue", rasa_url=args.rasa_url)
        if not rasa_service(settings).is_up():
            print(f"bench/sip.py: error: Rasa is not reachable at {args.rasa_url}: start it with "
                  "`.venv/bin/voicebot dialogue serve` or leave out --rasa-url", file=sys.stderr)  # fmt: skip
            return 2
    started = None if args.rasa_url else ensure_dialogue(settings, progress)
    load_at_start = os.getloadavg()[0]
    try:
        results = asyncio.run(run(args, levels, question, settings.dialogue.rasa_url))
    except ServeError as exc:
        print(f"bench/sip.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if started is not None:
            progress("stopping the Rasa server started by the bench")
            started.stop()
    print(
        f"\nSIP bench: model={args.model or settings.speech.stt_model}, {args.turns} turn(s) per call, calls "
        f"{args.ramp_s:g} s apart, question {question.speech_s:.2f} s of speech + "
        f"{question.trailing_silence_s:.2f} s silence, {CALLS_PER_WORKER} calls per worker, {os.cpu_count()} CPUs, "
        f"load average at start {load_at_start:.1f}\n"
    )
    judged = targets(results)
    print_table(results, judged)
    print_profile(results, judged)
    if args.json:
        dump_json(args.json, results)
    return 0 if all(r.serve_exit == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
