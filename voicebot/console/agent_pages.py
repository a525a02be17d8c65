"""Agents: the list with their live status (which a supervisor can change), and the add/edit form whose problems
(malformed SIP URI, unknown language...) are shown next to the form."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from dialogue.agents import AGENT_STATUSES, Agent, agent_problems
from voicebot.console.context import Console
from voicebot.console.desk_pages import change_status
from voicebot.console.security import STAFF, guarded
from voicebot.console.users import ConsoleUser

FIELD_LABELS = {"id": "Id", "name": "Name", "sip_uri": "SIP URI", "languages": "Languages", "topics": "Topics",
                "status": "Status"}  # fmt: skip


def routes(console: Console) -> list[BaseRoute]:
    async def agents(request: Request, user: ConsoleUser) -> Response:
        everyone = await console.db(console.acd.agents)
        saved = request.query_params.get("saved")
        return console.render(
            request,
            user,
            "agents.html",
            "Agents",
            agents=everyone,
            statuses=AGENT_STATUSES,
            notice=f"Agent {saved} saved." if saved else None,
        )

    async def new_agent(request: Request, user: ConsoleUser) -> Response:
        return _form(console, request, user, {"languages": "fr, en"}, is_new=True)

    async def edit_agent(request: Request, user: ConsoleUser) -> Response:
        agent = await console.db(_agent, console, request.path_params["agent_id"])
        if agent is None:
            return console.render(
                request,
                user,
                "error.html",
                "Agent not found",
                404,
                home="/agents",
                errors=[f"No agent {request.path_params['agent_id']!r}."],
            )
        return _form(console, request, user, _as_form(agent), is_new=False)

    async def save_agent(request: Request, user: ConsoleUser) -> Response:
        form = await request.form()
        is_new = form.get("mode") == "new"
        agent = _from_form(form)
        problems = agent_problems(agent)
        existing = await console.db(_agent, console, agent.id)
        if is_new and existing is not None:
            problems.append(("id", f"an agent {agent.id!r} already exists: edit it instead"))
        if not is_new and existing is None:
            problems.append(("id", f"no agent {agent.id!r} to edit"))
        if problems:
            errors = [f"{FIELD_LABELS.get(field, field)}: {message}" for field, message in problems]
            return _form(console, request, user, _raw(form), is_new, errors, status_code=400)
        await console.db(_save, console, user.name, agent, existing)
        return RedirectResponse(f"/agents?saved={agent.id}", status_code=303)

    async def agent_status(request: Request, user: ConsoleUser) -> Response:
        status = str((await request.form()).get("status", ""))
        agent_id = request.path_params["agent_id"]
        try:
            await console.db(change_status, console, user.name, agent_id, status)
        except (KeyError, ValueError) as exc:
            everyone = await console.db(console.acd.agents)
            return console.render(
                request,
                user,
                "agents.html",
                "Agents",
                400,
                agents=everyone,
                statuses=AGENT_STATUSES,
                errors=[str(exc).strip("'\"")],
            )
        return RedirectResponse("/agents", status_code=303)

    return [
        guarded("/agents", agents, STAFF, console.users, console.denied),
        guarded("/agents", save_agent, STAFF, console.users, console.denied, methods=["POST"]),
        guarded("/agents/new", new_agent, STAFF, console.users, console.denied),
        guarded("/agents/{agent_id:str}", edit_agent, STAFF, console.users, console.denied),
        guarded("/agents/{agent_id:str}/status", agent_status, STAFF, console.users, console.denied, methods=["POST"]),
    ]


def _agent(console: Console, agent_id: str) -> Agent | None:
    return next((agent for agent in console.acd.agents() if agent.id == agent_id), None)


def _save(console: Console, actor: str, agent: Agent, existing: Agent | None) -> None:
    console.acd.upsert_agent(agent)
    before = _profile(existing) if existing else None
    console.audit.record(actor, "agent_edit" if existing else "agent_add", f"agent:{agent.id}", before, _profile(agent))


def _profile(agent: Agent) -> dict[str, Any]:
    return {"name": agent.name, "sip_uri": agent.sip_uri, "languages": list(agent.languages),
            "topics": list(agent.topics)}  # fmt: skip


def _words(text: str) -> tuple[str, ...]:
    return tuple(word for word in re.split(r"[\s,;]+", text.strip()) if word)


def _from_form(form: FormData) -> Agent:
    def text(key: str) -> str:
        return str(form.get(key, "")).strip()

    return Agent(id=text("id"), name=text("name"), sip_uri=text("sip_uri"), languages=_words(text("languages")),
                 topics=_words(text("topics")))  # fmt: skip


def _raw(form: FormData) -> dict[str, str]:
    return {key: str(form.get(key, "")) for key in ("id", "name", "sip_uri", "languages", "topics")}


def _as_form(agent: Agent) -> dict[str, str]:
    return {"id": agent.id, "name": agent.name, "sip_uri": agent.sip_uri, "languages": ", ".join(agent.languages),
            "topics": ", ".join(agent.topics)}  # fmt: skip


def _form(
    console: Console,
    request: Request,
    user: ConsoleUser,
    values: dict[str, str],
    is_new: bool,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    title = "Add an agent" if is_new else f"Edit agent {values.get('id', '')}"
    return console.render(
        request, user, "agent_form.html", title, status_code, form=values, is_new=is_new, errors=errors or ()
    )
