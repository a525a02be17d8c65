"""`python -m telephony.worker_main`: one SIP worker process (started by `voicebot serve`, or by hand).

The main thread owns pjsua2. SIGTERM/SIGINT drain the calls, then the process exits 0 through
`os._exit` (no SWIG destructor may run after libDestroy).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from telephony.call_host import CallHost
from telephony.worker import SipWorker
from voicebot.compose import Runtime, build_runtime, call_records, call_routing
from voicebot.config import Settings, load_settings
from voicebot.logs import LOG_FORMATS, configure_logging
from voicebot.metrics import MetricsSink
from voicebot.ports import ConfigError, EventSink
from voicebot.sinks import FanOut, LogSink, RedactedJsonlSink

ENGINE_NICE = 5
EXIT_RESTART = 75  # the worker asks its supervisor (voicebot serve) for a fresh process


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="telephony.worker_main", description="one voicebot SIP worker")
    parser.add_argument("--config", help="YAML settings file")
    parser.add_argument("--host", help="bind address (default: sip.host)")
    parser.add_argument("--port", type=int, help="SIP port (default: sip.port)")
    parser.add_argument("--rtp-port", type=int, help="first RTP port (default: sip.rtp_port)")
    parser.add_argument("--name", default="w0", help="worker name, used in call ids and logs")
    parser.add_argument("--rasa-url", help="Rasa REST server (default: dialogue.rasa_url)")
    parser.add_argument("--model", help="Whisper model")
    parser.add_argument("--stt-threads", type=int, help="Whisper CPU threads (default: speech.stt_threads)")
    parser.add_argument("--events", help="append every call event to this JSONL file")
    parser.add_argument(
        "--behind-front-door",
        action="store_true",
        help="Kamailio in front already checked the allow-list and rate; trust its X-Voicebot-Source",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every call event")
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="log lines as text or JSON (default: logging.format)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if args.rasa_url:
        settings = settings.replace("dialogue", rasa_url=args.rasa_url)
    if args.model:
        settings = settings.replace("speech", stt_model=args.model)
    if args.stt_threads:
        settings = settings.replace("speech", stt_threads=args.stt_threads)
    if args.rtp_port:
        settings = settings.replace("sip", rtp_port=args.rtp_port)
    return settings


def lower_this_thread() -> None:
    """Speech engines yield the CPU to the media clock and the call loop (Linux nice values are per thread
    and inherited by the threads a thread starts, such as CTranslate2's and ONNX Runtime's pools)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICE)


def build_runtime_below_media(settings: Settings) -> Runtime:
    """Load the engines on a lowered thread, so the threads they start are lowered too; when a 2-core machine
    is saturated, pjmedia's clock thread must still send every 20 ms frame on time."""
    with ThreadPoolExecutor(1, "engine-loader", initializer=lower_this_thread) as loader:
        runtime = loader.submit(build_runtime, settings).result()
    runtime.asr_executor = ThreadPoolExecutor(1, "asr", initializer=lower_this_thread)
    runtime.tts_executor = ThreadPoolExecutor(1, "tts", initializer=lower_this_thread)
    return runtime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("voicebot.call").setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    acd = None
    try:
        settings = settings_from(args)
        text_format = f"%(asctime)s %(levelname)s [{args.name}] %(name)s: %(message)s"
        configure_logging(args.log_format or settings.logging.format, text_format=text_format)
        runtime = build_runtime_below_media(settings)
        if settings.sip.transfer_mode == "queue":
            acd, runtime.router = call_routing(settings)
    except ConfigError as exc:
        print(f"voicebot worker: error: {exc}", file=sys.stderr)
        return 2
    records = call_records(settings, args.name)
    sinks: list[EventSink] = [LogSink(), MetricsSink(), records]
    events_file = RedactedJsonlSink(Path(args.events), records.rows.redact) if args.events else None
    if events_file is not None:
        sinks.append(events_file)
    host = CallHost(runtime, FanOut(sinks))
    host.loop.set_default_executor(ThreadPoolExecutor(2, "engine-misc", initializer=lower_this_thread))
    bind = (args.host or settings.sip.host, args.port or settings.sip.port)
    worker = SipWorker(settings.sip, host, *bind, name=args.name, behind_front_door=args.behind_front_door, acd=acd)
    stop = {"requested": False}

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("signal %d: draining calls", signum)
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        worker.start()
        host.start(on_thread_start=lambda: worker.endpoint.register_thread("calls"))
        print(f"READY sip:voicebot@{worker.endpoint.bind_host}:{worker.endpoint.bind_port}", flush=True)
        worker.run(lambda: stop["requested"])
    except ConfigError as exc:
        print(f"voicebot worker: error: {exc}", file=sys.stderr)
        os._exit(2)
    except Exception:
        logging.getLogger(__name__).exception("worker %s crashed", args.name)
        os._exit(1)
    host.close()
    worker.shutdown()
    records.close(5.0)
    if events_file is not None:
        events_file.close()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(EXIT_RESTART if worker.restart_requested else 0)


if __name__ == "__main__":
    sys.exit(main())
