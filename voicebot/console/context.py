"""What every console page works with: the stores (ACD, rules, users, audit) over the operations database, the
templates, and the rendering helpers shared by the pages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.templating import Jinja2Templates

from dialogue.acd import Acd
from dialogue.rule_store import RuleStore
from dialogue.transfer_rules import RuleSet
from voicebot.audit import Audit
from voicebot.config import Settings
from voicebot.console.security import csrf_token, home_of
from voicebot.console.settings import ConsoleSettings
from voicebot.console.users import ConsoleUser, LoginThrottle, UserStore

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
T = TypeVar("T")

STAFF_NAV = (
    ("/", "Live"), ("/calls", "Calls"), ("/reports", "Reports"), ("/agents", "Agents"), ("/rules", "Rules"),
    ("/callbacks", "Callbacks"),
    ("/settings", "Settings"), ("/audit", "Audit"), ("/desk", "Desk"),
)  # fmt: skip
ADMIN_NAV = (*STAFF_NAV, ("/users", "Users"))
AGENT_NAV = (("/desk", "Desk"),)


def when(timestamp: float | None) -> str:
    """A Unix time as local 'YYYY-MM-DD HH:MM:SS' (empty for None)."""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else ""


def compact(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["when"] = when
    templates.env.filters["compact"] = compact
    templates.env.filters["seconds"] = lambda s: "" if s is None else f"{round(float(s))} s"
    return templates


@dataclass
class Console:
    settings: ConsoleSettings
    db_path: Path
    app_settings: Settings
    acd: Acd
    rules: RuleStore
    validator: Callable[[str], RuleSet]
    users: UserStore
    throttle: LoginThrottle
    audit: Audit
    templates: Jinja2Templates = field(default_factory=make_templates)
    stopping: Callable[[], bool] = lambda: False  # set by serve_console: long-lived streams end when it says so
    push_interval_s: float = 1.0
    _snapshot: tuple[float, dict[str, Any]] | None = None
    _snapshot_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def db(self, function: Callable[..., T], *args: Any) -> T:
        """Run a database operation off the event loop (every store opens a short SQLite transaction)."""
        return await run_in_threadpool(function, *args)

    async def snapshot(self, fresh: bool = False) -> dict[str, Any]:
        """The ACD snapshot, shared by every stream that asks within half a push interval: each snapshot is several
        transactions on the database the SIP workers write to, so open browsers must not multiply them. Pages ask
        for a fresh one (they follow a change made a moment ago)."""
        async with self._snapshot_lock:
            now = time.monotonic()
            if fresh or self._snapshot is None or now - self._snapshot[0] >= self.push_interval_s / 2:
                self._snapshot = (now, await self.db(self.acd.snapshot))
            return self._snapshot[1]

    def nav(self, user: ConsoleUser) -> tuple[tuple[str, str], ...]:
        return {"admin": ADMIN_NAV, "supervisor": STAFF_NAV}.get(user.role, AGENT_NAV)

    def render(
        self,
        request: Request,
        user: ConsoleUser | None,
        template: str,
        title: str,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        active = "/" + request.url.path.strip("/").split("/")[0]
        base = {
            "user": user, "csrf": csrf_token(request), "title": title, "active": active,
            "nav": self.nav(user) if user else (), "notice": None, "errors": (),
        }  # fmt: skip
        return self.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)

    def fragment(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    def event_stream(self, produce: Callable[[], Awaitable[dict[str, Any]]]) -> StreamingResponse:
        """Server-Sent Events: `produce()` every push interval as one JSON `data:` line, until the client goes away
        (the next write fails) or the server is stopping."""

        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            while not self.stopping():
                payload = await produce()
                yield f"data: {json.dumps(payload, default=str)}\n\n"
                await asyncio.sleep(self.push_interval_s)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    def denied(self, request: Request, user: ConsoleUser | None, status: int, message: str) -> Response:
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return HTMLResponse(message, status_code=status)
        home = home_of(user) if user else "/login"
        return self.render(request, user, "error.html", "Not allowed", status, errors=[message], home=home)
