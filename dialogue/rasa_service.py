"""Train, validate and run the Rasa server, which lives in its own Python 3.10 venv.

The product (Python 3.11) cannot import Rasa: it drives the `rasa` command line of that venv and
talks to the server over HTTP (see dialogue/rasa_client.py).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import httpx

from voicebot.ports import ConfigError, EngineError

MODEL_NAME = "voicebot"
QUIET_ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}
LOG_TAIL_LINES = 25
POLL_INTERVAL_S = 0.5

Progress = Callable[[str], None]


class RasaService:
    """One Rasa project + venv: fingerprinted training, validation and a server process."""

    def __init__(
        self,
        project_dir: Path,
        venv_dir: Path,
        port: int = 5005,
        host: str = "127.0.0.1",
        auth_token: str | None = None,
        log_path: Path | None = None,
        lock_file: Path | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.venv_dir = Path(venv_dir)
        self.port = port
        self.host = host
        # The HTTP API is never exposed without a token: generate one when none is configured.
        self.auth_token = auth_token or secrets.token_urlsafe(24)
        self.log_path = log_path or self.project_dir / ".rasa" / "server.log"
        self.lock_file = lock_file or self.project_dir.parent / "requirements-rasa.lock"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # --- paths -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_path(self) -> Path:
        return self.project_dir / "models" / f"{MODEL_NAME}.tar.gz"

    @property
    def fingerprint_path(self) -> Path:
        return self.project_dir / "models" / f"{MODEL_NAME}.fingerprint"

    @property
    def started_here(self) -> bool:
        """True while this object owns a running server process (it started it)."""
        return self._process is not None and self._process.poll() is None

    def _rasa_executable(self) -> Path:
        executable = self.venv_dir / "bin" / "rasa"
        if not executable.is_file():
            raise ConfigError(f"Rasa is not installed in {self.venv_dir} (no bin/rasa) — run `make setup` to create it")
        return executable

    def _env(self) -> dict[str, str]:
        return {**os.environ, **QUIET_ENV}

    # --- training --------------------------------------------------------------------------------

    def _fingerprinted_files(self) -> list[Path]:
        files = [self.project_dir / "config.yml", self.project_dir / "domain.yml"]
        files += sorted(p for p in (self.project_dir / "data").rglob("*") if p.is_file())
        if self.lock_file.is_file():
            files.append(self.lock_file)
        return files

    def fingerprint(self) -> str:
        """sha256 over everything that changes the trained model: config, domain, data, lock file."""
        digest = hashlib.sha256()
        for path in self._fingerprinted_files():
            name = path.relative_to(self.project_dir.parent).as_posix()
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"<missing>")
            digest.update(b"\0")
        return digest.hexdigest()

    def model_is_fresh(self) -> bool:
        if not (self.model_path.is_file() and self.fingerprint_path.is_file()):
            return False
        return self.fingerprint_path.read_text().strip() == self.fingerprint()

    def train(self, progress: Progress, force: bool = False) -> Path:
        """Train the model unless it is fresh; streams `rasa train` output lines through `progress`."""
        if not force and self.model_is_fresh():
            progress(f"Rasa model {self.model_path} is up to date (training data unchanged), not retraining")
            return self.model_path
        fingerprint = self.fingerprint()
        command = [
            str(self._rasa_executable()), "train",
            *self._project_args(),
            "--fixed-model-name", MODEL_NAME,
            "--out", str(self.model_path.parent),
        ]  # fmt: skip
        progress(f"Training the Rasa model in {self.project_dir} (takes a few minutes on CPU)")
        started = time.monotonic()
        exit_code, tail = self._run_streaming(command, progress)
        if exit_code != 0 or not self.model_path.is_file():
            raise EngineError(f"rasa train failed with exit code {exit_code}:\n" + "\n".join(tail))
        self.fingerprint_path.write_text(fingerprint + "\n")
        progress(f"Rasa model trained in {time.monotonic() - started:.0f} s: {self.model_path}")
        return self.model_path

    def validate(self, progress: Progress) -> int:
        """Run `rasa data validate`; returns its exit code (0 = no errors)."""
        command = [str(self._rasa_executable()), "data", "validate", *self._project_args()]
        exit_code, _ = self._run_streaming(command, progress)
        return exit_code

    def _project_args(self) -> list[str]:
        return [
            "--config", str(self.project_dir / "config.yml"),
            "--domain", str(self.project_dir / "domain.yml"),
            "--data", str(self.project_dir / "data"),
        ]  # fmt: skip

    def _run_streaming(self, command: list[str], progress: Progress) -> tuple[int, list[str]]:
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        with subprocess.Popen(
            command,
            cwd=self.project_dir,
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,  # universal newlines: tqdm's carriage returns become separate lines
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in _non_empty_lines(process.stdout):
                tail.append(line)
                progress(line)
            return process.wait(), list(tail)

    # --- server ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn `rasa run` in the background (returns at once; see wait_ready)."""
        if self.started_here:
            return
        if not self.model_path.is_file():
            raise ConfigError(f"No trained Rasa model at {self.model_path} — run `make setup` to train it")
        command = [
            str(self._rasa_executable()), "run",
            "--enable-api", "--auth-token", self.auth_token,
            "-i", self.host, "-p", str(self.port),
            "--model", str(self.model_path),
            "--credentials", str(self.project_dir / "credentials.yml"),
            "--endpoints", str(self.project_dir / "endpoints.yml"),
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(
            command, cwd=self.project_dir, env=self._env(), stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Poll /status until a model is loaded; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._process is not None and self._process.poll() is not None:
                raise EngineError(
                    f"Rasa server exited with code {self._process.returncode} before it was ready "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            if self.is_up():
                return time.monotonic() - started
            time.sleep(POLL_INTERVAL_S)
        raise EngineError(
            f"Rasa server at {self.url} was not ready after {timeout:.0f} s (log {self.log_path}):\n{self.log_tail()}"
        )

    def is_up(self) -> bool:
        """True when a server answers on url with our token and has a model loaded."""
        try:
            response = httpx.get(f"{self.url}/status", params={"token": self.auth_token}, timeout=2.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
            return False

    def ensure_running(self, timeout: float = 180.0) -> bool:
        """Reuse a healthy server on this port, else start one and wait; True if started here."""
        if self.is_up():
            return False
        if self._process is None or self._process.poll() is not None:
            self._refuse_foreign_server()
            self.start()
        self.wait_ready(timeout)
        return True

    def _refuse_foreign_server(self) -> None:
        try:
            httpx.get(f"{self.url}/version", timeout=2.0)
        except httpx.ConnectError:
            return  # nothing listens there: free to start
        except httpx.HTTPError:
            pass  # something accepted the connection but did not answer like Rasa
        raise ConfigError(
            f"Something already listens on {self.url} but does not accept our Rasa auth token "
            f"(or has no model loaded) — stop it or configure another port"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate the server started here, kill it after `grace_s`; no-op otherwise."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _non_empty_lines(stream: Iterable[str]) -> Iterable[str]:
    for line in stream:
        stripped = line.rstrip()
        if stripped:
            yield stripped
