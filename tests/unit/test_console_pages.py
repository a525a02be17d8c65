"""Console pages that change things (agents, callbacks) and the call page, through the real app and ACD over a
temporary operations database; every change lands in the audit log with before and after."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from dialogue.acd import Acd
from voicebot.audit import Audit
from voicebot.config import Settings
from voicebot.console.app import create_app
from voicebot.console.runner import ConsoleThread
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import UserStore
from voicebot.ports import ConfigError

from .test_console_auth import PASSWORD, csrf_of, db_path, log_in

__all__ = ["db_path"]  # the fixture, shared with the auth tests


@pytest.fixture
def supervisor(db_path: Path) -> Iterator[TestClient]:
    UserStore(db_path)  # tables exist (created by the shared fixture)
    with TestClient(create_app(ConsoleSettings(), db_path, app_settings=Settings())) as client:
        assert log_in(client, "sam", PASSWORD)[0] == 303
        yield client


def test_agent_form_shows_what_is_wrong_with_a_sip_uri(supervisor: TestClient, db_path: Path) -> None:
    token = csrf_of(supervisor.get("/agents/new").text)
    form = {"mode": "new", "id": "zoe", "name": "Zoé", "sip_uri": "zoe@host", "languages": "fr", "csrf": token}
    refused = supervisor.post("/agents", data=form)
    assert refused.status_code == 400
    assert "SIP URI: &#39;zoe@host&#39; does not start with sip: or sips:" in refused.text
    assert "zoe" not in {agent.id for agent in Acd(db_path).agents()}

    saved = supervisor.post("/agents", data={**form, "sip_uri": "sip:zoe@192.0.2.7:5060", "languages": "fr, en"})
    assert saved.status_code == 200 and "Agent zoe saved." in saved.text
    zoe = next(agent for agent in Acd(db_path).agents() if agent.id == "zoe")
    assert (zoe.sip_uri, zoe.languages, zoe.status) == ("sip:zoe@192.0.2.7:5060", ("fr", "en"), "offline")
    entry = Audit(db_path).entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target, entry.before) == ("sam", "agent_add", "agent:zoe", None)

    edit = {**form, "mode": "edit", "sip_uri": "sips:zoe@example.org", "languages": "fr"}
    assert supervisor.post("/agents", data=edit).status_code == 200
    entry = Audit(db_path).entries(limit=1)[0]
    assert entry.action == "agent_edit"
    assert (entry.before["sip_uri"], entry.after["sip_uri"]) == ("sip:zoe@192.0.2.7:5060", "sips:zoe@example.org")
    duplicate = supervisor.post("/agents", data={**form, "sip_uri": "sip:zoe@192.0.2.7"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.text


def test_supervisor_sets_an_agent_status(supervisor: TestClient, db_path: Path) -> None:
    token = csrf_of(supervisor.get("/agents").text)
    assert supervisor.post("/agents/alice/status", data={"status": "paused", "csrf": token}).status_code == 200
    assert Acd(db_path).agents()[0].status == "paused"
    bad = supervisor.post("/agents/alice/status", data={"status": "asleep", "csrf": token})
    assert bad.status_code == 400 and "unknown agent status" in bad.text


def test_callback_done_once_and_audited(supervisor: TestClient, db_path: Path) -> None:
    acd = Acd(db_path)
    task_id = acd.add_callback("call-9", "+33 6 12 34 56 78", "fr", {"summary": "Rappeler pour un acte"})
    page = supervisor.get("/callbacks")
    assert "+33612345678" in page.text and "Rappeler pour un acte" in page.text
    token = csrf_of(page.text)
    done = supervisor.post(f"/callbacks/{task_id}/done", data={"csrf": token})
    assert done.status_code == 200 and f"Callback {task_id} marked done." in done.text
    assert acd.callbacks() == []
    entry = Audit(db_path).entries(limit=1)[0]
    assert (entry.action, entry.before, entry.after["by"]) == ("callback_done", {"done": False}, "sam")
    again = supervisor.post(f"/callbacks/{task_id}/done", data={"csrf": token})
    assert again.status_code == 409 and "already done by sam" in again.text


def test_call_page_shows_the_context_handed_over(supervisor: TestClient, db_path: Path) -> None:
    context = {
        "summary": "Wants to know where their passport application is",
        "intent": "case_status",
        "slots": {"case_reference": "PA-12345"},
        "transcript": [{"speaker": "caller", "text": "Where is my passport application?"}],
        "timings": {"asr_ms": 412},
    }
    Acd(db_path).enqueue("call-7", "general", 0, "en", context)
    page = supervisor.get("/calls/call-7")
    assert page.status_code == 200
    for shown in ("Wants to know where", "case_status", "PA-12345", "Where is my passport application?", "asr_ms"):
        assert shown in page.text
    assert supervisor.get("/calls").text.count("call-7") >= 1
    assert supervisor.get("/calls/nope").status_code == 404


def test_console_thread_serves_and_reports_a_taken_port(db_path: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = ConsoleSettings(port=port, secret_file=tmp_path / "secret")
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}.*console.port"):
            ConsoleThread(settings, db_path, Settings()).start()
    server = ConsoleThread(settings, db_path, Settings())  # the port is free again
    server.start()
    try:
        response = httpx.get(f"{server.url}/login", timeout=5)
        assert response.status_code == 200 and "Log in" in response.text
    finally:
        assert server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/login", timeout=5)
