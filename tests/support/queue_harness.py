"""The agent queue end to end: a voicebot worker in queue mode over its own operations database, the web console,
Debian's Chromium driven by Playwright, and pjsua2 phones whose events can be read while they run."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from dialogue.acd import Acd
from dialogue.agents import load_directory
from dialogue.rasa_service import RasaService
from tests.support.sip_harness import Worker, phone, start_worker, write_config
from voicebot.config import Settings
from voicebot.console.runner import ConsoleThread
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import UserStore

PASSWORD = "queue-test-password"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class QueueLine:
    worker: Worker
    acd: Acd
    folder: Path

    @property
    def db_path(self) -> Path:
        return self.folder / "state" / "operations.db"


@contextmanager
def queue_line(rasa_service: RasaService, folder: Path, agents_yaml: str, port: int, name: str,
               sip: dict[str, Any]) -> Iterator[QueueLine]:  # fmt: skip
    """A queue-mode worker on `port` whose agent directory is `agents_yaml`; `sip` adds to its sip settings."""
    state = folder / "state"
    state.mkdir()
    (folder / "agents.yaml").write_text(agents_yaml, encoding="utf-8")
    config = write_config(
        folder / "voicebot.yaml",
        {
            "dialogue": {"rasa_url": rasa_service.url, "auth_token": rasa_service.auth_token, "timeout_s": 15.0},
            "sip": {"transfer_mode": "queue", **sip},
            "agents_file": str(folder / "agents.yaml"),
        },
    )
    acd = Acd(state / "operations.db")
    acd.seed(*load_directory(folder / "agents.yaml"))
    worker = start_worker(config, port, folder, name=name, env={"VOICEBOT_STATE_DIR": str(state)})
    yield QueueLine(worker, acd, folder)
    assert worker.stop() == 0, worker.log()[-3000:]


@contextmanager
def running_console(line: QueueLine, port: int, users: list[tuple[str, str, str | None]]) -> Iterator[str]:
    """The console over the line's operations database; `users` are (name, role, agent id), all with PASSWORD."""
    store = UserStore(line.db_path)
    for name, role, agent_id in users:
        store.add(name, role, PASSWORD, agent_id=agent_id)
    server = ConsoleThread(ConsoleSettings(port=port, secret_file=line.folder / "secret"), line.db_path, Settings())
    server.start()
    yield server.url
    assert server.stop(), "the console did not stop"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def logged_in(browser: Browser, console: str, name: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{console}/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return page


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def call_state(acd: Acd, call_id: str | None) -> str | None:
    return next((call["state"] for call in acd.snapshot()["calls"] if call["call_id"] == call_id), None)


@dataclass
class LivePhone:
    """A pj_phone process whose JSON events are collected as they come (a thread reads its stdout)."""

    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def of(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_for(self, event: str, timeout_s: float, **fields: Any) -> dict[str, Any]:
        wait_until(lambda: self.of(event, **fields), timeout_s, f"{event} {fields or ''} on the phone")
        return self.of(event, **fields)[0]

    def finish(self, timeout_s: float) -> list[dict[str, Any]]:
        """Waits for the phone to end by itself (it hangs up at --hangup-at or when its calls are over)."""
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(15)
        assert self._reader is not None
        self._reader.join(5)
        return list(self.events)

    def stop(self) -> list[dict[str, Any]]:
        if self.process.poll() is None:
            self.process.terminate()
        return self.finish(15)


def live_phone(mode: str, *args: str, port: int, uri: str | None = None) -> LivePhone:
    return LivePhone(phone(mode, *args, port=port, uri=uri))
