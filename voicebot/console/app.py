"""The console application (Starlette): routes, sessions, static files, and the stores it works with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dialogue.acd import Acd
from dialogue.rule_store import RuleStore, rules_validator
from dialogue.transfer_rules import RuleSet
from voicebot.audit import Audit
from voicebot.config import Settings, load_settings
from voicebot.console import (
    admin_pages,
    agent_pages,
    auth_pages,
    desk_pages,
    live_pages,
    recording_pages,
    report_pages,
    rule_pages,
)
from voicebot.console.context import STATIC_DIR, Console
from voicebot.console.security import SecurityHeaders, load_secret
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import LoginThrottle, UserStore
from voicebot.metrics import metrics_response

SESSION_COOKIE = "voicebot_console"


def create_app(
    settings: ConsoleSettings,
    db_path: Path,
    *,
    app_settings: Settings | None = None,
    validator: Callable[[str], RuleSet] | None = None,
) -> Starlette:
    """The console over the operations database at `db_path`. `app_settings` is what the settings page shows
    (default: loaded as `voicebot serve` would); `validator` checks rule texts (default: the Rasa domain's intents,
    the ACD's queues and the configured languages)."""
    console = open_console(settings, db_path, app_settings, validator)
    secret = load_secret(settings.secret_file or db_path.parent / "console_secret")
    routes: list[BaseRoute] = [
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
        Route("/metrics", metrics_page, methods=["GET"]),  # no login: Prometheus scrapes it (loopback only)
    ]
    for pages in (auth_pages, live_pages, recording_pages, report_pages, desk_pages, agent_pages, rule_pages,
                  admin_pages):  # fmt: skip
        routes += pages.routes(console)
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
            max_age=settings.session_max_age_s, same_site="strict",
        )
    ]  # fmt: skip
    app = Starlette(routes=routes, middleware=middleware)
    app.state.console = console
    return app


def metrics_page(_request: Request) -> Response:
    """Prometheus exposition of every voicebot process (a plain function: Starlette runs it on a thread)."""
    body, content_type = metrics_response()
    return Response(body, media_type=content_type)


def open_console(
    settings: ConsoleSettings, db_path: Path, app_settings: Settings | None, validator: Callable[[str], RuleSet] | None
) -> Console:
    app_settings = app_settings or load_settings()
    acd = Acd(db_path)
    validator = validator or rules_validator(db_path, app_settings.call.languages)
    rules = RuleStore(db_path, validator)
    return Console(
        settings=settings, db_path=db_path, app_settings=app_settings, acd=acd, rules=rules, validator=validator,
        users=UserStore(db_path), audit=Audit(db_path),
        throttle=LoginThrottle(db_path, settings.login_max_failures, settings.login_window_s),
    )  # fmt: skip
