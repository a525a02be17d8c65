"""The agent desk: status buttons, and the screen-pop of the call offered to (ringing) or connected with this agent,
pushed over Server-Sent Events so it appears as the phone rings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from voicebot.console.context import Console
from voicebot.console.live_pages import call_view
from voicebot.console.security import EVERYONE, guarded
from voicebot.console.users import ConsoleUser

DESK_STATUSES = ("available", "paused", "offline")  # busy and wrap_up are set by the ACD around calls


def routes(console: Console) -> list[BaseRoute]:
    async def desk(request: Request, user: ConsoleUser) -> Response:
        view = desk_view(await console.snapshot(fresh=True), user.agent_id)
        error = request.query_params.get("error")
        return console.render(
            request, user, "desk.html", "Agent desk", statuses=DESK_STATUSES, desk=view, errors=[error] if error else ()
        )

    async def events(request: Request, user: ConsoleUser) -> Response:
        async def produce() -> dict[str, Any]:
            view = desk_view(await console.snapshot(), user.agent_id)
            return {"agent": view["agent"], "call": view["call"], "html": console.fragment("_desk.html", desk=view)}

        return console.event_stream(produce)

    async def set_status(request: Request, user: ConsoleUser) -> Response:
        status = str((await request.form()).get("status", ""))
        if not user.agent_id:
            return RedirectResponse("/desk", status_code=303)
        if status == "finished":  # the bot left the call at the transfer: the agent says when it is over
            await console.db(finish_call, console, user.name, user.agent_id)
            return RedirectResponse("/desk", status_code=303)
        if status not in DESK_STATUSES:
            return RedirectResponse(f"/desk?error=unknown+status+{status}", status_code=303)
        try:
            await console.db(change_status, console, user.name, user.agent_id, status)
        except KeyError:
            return RedirectResponse(f"/desk?error=agent+{user.agent_id}+is+not+in+the+directory", status_code=303)
        return RedirectResponse("/desk", status_code=303)

    return [
        guarded("/desk", desk, EVERYONE, console.users, console.denied),
        guarded("/desk/events", events, EVERYONE, console.users, console.denied),
        guarded("/desk/status", set_status, EVERYONE, console.users, console.denied, methods=["POST"]),
    ]


def change_status(console: Console, actor: str, agent_id: str, status: str) -> None:
    """Sets the agent's status and audits it (also used by the agents page). KeyError: unknown agent."""
    before = next((a.status for a in console.acd.agents() if a.id == agent_id), None)
    if before is None:
        raise KeyError(agent_id)
    after = console.acd.set_status(agent_id, status)
    console.audit.record(actor, "agent_status", f"agent:{agent_id}", {"status": before}, {"status": after.status})


def finish_call(console: Console, actor: str, agent_id: str) -> None:
    """The agent's connected call is over: the agent goes to wrap-up, then back to available after the queue's
    wrap-up time."""
    call = next((c for c in console.acd.snapshot()["calls"] if c.get("agent_id") == agent_id
                 and c["state"] == "connected"), None)  # fmt: skip
    if call is None:
        return
    console.acd.call_ended(call["call_id"])
    console.audit.record(actor, "call_finished", f"call:{call['call_id']}", {"agent": agent_id}, {"status": "wrap_up"})


def desk_view(snap: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
    """This agent (None when the user has no agent, or it left the directory) and its current call."""
    if not agent_id:
        return {"agent_id": None, "agent": None, "call": None}
    agent = next((a for a in snap["agents"] if a["id"] == agent_id), None)
    call = next((c for c in snap["calls"] if c.get("agent_id") == agent_id), None)
    return {"agent_id": agent_id, "agent": agent, "call": call_view(call) if call else None}
