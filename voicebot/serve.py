"""`voicebot serve`: the hotline. Rasa + action server, SIP worker processes and, with several workers,
Kamailio in front of them. Everything is health-checked and restarted if it dies; SIGTERM drains calls.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from voicebot.config import REPO_ROOT, Settings
from voicebot.metrics import prepare_multiprocess_dir, process_exited

log = logging.getLogger("voicebot.serve")

HEALTH_PERIOD_S = 2.0
RTP_PORTS_PER_WORKER = 1000


@dataclass
class WorkerProcess:
    name: str
    host: str
    port: int
    rtp_port: int
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)
    _log_start: int = 0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "telephony.worker_main", "--host", self.host, "--port", str(self.port),
                "--rtp-port", str(self.rtp_port), "--name", self.name, *self.args]  # fmt: skip

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is not None:
            self._log.close()
        if self.process is not None:  # a restart: the dead process's live gauges stop counting
            process_exited(self.process.pid)
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()  # READY lines of earlier runs in this log do not count
        self.process = subprocess.Popen(self.command(), cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b"READY " in self.log_path.read_bytes()[self._log_start :]:
                return
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"SIP worker {self.name} exited during start-up; see {self.log_path}")
            time.sleep(0.2)
        raise TimeoutError(f"SIP worker {self.name} not ready after {timeout_s:.0f} s; see {self.log_path}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("SIP worker %s did not drain in %.0f s: killed", self.name, grace_s)
                self.process.kill()
                self.process.wait()
        process_exited(self.process.pid)
        if self._log is not None:
            self._log.close()
        return self.process.returncode


class Hotline:
    """Supervises the dialogue servers, the SIP workers and the front door."""

    def __init__(self, settings: Settings, worker_args: list[str], run_dir: Path, progress: Callable[[str], None]):
        self.settings = settings
        self.progress = progress
        self.run_dir = run_dir
        self.workers = [self._worker(i, worker_args) for i in range(max(1, settings.sip.workers))]
        self.rasa: Any = None
        self.front_door: Any = None
        self.console: Any = None
        self.retention: Any = None  # the retention policy, applied hourly

    def _worker(self, index: int, args: list[str]) -> WorkerProcess:
        sip = self.settings.sip
        behind_front_door = sip.workers > 1
        host = "127.0.0.1" if behind_front_door else sip.host
        port = sip.worker_base_port + index if behind_front_door else sip.port
        rtp = sip.rtp_port + index * RTP_PORTS_PER_WORKER
        if behind_front_door:
            # Workers share the cores: more Whisper threads than cores made every transcription slower
            # (bench/sip.py, 12 calls on 3 workers: turn p95 14.5 s with 2 threads each, 6.6 s with 1).
            threads = max(1, min(self.settings.speech.stt_threads, (os.cpu_count() or 1) // sip.workers))
            args = [*args, "--behind-front-door", "--stt-threads", str(threads)]
        return WorkerProcess(f"w{index}", host, port, rtp, args, self.run_dir / f"worker-w{index}.log")

    def start(self) -> None:
        from voicebot.compose import ensure_dialogue

        self.rasa = ensure_dialogue(self.settings, self.progress)
        self._prepare_agent_queue()
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready()
            self.progress(f"SIP worker {worker.name} ready on {worker.host}:{worker.port} (log: {worker.log_path})")
        if len(self.workers) > 1:
            self._start_front_door()
        from voicebot.retention_schedule import start_retention_schedule

        self.retention = start_retention_schedule(self.settings)
        sip = self.settings.sip
        self.progress(f"call sip:voicebot@{sip.host}:{sip.port} (UDP/TCP) — Ctrl-C or SIGTERM drains calls and stops")

    def _prepare_agent_queue(self) -> None:
        """Agents and queues seeded (live states kept), then the console, before any call can be queued."""
        from dialogue.ops_db import ops_db_path
        from voicebot.compose import call_routing
        from voicebot.console import ConsoleThread
        from voicebot.console.users import UserStore
        from voicebot.settings_audit import Audit, record_settings_change

        call_routing(self.settings)
        if record_settings_change(Audit(ops_db_path()), self.settings):
            self.progress("the settings differ from the last run's: the change is in the audit log")
        if not self.settings.console.enabled:
            return
        self.console = ConsoleThread(self.settings.console, ops_db_path(), self.settings)
        self.console.start()
        self.progress(f"console at {self.console.url} (supervisors, agents' desk)")
        if not UserStore(ops_db_path()).all():
            self.progress("no console user yet: add one with `voicebot console user add NAME --role admin`")

    def _start_front_door(self) -> None:
        from telephony.kamailio import start_front_door

        self.front_door = start_front_door(self.settings.sip, [(w.host, w.port) for w in self.workers], self.run_dir)
        self.progress(f"Kamailio dispatches {self.settings.sip.host}:{self.settings.sip.port} over "
                      f"{len(self.workers)} workers")  # fmt: skip

    def check(self) -> None:
        """One health round: restart whatever died."""
        for worker in self.workers:
            if not worker.alive:
                code = worker.process.returncode if worker.process else None
                worker.restarts += 1
                log.error("SIP worker %s exited (%s): restarting it (restart %d)", worker.name, code, worker.restarts)
                worker.start()
        if self.rasa is not None and not self.rasa.is_up():
            log.error("Rasa stopped answering: restarting it")
            self.rasa.stop()
            self.rasa.ensure_running()
        if self.front_door is not None and not self.front_door.alive:
            log.error("Kamailio exited: restarting it")
            self._start_front_door()

    def stop(self) -> int:
        """Drain the workers (they answer new INVITEs 503, so Kamailio fails over and finally answers
        "all busy"), then the front door (in-dialog BYEs of draining calls pass through it), then Rasa."""
        failures = 0
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            code = worker.stop()
            if code not in (0, None):
                log.error("SIP worker %s exited with %s", worker.name, code)
                failures += 1
        if self.front_door is not None:
            self.front_door.stop()
        if self.console is not None:
            self.console.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.rasa is not None:
            self.progress("stopping the Rasa server started by `voicebot serve`")
            self.rasa.stop()
        return 1 if failures else 0


def serve(settings: Settings, worker_args: list[str], progress: Callable[[str], None]) -> int:
    from dialogue.state import state_dir

    run_dir = settings.cache_dir / "run"
    # The workers and the console (its /metrics) share the metrics through this folder, set in the environment
    # that the workers inherit; before anything in this process loads prometheus_client.
    prepare_multiprocess_dir(state_dir() / "metrics")
    hotline = Hotline(settings, worker_args, run_dir, progress)
    stop = {"requested": False}

    def request_stop(signum: int, _frame: object) -> None:
        stop["requested"] = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        hotline.start()
        while not stop["requested"]:
            time.sleep(HEALTH_PERIOD_S)
            if not stop["requested"]:
                hotline.check()
    finally:
        progress("draining calls and stopping")
        code = hotline.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
