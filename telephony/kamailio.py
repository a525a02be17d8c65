"""Kamailio as the SIP front door in front of several voicebot workers (`voicebot serve --workers N`).

KamailioProcess writes the generated config (telephony/kamailio_cfg.py) into a run directory, checks it with
`kamailio -c`, runs Kamailio in the foreground logging to `run_dir/kamailio.log`, and waits until it answers
SIP on the front address. No database, no control socket: nothing outside the run directory is written.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from telephony.kamailio_cfg import FrontDoorConfig, SipAddress, front_door_config, render_config
from voicebot.ports import ConfigError
from voicebot.sip_settings import SipSettings

__all__ = [
    "FrontDoorConfig",
    "KamailioProcess",
    "SipAddress",
    "answers_sip",
    "check_config",
    "find_kamailio",
    "front_door_config",
    "render_config",
    "start_front_door",
]

KAMAILIO_PATHS = ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio")


def find_kamailio(binary: Path | None = None) -> Path:
    if binary is not None:
        if os.access(binary, os.X_OK):
            return binary
        raise ConfigError(f"kamailio binary {binary} not found or not executable: fix the path")
    for candidate in (shutil.which("kamailio"), *KAMAILIO_PATHS):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ConfigError("kamailio not found (needed for sip.workers > 1): apt-get install kamailio")


def check_config(binary: Path, cfg_path: Path) -> None:
    """`kamailio -c`: ConfigError with Kamailio's own error lines when the config is invalid."""
    result = subprocess.run(
        [str(binary), "-c", "-f", str(cfg_path), "-Y", str(cfg_path.parent)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"kamailio rejected {cfg_path}: {_error_lines(result.stderr)}")


def _error_lines(log: str) -> str:
    """Kamailio's last error lines, joined on one line."""
    errors = [line.strip() for line in log.splitlines() if "ERROR" in line or "CRITICAL" in line]
    return " | ".join(errors[-3:]) or log.strip()[-300:]


def answers_sip(address: SipAddress, timeout_s: float = 0.3) -> bool:
    """Whether something answers an OPTIONS at `address` over UDP (any SIP response counts, 403 too)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address.host).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect((address.host, address.port))
        local_host, local_port = sock.getsockname()[:2]
        local = SipAddress(local_host, local_port).hostport
        tag = uuid.uuid4().hex
        options = (
            f"OPTIONS {address.uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag={tag[:8]}\r\nTo: <{address.uri}>\r\n"
            f"Call-ID: {tag}@{local_host}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        try:
            sock.send(options.encode())
            return sock.recv(65535).startswith(b"SIP/2.0 ")
        except OSError:  # timeout, or ICMP port unreachable while nothing listens
            return False


class KamailioProcess:
    """One Kamailio in the foreground, its files (cfg, dispatcher list, log, pid) in `run_dir`."""

    def __init__(self, config: FrontDoorConfig, run_dir: Path, binary: Path | None = None, shm_mb: int = 64) -> None:
        self.config = config
        self.binary = find_kamailio(binary)
        self.run_dir = run_dir
        self.cfg_path = run_dir / "kamailio.cfg"
        self.log_path = run_dir / "kamailio.log"
        self.shm_mb = shm_mb
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_timeout_s: float = 10.0) -> None:
        """Write and check the config, start Kamailio, return once it answers SIP on the front address."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        list_path = self.run_dir / "dispatcher.list"
        cfg_text, list_text = render_config(self.config, list_path)
        self.cfg_path.write_text(cfg_text, encoding="utf-8")
        list_path.write_text(list_text, encoding="utf-8")
        check_config(self.binary, self.cfg_path)
        command = [
            str(self.binary),
            "-f",
            str(self.cfg_path),
            "-DD",
            "-E",
            "-Y",
            str(self.run_dir),
            "-P",
            str(self.run_dir / "kamailio.pid"),
            "-m",
            str(self.shm_mb),
            "-w",
            str(self.run_dir),
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(ready_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                log = self.log_path.read_text(encoding="utf-8", errors="replace")
                front = self.config.front.hostport
                raise ConfigError(
                    f"kamailio exited while starting on {front}: {_error_lines(log)} (log: {self.log_path})"
                )
            if answers_sip(self.config.front):
                return
            time.sleep(0.1)
        self.stop()
        raise ConfigError(
            f"kamailio did not answer on {self.config.front.hostport} in {timeout_s:.0f} s; log: {self.log_path}"
        )

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM, wait, then SIGKILL its process group; the exit code (None if it was not started)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        return process.wait()

    def __enter__(self) -> KamailioProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_front_door(sip: SipSettings, workers: list[tuple[str, int]], run_dir: Path) -> KamailioProcess:
    """Kamailio on sip.host:sip.port dispatching over `workers`, files in `run_dir`/kamailio; started and ready."""
    kamailio = KamailioProcess(front_door_config(sip, workers), run_dir / "kamailio")
    kamailio.start()
    return kamailio
