"""Console login, sessions, CSRF, the login rate limit and role checks, through the real app (Starlette TestClient)
over a temporary operations database."""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dialogue.acd import Acd
from dialogue.agents import Agent, BusinessHours, QueueSpec
from voicebot.audit import Audit
from voicebot.config import Settings
from voicebot.console.app import create_app
from voicebot.console.cli import add_console_parser
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import UserStore
from voicebot.ports import ConfigError

PASSWORD = "correct horse battery"
ALWAYS_OPEN = BusinessHours({day: ((time(0, 0), time.max),) for day in range(7)})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "operations.db"
    acd = Acd(path)
    acd.seed(
        [Agent("alice", "Alice Martin", "sip:alice@127.0.0.1:5090", ("fr", "en"), ())],
        [QueueSpec("general", "en", ALWAYS_OPEN)],
    )
    users = UserStore(path)
    users.add("root", "admin", PASSWORD)
    users.add("sam", "supervisor", PASSWORD)
    users.add("alice", "agent", PASSWORD, agent_id="alice")
    return path


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    app = create_app(ConsoleSettings(), db_path, app_settings=Settings())
    with TestClient(app) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD, next_path: str = "") -> tuple[int, str, str]:
    """(status, Location header, body) of the login POST."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"name": name, "password": password, "csrf": token, "next": next_path}, follow_redirects=False
    )
    return response.status_code, response.headers.get("location", ""), response.text


def test_login_ok_opens_the_role_home_and_is_audited(client: TestClient, db_path: Path) -> None:
    assert log_in(client, "sam")[:2] == (303, "/")
    page = client.get("/")
    assert page.status_code == 200 and "Live queues and calls" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    entry = Audit(db_path).entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("sam", "login", "user:sam")


def test_agent_login_lands_on_the_desk(client: TestClient) -> None:
    assert log_in(client, "alice")[:2] == (303, "/desk")


def test_wrong_password_is_refused_and_audited(client: TestClient, db_path: Path) -> None:
    status, _, body = log_in(client, "sam", "not the password")
    assert status == 401 and "Wrong user name or password." in body
    assert client.get("/", follow_redirects=False).status_code == 303  # still logged out
    assert Audit(db_path).entries(limit=1)[0].action == "login_failed"
    assert log_in(client, "nobody", PASSWORD)[0] == 401


def test_login_is_rate_limited_per_user_and_address(client: TestClient) -> None:
    for _ in range(5):
        assert log_in(client, "sam", "guess")[0] == 401
    status, _, body = log_in(client, "sam")  # even the right password, until the window has passed
    assert status == 429 and "Too many failed logins for sam: try again in 5 minute(s)." in body
    assert log_in(client, "root")[:2] == (303, "/")  # another user from the same address is not blocked


def test_post_without_or_with_a_forged_csrf_token_is_refused(client: TestClient, db_path: Path) -> None:
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"name": "sam", "password": PASSWORD}).status_code == 403
    log_in(client, "alice")
    desk_token = csrf_of(client.get("/desk").text)
    assert desk_token != token  # a new session (and token) after login
    assert client.post("/desk/status", data={"status": "available"}).status_code == 403
    forged = client.post("/desk/status", data={"status": "available", "csrf": token}, follow_redirects=False)
    assert forged.status_code == 403
    assert Acd(db_path).agents()[0].status == "offline"
    sent = client.post("/desk/status", data={"status": "available", "csrf": desk_token}, follow_redirects=False)
    assert sent.status_code == 303
    assert Acd(db_path).agents()[0].status == "available"
    entry = Audit(db_path).entries(limit=1)[0]
    assert (entry.action, entry.before, entry.after) == ("agent_status", {"status": "offline"}, {"status": "available"})


@pytest.mark.parametrize(
    ("user", "allowed", "refused"),
    [
        ("alice", ["/desk"], ["/", "/calls", "/agents", "/rules", "/callbacks", "/settings", "/audit", "/users"]),
        ("sam", ["/", "/desk", "/calls", "/agents", "/rules", "/callbacks", "/settings", "/audit"], ["/users"]),
        ("root", ["/", "/desk", "/calls", "/agents", "/rules", "/callbacks", "/settings", "/audit", "/users"], []),
    ],
)
def test_roles_limit_the_pages(client: TestClient, user: str, allowed: list[str], refused: list[str]) -> None:
    log_in(client, user)
    for path in allowed:
        assert client.get(path).status_code == 200, path
    for path in refused:
        assert client.get(path).status_code == 403, path


def test_supervisor_cannot_add_users(client: TestClient, db_path: Path) -> None:
    log_in(client, "sam")
    token = csrf_of(client.get("/").text)
    form = {"name": "eve", "role": "admin", "password": PASSWORD, "csrf": token}
    assert client.post("/users", data=form).status_code == 403
    assert UserStore(db_path).get("eve") is None


def test_admin_adds_a_user_audited(client: TestClient, db_path: Path) -> None:
    log_in(client, "root")
    token = csrf_of(client.get("/users").text)
    short = client.post("/users", data={"name": "bob", "role": "agent", "password": "short", "csrf": token})
    assert short.status_code == 400 and "at least 8 characters" in short.text
    ok = client.post("/users", data={"name": "bob", "role": "supervisor", "password": PASSWORD, "csrf": token})
    assert ok.status_code == 200 and "User bob added" in ok.text
    entry = Audit(db_path).entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.after["role"]) == ("root", "user_add", "supervisor")
    assert log_in(client, "bob")[0] == 303


def test_logged_out_pages_redirect_to_login_and_next_stays_on_site(client: TestClient) -> None:
    response = client.get("/rules", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=/rules")
    assert log_in(client, "sam", next_path="//evil.example/")[1] == "/"
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    assert log_in(client, "sam", next_path="/rules")[1] == "/rules"


def test_settings_page_hides_secrets(client: TestClient) -> None:
    log_in(client, "sam")
    page = client.get("/settings").text
    assert "rasa_url" in page and Settings().dialogue.auth_token not in page and "(hidden)" in page


def test_cli_adds_a_user_with_the_password_from_stdin(
    client: TestClient, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = argparse.ArgumentParser(prog="voicebot")
    add_console_parser(parser.add_subparsers(dest="command", required=True))
    monkeypatch.setattr("sys.stdin", io.StringIO("another good password\n"))
    args = parser.parse_args(
        ["console", "user", "add", "bruno", "--role", "agent", "--agent", "alice", "--db", str(db_path)]
    )
    assert args.func(args) == 0
    assert log_in(client, "bruno", "another good password")[:2] == (303, "/desk")
    unknown = parser.parse_args(
        ["console", "user", "add", "x", "--role", "agent", "--agent", "zed", "--db", str(db_path)]
    )
    with pytest.raises(ConfigError, match="agent 'zed' is not in the agent directory"):
        unknown.func(unknown)
