"""`voicebot serve` as a bench subprocess, and the CPU/RSS of its SIP workers and Kamailio read from /proc."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from voicebot.config import REPO_ROOT

READY_MARK = "call sip:"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLOCK_THREAD = "clock"  # pjmedia's media clock thread (null sound device): it runs the bridge and sends RTP


class ServeError(RuntimeError):
    """`voicebot serve` did not come up or exited on its own."""


class ServeProcess:
    """`voicebot serve ...` with its stderr copied to `log_path`; ready once it prints "call sip:"."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout_s: float) -> None:
        command = [sys.executable, "-m", "voicebot.cli", "serve", *self.args]
        self.process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._pump = asyncio.get_running_loop().create_task(self._copy_stderr(self.log_path.open("w")))
        exited = asyncio.ensure_future(self.process.wait())
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait([exited, ready], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self._ready.is_set():
            exited.cancel()
            await self.stop()
            why = "exited" if self.process.returncode is not None else f"not ready after {timeout_s:.0f} s"
            raise ServeError(f"voicebot serve {why}: {self.log_tail()}")
        exited.cancel()

    async def _copy_stderr(self, log: IO[str]) -> None:
        """Keeps reading (a full pipe would block serve) and watches for the ready line."""
        assert self.process is not None and self.process.stderr is not None
        with log:
            async for raw in self.process.stderr:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                if READY_MARK in line:
                    self._ready.set()

    async def stop(self, grace_s: float = 60.0) -> int | None:
        """SIGTERM (serve drains the calls), then SIGKILL after `grace_s`; the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)
        return self.process.returncode

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) + f" (log: {self.log_path})"


# --- /proc --------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def clock_thread_ms(pid: int) -> tuple[float, float]:
    """(ran, waited for a CPU) in ms of the process's pjmedia clock thread (/proc/<pid>/task/*/schedstat):
    a clock thread that waits on the run queue sends its RTP late."""
    ran = waited = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if (task / "comm").read_text().strip() == CLOCK_THREAD:
                run_ns, wait_ns, _ = (task / "schedstat").read_text().split()
                ran, waited = ran + int(run_ns) / 1e6, waited + int(wait_ns) / 1e6
        except (OSError, ValueError):
            continue
    return ran, waited


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((s for s in status.splitlines() if s.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


@dataclass
class Usage:
    """CPU over the measured window (% of one core) and peak RSS summed over the SIP workers."""

    workers_cpu_pct: float = 0.0
    kamailio_cpu_pct: float = 0.0
    workers_rss_mib: float = 0.0
    window_s: float = 0.0
    clock_ran_ms: float = 0.0  # pjmedia clock threads of all workers, over the window
    clock_waited_ms: float = 0.0  # ... time runnable but waiting for a CPU
    worker_pids: list[int] = field(default_factory=list)
    kamailio_pids: list[int] = field(default_factory=list)

    @property
    def cpu_pct(self) -> float:
        return self.workers_cpu_pct + self.kamailio_cpu_pct


class UsageSampler:
    """Finds serve's workers and Kamailio processes, then samples their RSS until stopped."""

    def __init__(self, serve_pid: int, period_s: float = 0.5) -> None:
        workers, kamailio = [], []
        for pid in descendants(serve_pid):
            argv = _cmdline(pid)
            if "telephony.worker_main" in argv:
                workers.append(pid)
            elif argv and Path(argv[0]).name == "kamailio":
                kamailio.append(pid)
        self.usage = Usage(worker_pids=workers, kamailio_pids=kamailio)
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._cpu_at_start: dict[int, float] = {}
        self._clock_at_start: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._cpu_at_start = {pid: cpu_seconds(pid) for pid in self.usage.worker_pids + self.usage.kamailio_pids}
        self._clock_at_start = self._clock_totals()
        self._task = asyncio.get_running_loop().create_task(self._sample_rss())

    async def _sample_rss(self) -> None:
        while True:
            total = sum(rss_mib(pid) for pid in self.usage.worker_pids)
            self.usage.workers_rss_mib = max(self.usage.workers_rss_mib, total)
            await asyncio.sleep(self.period_s)

    def _clock_totals(self) -> tuple[float, float]:
        totals = [clock_thread_ms(pid) for pid in self.usage.worker_pids]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)

    async def stop(self) -> Usage:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        window_s = max(time.monotonic() - self._started_at, 1e-9)
        ran, waited = self._clock_totals()
        self.usage.window_s = window_s
        self.usage.clock_ran_ms = ran - self._clock_at_start[0]
        self.usage.clock_waited_ms = waited - self._clock_at_start[1]

        def pct(pids: list[int]) -> float:
            return sum(cpu_seconds(pid) - self._cpu_at_start[pid] for pid in pids) / window_s * 100

        self.usage.workers_cpu_pct = pct(self.usage.worker_pids)
        self.usage.kamailio_cpu_pct = pct(self.usage.kamailio_pids)
        return self.usage
