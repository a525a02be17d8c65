"""Train, validate and run the Rasa server and its custom action server (own Python 3.10 venv).

The product (Python 3.11) cannot import Rasa: it drives the command line of that venv and talks
to the server over HTTP (see dialogue/rasa_client.py). The Rasa server is started through
`python -m dialogue.rasa_patches run ...` (Rasa's CLI plus two documented patches); the action
server is `rasa run actions --actions dialogue.actions`. Both bind `host` (127.0.0.1 by default).
The Rasa server reads a generated .rasa/endpoints.yml that points to this service's action server.
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
# The package root that holds `dialogue/` (put on PYTHONPATH for the action server and the launcher).
CODE_ROOT = Path(__file__).resolve().parent.parent
ACTIONS_PACKAGE = "dialogue.actions"
ACTIONS_URL_PLACEHOLDER = "${VOICEBOT_ACTIONS_URL}"
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
        actions_port: int = 5055,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.venv_dir = Path(venv_dir).resolve()
        self.port = port
        self.actions_port = actions_port
        self.host = host
        # The HTTP API is never exposed without a token: generate one when none is configured.
        self.auth_token = auth_token or secrets.token_urlsafe(24)
        self.log_path = log_path or self.project_dir / ".rasa" / "server.log"
        self.lock_file = lock_file or self.project_dir.parent / "requirements-rasa.lock"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.actions_log_path = self.log_path.with_name("actions.log")
        self._actions: subprocess.Popen[bytes] | None = None
        self._actions_log: IO[bytes] | None = None

    # --- paths -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.host}:{self.actions_port}"

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

    def _python_executable(self) -> Path:
        self._rasa_executable()  # same "not installed" message when the venv is missing
        return self.venv_dir / "bin" / "python"

    def _env(self) -> dict[str, str]:
        python_path = os.pathsep.join(p for p in (str(CODE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {
            **os.environ,
            **QUIET_ENV,
            "PYTHONPATH": python_path,
            "SANIC_HOST": self.host,  # the action server binds this instead of 0.0.0.0
        }

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
            str(self._python_executable()), "-m", "dialogue.rasa_patches", "run",
            "--enable-api", "--auth-token", self.auth_token,
            "-i", self.host, "-p", str(self.port),
            "--model", str(self.model_path),
            "--credentials", str(self.project_dir / "credentials.yml"),
            "--endpoints", str(self.write_endpoints()),
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(
            command, cwd=self.project_dir, env=self._env(), stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def write_endpoints(self) -> Path:
        """endpoints.yml with this service's action server URL, written under .rasa/ (Rasa 3.6 does not
        expand environment variables in endpoints.yml, so the placeholder is substituted here)."""
        template = (self.project_dir / "endpoints.yml").read_text()
        generated = self.project_dir / ".rasa" / "endpoints.yml"
        generated.parent.mkdir(parents=True, exist_ok=True)
        generated.write_text(template.replace(ACTIONS_URL_PLACEHOLDER, f"{self.actions_url}/webhook"))
        return generated

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
        """Reuse a healthy server on this port, else start one and wait; True if started here.

        The action server is reused when healthy, else (re)started, in both cases."""
        if self.is_up():
            self.ensure_actions_running()
            return False
        if self._process is None or self._process.poll() is not None:
            self._refuse_foreign_server()
            self.ensure_actions_running()
            self.start()
        else:
            self.ensure_actions_running()
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
        """Terminate the servers started here (Rasa and actions), kill them after `grace_s`."""
        process, self._process = self._process, None
        _terminate(process, grace_s)
        self._close_log()
        self.stop_actions(grace_s)

    # --- action server ---------------------------------------------------------------------------

    @property
    def actions_started_here(self) -> bool:
        return self._actions is not None and self._actions.poll() is None

    def actions_are_up(self) -> bool:
        """True when the action server answers GET /health."""
        try:
            response = httpx.get(f"{self.actions_url}/health", timeout=2.0)
            return response.status_code == 200 and response.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def start_actions(self) -> None:
        """Spawn `rasa run actions` for dialogue.actions in the background (see ensure_actions_running)."""
        if self.actions_started_here:
            return
        command = [
            str(self._rasa_executable()), "run", "actions",
            "--actions", ACTIONS_PACKAGE,
            "-p", str(self.actions_port),
        ]  # fmt: skip
        self.actions_log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_actions_log()
        self._actions_log = self.actions_log_path.open("wb")
        self._actions = subprocess.Popen(
            command, cwd=CODE_ROOT, env=self._env(), stdout=self._actions_log, stderr=subprocess.STDOUT
        )

    def ensure_actions_running(self, timeout: float = 60.0) -> bool:
        """Reuse a healthy action server on actions_port, else (re)start one; True if started here."""
        if self.actions_are_up():
            return False
        if not self.actions_started_here:
            self._refuse_foreign_actions_server()
            self.start_actions()
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._actions is not None and self._actions.poll() is not None:
                raise EngineError(
                    f"Action server exited with code {self._actions.returncode} before it was ready "
                    f"(log {self.actions_log_path}):\n{self.log_tail(path=self.actions_log_path)}"
                )
            if self.actions_are_up():
                return True
            time.sleep(POLL_INTERVAL_S)
        raise EngineError(
            f"Action server at {self.actions_url} was not ready after {timeout:.0f} s "
            f"(log {self.actions_log_path}):\n{self.log_tail(path=self.actions_log_path)}"
        )

    def _refuse_foreign_actions_server(self) -> None:
        try:
            httpx.get(f"{self.actions_url}/health", timeout=2.0)
        except httpx.ConnectError:
            return
        except httpx.HTTPError:
            pass
        raise ConfigError(
            f"Something already listens on {self.actions_url} but is not a healthy action server "
            f"— stop it or configure another actions port"
        )

    def stop_actions(self, grace_s: float = 10.0) -> None:
        """Terminate the action server started here; no-op otherwise."""
        process, self._actions = self._actions, None
        _terminate(process, grace_s)
        self._close_actions_log()

    def _close_actions_log(self) -> None:
        if self._actions_log is not None:
            self._actions_log.close()
            self._actions_log = None

    # --- tests -----------------------------------------------------------------------------------

    def test_stories(self, stories: Path, out_dir: Path, progress: Progress) -> int:
        """`rasa test core` on test stories with the trained model; returns its exit code.
        Failed stories are written to out_dir/failed_test_stories.yml."""
        command = [
            str(self._rasa_executable()), "test", "core",
            "--model", str(self.model_path),
            "--stories", str(stories),
            "--out", str(out_dir),
            "--fail-on-prediction-errors",
        ]  # fmt: skip
        exit_code, _ = self._run_streaming(command, progress)
        return exit_code

    def log_tail(self, lines: int = LOG_TAIL_LINES, path: Path | None = None) -> str:
        path = path or self.log_path
        if not path.is_file():
            return "(no log)"
        text = path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _terminate(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _non_empty_lines(stream: Iterable[str]) -> Iterable[str]:
    for line in stream:
        stripped = line.rstrip()
        if stripped:
            yield stripped
