"""Live queues and calls (pushed every second over Server-Sent Events), the call list and one call's context."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from voicebot.console.call_history import STAGES, CallFilter, call_record, calls_db_path, recent_calls
from voicebot.console.context import Console
from voicebot.console.security import STAFF, guarded
from voicebot.console.users import ConsoleUser

# Context keys shown in their own place on a call's page; any other key is listed under "More".
SHOWN_KEYS = ("language", "summary", "intent", "slots", "case_number", "case_reference", "transcript", "timings",
              "reason")  # fmt: skip


def routes(console: Console) -> list[BaseRoute]:
    async def live(request: Request, user: ConsoleUser) -> Response:
        snap = await console.snapshot(fresh=True)
        return console.render(request, user, "live.html", "Live queues and calls", snap=snap)

    async def events(request: Request, user: ConsoleUser) -> Response:
        async def produce() -> dict[str, Any]:
            snap = await console.snapshot()
            return {"snapshot": snap, "html": console.fragment("_live.html", snap=snap)}

        return console.event_stream(produce)

    async def calls(request: Request, user: ConsoleUser) -> Response:
        snap = await console.snapshot(fresh=True)
        callbacks = await console.db(console.acd.callbacks)
        wanted = CallFilter.from_query(dict(request.query_params))
        recorded = await console.db(recent_calls, calls_db_path(console.db_path), wanted)
        return console.render(request, user, "calls.html", "Calls", calls=snap["calls"], callbacks=callbacks,
                              recorded=recorded, wanted=wanted)  # fmt: skip

    async def call(request: Request, user: ConsoleUser) -> Response:
        call_id = request.path_params["call_id"]
        snap = await console.snapshot(fresh=True)
        found = await console.db(find_call, console, snap, call_id)
        record = await console.db(call_record, calls_db_path(console.db_path), call_id)
        if found is None and record is None:
            return console.render(
                request,
                user,
                "error.html",
                "Call not found",
                404,
                home="/calls",
                errors=[f"No call {call_id!r} in the call records, the queues or the callbacks."],
            )
        view = call_view(found) if found is not None else None
        return console.render(request, user, "call.html", f"Call {call_id}", call=view, record=record, stages=STAGES)

    return [
        guarded("/", live, STAFF, console.users, console.denied),
        guarded("/events", events, STAFF, console.users, console.denied),
        guarded("/calls", calls, STAFF, console.users, console.denied),
        guarded("/calls/{call_id:str}", call, STAFF, console.users, console.denied),
    ]


def find_call(console: Console, snap: dict[str, Any], call_id: str) -> dict[str, Any] | None:
    """The call as the live snapshot shows it, else as a callback task remembers it."""
    for call in snap["calls"]:
        if call["call_id"] == call_id:
            return dict(call)
    for done in (False, True):
        for task in console.acd.callbacks(done=done):
            if task.call_id == call_id:
                state = "callback done" if task.done_at else "callback to do"
                return {
                    "call_id": call_id,
                    "state": state,
                    "language": task.language,
                    "context": task.context,
                    "callback_number": task.number,
                }
    return None


def call_view(call: dict[str, Any]) -> dict[str, Any]:
    """What a call page and the agent's screen-pop show, from the context the bot handed over."""
    context: dict[str, Any] = call.get("context") or {}
    slots: dict[str, Any] = context["slots"] if isinstance(context.get("slots"), dict) else {}
    return {
        **call,
        "language": call.get("language") or context.get("language", ""),
        "summary": context.get("summary", ""),
        "reason": context.get("reason", ""),
        "intent": context.get("intent", ""),
        "case_number": context.get("case_number") or context.get("case_reference") or slots.get("case_reference"),
        "slots": {key: value for key, value in slots.items() if value not in (None, "", [])},
        "transcript": transcript_lines(context.get("transcript")),
        "timings": context.get("timings") if isinstance(context.get("timings"), dict | list) else None,
        "more": {key: value for key, value in context.items() if key not in SHOWN_KEYS},
    }


def transcript_lines(transcript: Any) -> list[tuple[str, str]]:
    """(speaker, text) pairs from a transcript given as text, a list of strings or a list of turns."""
    if not transcript:
        return []
    if isinstance(transcript, str):
        return [("", line) for line in transcript.splitlines() if line.strip()]
    lines = []
    for turn in transcript if isinstance(transcript, list) else [transcript]:
        if isinstance(turn, dict):
            speaker = str(turn.get("speaker") or turn.get("role") or turn.get("who") or "")
            lines.append((speaker, str(turn.get("text", ""))))
        else:
            lines.append(("", str(turn)))
    return lines
