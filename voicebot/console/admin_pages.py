"""Callbacks to do, the settings (read-only), the audit log and (admins) the console users."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from voicebot.console.context import Console
from voicebot.console.security import ADMIN, STAFF, guarded
from voicebot.console.users import ROLES, ConsoleUser

SECRET_WORDS = ("token", "secret", "password", "key")


def routes(console: Console) -> list[BaseRoute]:
    async def callbacks(request: Request, user: ConsoleUser) -> Response:
        done = request.query_params.get("done")
        return await _callbacks_page(console, request, user, f"Callback {done} marked done." if done else None)

    async def callback_done(request: Request, user: ConsoleUser) -> Response:
        callback_id = int(request.path_params["id"])
        try:
            await console.db(_complete_callback, console, callback_id, user.name)
        except (KeyError, ValueError) as exc:  # unknown, or marked done meanwhile by someone else
            return await _callbacks_page(console, request, user, None, [str(exc).strip("'\"")], 409)
        return RedirectResponse(f"/callbacks?done={callback_id}", status_code=303)

    async def settings(request: Request, user: ConsoleUser) -> Response:
        sections = _sections({"console": console.settings, **_dataclass_fields(console.app_settings)})
        return console.render(request, user, "settings.html", "Settings", sections=sections)

    async def audit(request: Request, user: ConsoleUser) -> Response:
        entries = await console.db(console.audit.entries, 200)
        problems = await console.db(console.audit.verify)
        return console.render(request, user, "audit.html", "Audit log", entries=entries, problems=problems)

    async def users(request: Request, user: ConsoleUser) -> Response:
        return await _users_page(console, request, user, {}, (), None)

    async def add_user(request: Request, user: ConsoleUser) -> Response:
        form = {key: str(value).strip() for key, value in (await request.form()).items() if key != "csrf"}
        agent_id = form.get("agent_id") or None
        try:
            added = await console.db(
                console.users.add, form.get("name", ""), form.get("role", ""), form.get("password", ""), agent_id
            )
        except ValueError as exc:
            form.pop("password", None)
            return await _users_page(console, request, user, form, str(exc).split("; "), None, 400)
        after = {"name": added.name, "role": added.role, "agent_id": added.agent_id}
        await console.db(console.audit.record, user.name, "user_add", f"user:{added.name}", None, after)
        return await _users_page(console, request, user, {}, (), f"User {added.name} added ({added.role}).")

    return [
        guarded("/callbacks", callbacks, STAFF, console.users, console.denied),
        guarded("/callbacks/{id:int}/done", callback_done, STAFF, console.users, console.denied, methods=["POST"]),
        guarded("/settings", settings, STAFF, console.users, console.denied),
        guarded("/audit", audit, STAFF, console.users, console.denied),
        guarded("/users", users, ADMIN, console.users, console.denied),
        guarded("/users", add_user, ADMIN, console.users, console.denied, methods=["POST"]),
    ]


async def _callbacks_page(
    console: Console, request: Request, user: ConsoleUser, notice: str | None, errors: Any = (), status_code: int = 200
) -> Response:
    todo = await console.db(console.acd.callbacks)
    return console.render(
        request, user, "callbacks.html", "Callbacks to do", status_code, callbacks=todo, notice=notice, errors=errors
    )


def _complete_callback(console: Console, callback_id: int, actor: str) -> None:
    """KeyError: no such callback; ValueError: already done (the Acd checks both in one transaction)."""
    task = console.acd.complete_callback(callback_id, actor)
    after = {"done": True, "by": actor, "number": task.number, "call_id": task.call_id}
    console.audit.record(actor, "callback_done", f"callback:{callback_id}", {"done": False}, after)


async def _users_page(
    console: Console,
    request: Request,
    user: ConsoleUser,
    form: dict[str, str],
    errors: Any,
    notice: str | None,
    status_code: int = 200,
) -> Response:
    everyone = await console.db(console.users.all)
    agents = await console.db(console.acd.agents)
    return console.render(
        request,
        user,
        "users.html",
        "Users",
        status_code,
        users=everyone,
        agents=agents,
        roles=ROLES,
        form=form,
        errors=errors,
        notice=notice,
    )


def _dataclass_fields(value: Any) -> dict[str, Any]:
    """Top-level settings: sections (dataclasses) by name, plain values grouped under 'paths'."""
    sections: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        if dataclasses.is_dataclass(item):
            sections[f.name] = item
        else:
            plain[f.name] = item
    return {**sections, "paths": plain} if plain else sections


def _sections(sections: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for name, section in sections.items():
        is_instance = dataclasses.is_dataclass(section) and not isinstance(section, type)
        values = dataclasses.asdict(section) if is_instance else dict(section)
        out.append((name, [(key, _shown(key, value)) for key, value in values.items()]))
    return out


def _shown(key: str, value: Any) -> str:
    if value and any(word in key.lower() for word in SECRET_WORDS):
        return "•••••• (hidden)"
    if isinstance(value, tuple | list):
        return ", ".join(str(item) for item in value)
    return str(value)
