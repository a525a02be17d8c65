"""The console in a real headless Chromium (Debian's, driven by Playwright): the console runs under uvicorn on
127.0.0.1 over a temporary operations database seeded with the repository's agent directory; the test changes the
ACD directly, as a SIP worker would, and watches the pages follow without reloading."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from dialogue.acd import Acd
from dialogue.agents import load_directory
from dialogue.rule_store import RuleStore, rules_validator
from dialogue.state import DATA_DIR
from voicebot.config import Settings
from voicebot.console.runner import ConsoleThread
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import UserStore

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "console-test-password"
LANGUAGES = ("en", "fr")
PUSH_TIMEOUT_MS = 10_000  # the console pushes every second; room for a loaded CI machine

expect.set_options(timeout=PUSH_TIMEOUT_MS)


@dataclass
class RunningConsole:
    url: str
    db_path: Path
    acd: Acd

    def rules(self) -> RuleStore:
        return RuleStore(self.db_path, rules_validator(self.db_path, LANGUAGES))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    db_path = tmp_path / "operations.db"
    acd = Acd(db_path)
    acd.seed(*load_directory(DATA_DIR / "agents.yaml"))
    users = UserStore(db_path)
    users.add("sam", "supervisor", PASSWORD)
    users.add("alice", "agent", PASSWORD, agent_id="alice")
    settings = ConsoleSettings(port=_free_port(), secret_file=tmp_path / "console_secret")
    server = ConsoleThread(settings, db_path, Settings())
    server.start()
    try:
        yield RunningConsole(server.url, db_path, acd)
    finally:
        assert server.stop(), "the console did not stop"


@pytest.fixture
def log_in(browser: Browser, console: RunningConsole) -> Iterator[Callable[[str], Page]]:
    """Logs a user in, in a browser context of its own (closed after the test)."""
    contexts: list[BrowserContext] = []

    def open_as(name: str) -> Page:
        contexts.append(browser.new_context())
        page = contexts[-1].new_page()
        page.goto(f"{console.url}/login")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        return page

    yield open_as
    for context in contexts:
        context.close()


def test_live_page_follows_the_queue_without_reloading(log_in: Callable[[str], Page], console: RunningConsole) -> None:
    page = log_in("sam")
    expect(page).to_have_url(f"{console.url}/")
    queue_length = page.locator("#queues tr[data-queue='general-en'] .length")
    expect(queue_length).to_have_text("0")
    page.evaluate("window.notReloaded = true")

    console.acd.enqueue("call-live-1", "general-en", 0, "en", {"summary": "Asks about a parking permit"})

    call_row = page.locator("#calls-live tr[data-call='call-live-1']")
    expect(call_row).to_contain_text("waiting")
    expect(call_row).to_contain_text("Asks about a parking permit")
    expect(queue_length).to_have_text("1")
    console.acd.call_ended("call-live-1")  # the caller hangs up: gone from the page
    expect(call_row).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True


def test_rules_editor_rejects_an_invalid_rule_and_saves_a_valid_one(
    log_in: Callable[[str], Page], console: RunningConsole
) -> None:
    store = console.rules()
    live_version, live_text = store.live_text() or (0, "")
    page = log_in("sam")
    page.goto(f"{console.url}/rules")
    editor = page.locator("#rules-text")
    expect(editor).to_have_value(live_text)
    keypad_zero = '  - name: keypad-zero\n    when:\n      dtmf: "0"\n      business_hours: open\n    then:\n'
    assert keypad_zero + '      queue: "general-{language}"' in live_text

    invalid = live_text.replace(
        keypad_zero + '      queue: "general-{language}"', keypad_zero + "      queue: town-hall"
    )
    editor.fill(invalid)
    page.get_by_role("button", name="Save as new version").click()
    expect(page.locator("#rule-problems")).to_contain_text("(keypad-zero) .then.queue")
    expect(page.locator("#rule-problems")).to_contain_text("unknown queue 'town-hall'")
    expect(page.locator(".errors")).to_contain_text("The live rules are unchanged")
    assert store.live_text() == (live_version, live_text)

    valid = live_text.replace(keypad_zero + '      queue: "general-{language}"',
                              keypad_zero + '      queue: "civil-status-{language}"')  # fmt: skip
    page.locator("#rules-text").fill(valid)
    page.get_by_role("button", name="Validate").click()
    expect(page.locator(".notice")).to_contain_text("Valid: 15 rule(s)")
    page.get_by_role("button", name="Diff vs live").click()
    expect(page.locator("#rules-diff")).to_contain_text('+      queue: "civil-status-{language}"')
    page.locator("input[name=comment]").fill("keypad 0 goes to the civil status office")
    page.get_by_role("button", name="Save as new version").click()
    expect(page.locator(".notice")).to_contain_text(f"Saved as version {live_version + 1}, now live")

    version, text, rules = store.live() or (0, "", None)
    assert (version, text) == (live_version + 1, valid)
    assert rules is not None
    keypad_rule = next(rule for rule in rules.rules if rule.name == "keypad-zero")
    assert keypad_rule.then.queue == "civil-status-{language}"
    expect(page.locator("#rule-versions")).to_contain_text(f"v{version} (live)")


def test_agent_desk_sets_status_and_pops_the_offered_call(
    log_in: Callable[[str], Page], console: RunningConsole
) -> None:
    page = log_in("alice")
    expect(page).to_have_url(f"{console.url}/desk")
    expect(page.locator("#desk-status")).to_have_text("offline")
    page.get_by_role("button", name="Available").click()
    expect(page.locator("#desk-status")).to_have_text("available")
    assert {agent.id: agent.status for agent in console.acd.agents()}["alice"] == "available"
    expect(page.locator("#no-call")).to_be_visible()

    context: dict[str, Any] = {
        "language": "fr",
        "summary": "Demande où en est son dossier de passeport",
        "intent": "case_status",
        "slots": {"case_reference": "PA-12345"},
        "transcript": [
            {"speaker": "caller", "text": "Où en est mon dossier ?"},
            {"speaker": "bot", "text": "Je vous passe une personne."},
        ],
    }
    console.acd.enqueue("call-desk-1", "general-fr", 0, "fr", context)
    offers = console.acd.dispatch()
    assert [(offer.call_id, offer.agent_id) for offer in offers] == [("call-desk-1", "alice")]

    pop = page.locator("#screen-pop")
    expect(pop).to_contain_text("Incoming call")
    expect(pop.locator(".call-language")).to_have_text("fr")
    expect(pop.locator(".call-summary")).to_have_text(context["summary"])
    expect(pop.locator(".call-intent")).to_have_text("case_status")
    expect(pop.locator(".call-case")).to_have_text("PA-12345")
    expect(pop.locator(".transcript")).to_contain_text("Où en est mon dossier ?")
    expect(page.locator("#desk-status")).to_have_text("busy")

    console.acd.connected("call-desk-1", "alice")
    expect(pop).to_contain_text("On call")
