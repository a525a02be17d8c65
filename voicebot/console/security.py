"""Who may do what on the console: the session-signing secret, the logged-in user, role checks and CSRF tokens.

Every route is declared through `guarded()`, which is the only way a handler is reached: it loads the user from the
session (and the database, so a removed user is out at once), checks the role, and for POST checks the CSRF token
before the handler sees the form."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebot.console.users import ConsoleUser, UserStore

ADMIN = frozenset({"admin"})
STAFF = frozenset({"admin", "supervisor"})
EVERYONE = frozenset({"admin", "supervisor", "agent"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

Handler = Callable[[Request, ConsoleUser], Awaitable[Response]]
Denied = Callable[[Request, ConsoleUser | None, int, str], Response]


def load_secret(path: Path) -> str:
    """The session-signing key: read from `path`, or generated there (readable by this user only)."""
    if path.exists():
        secret = path.read_text().strip()
        if secret:
            return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use (also for anonymous sessions: the login form needs one)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


async def csrf_ok(request: Request) -> bool:
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected:
        return False
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(sent, str) and hmac.compare_digest(sent, expected)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def session_user(request: Request, users: UserStore) -> ConsoleUser | None:
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    return await run_in_threadpool(users.get, name)


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: `next=//evil.example` or `next=https://...` would make the login an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def home_of(user: ConsoleUser) -> str:
    return "/desk" if user.role == "agent" else "/"


def guarded(
    path: str,
    handler: Handler,
    roles: Collection[str],
    users: UserStore,
    denied: Denied,
    methods: Collection[str] = ("GET",),
) -> Route:
    allowed = frozenset(roles)

    async def endpoint(request: Request) -> Response:
        user = await session_user(request, users)
        if user is None:
            if request.method == "GET":
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            return denied(request, None, 403, "Your session has ended: log in again.")
        if user.role not in allowed:
            return denied(request, user, 403, f"A {user.role} cannot open {request.url.path}.")
        if request.method == "POST" and not await csrf_ok(request):
            return denied(
                request,
                user,
                403,
                "This form was not sent from the console (missing or wrong CSRF token): reload the page and try again.",
            )
        return await handler(request, user)

    return Route(path, endpoint, methods=list(methods))


SECURITY_HEADERS = [
    # Only the console's own CSS and script; no framing (clickjacking); forms post back to the console only.
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)
