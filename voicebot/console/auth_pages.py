"""Log in and out. Failed logins are throttled per user name and client address and audited like successful ones."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from voicebot.console.context import Console
from voicebot.console.security import EVERYONE, client_ip, csrf_ok, guarded, home_of, safe_next, session_user
from voicebot.console.users import ConsoleUser


def routes(console: Console) -> list[BaseRoute]:
    async def login_form(request: Request) -> Response:
        user = await session_user(request, console.users)
        if user is not None:
            return RedirectResponse(home_of(user), status_code=303)
        return _form(console, request, next_path=request.query_params.get("next", ""))

    async def login(request: Request) -> Response:
        if not await csrf_ok(request):
            return console.denied(
                request,
                None,
                403,
                "This form was not sent from the console (missing or wrong "
                "CSRF token): reload the login page and try again.",
            )
        form = await request.form()
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        next_path, ip = str(form.get("next", "")), client_ip(request)
        wait_s = await console.db(console.throttle.blocked_for_s, name, ip)
        if wait_s > 0:
            minutes = max(1, math.ceil(wait_s / 60))
            message = f"Too many failed logins for {name}: try again in {minutes} minute(s)."
            return _form(console, request, next_path, name, [message], status_code=429)
        user = await console.db(console.users.authenticate, name, password)
        if user is None:
            await console.db(console.throttle.failed, name, ip)
            await console.db(console.audit.record, f"ip:{ip}", "login_failed", f"user:{name}", None, {"ip": ip})
            return _form(console, request, next_path, name, ["Wrong user name or password."], status_code=401)
        await console.db(console.throttle.succeeded, name, ip)
        await console.db(console.audit.record, user.name, "login", f"user:{user.name}", None, {"ip": ip})
        request.session.clear()  # a fresh session (and CSRF token): nothing set before login carries over
        request.session["user"] = user.name
        return RedirectResponse(safe_next(next_path, home_of(user)), status_code=303)

    async def logout(request: Request, user: ConsoleUser) -> Response:
        await console.db(console.audit.record, user.name, "logout", f"user:{user.name}", None, None)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        guarded("/logout", logout, EVERYONE, console.users, console.denied, methods=["POST"]),
    ]


def _form(
    console: Console,
    request: Request,
    next_path: str = "",
    name: str = "",
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return console.render(
        request, None, "login.html", "Log in", status_code, next=next_path, name=name, errors=errors or ()
    )
