"""The transfer-rules editor: the live rules in a textarea; Validate lists every problem with where it is, Diff
compares with the live version, Save validates again and stores a new live version (an invalid text is never
stored: the live rules stay as they were)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from dialogue.transfer_rules import RuleError
from voicebot.console.context import Console
from voicebot.console.security import STAFF, guarded
from voicebot.console.users import ConsoleUser


def routes(console: Console) -> list[BaseRoute]:
    async def editor(request: Request, user: ConsoleUser) -> Response:
        try:
            live = await console.db(console.rules.live_text)
        except RuleError as exc:  # an empty store whose seed file does not validate here
            return await _page(console, request, user, problems=exc.problems)
        return await _page(console, request, user, text=live[1] if live else "")

    async def submit(request: Request, user: ConsoleUser) -> Response:
        form = await request.form()
        text = str(form.get("text", "")).replace("\r\n", "\n")
        comment = str(form.get("comment", "")).strip()
        op = str(form.get("op", "validate"))
        if op == "save":
            return await _save(console, request, user, text, comment)
        if op == "diff":
            diff = await console.db(console.rules.diff, text)
            return await _page(console, request, user, text=text, comment=comment, diff=diff)
        try:
            rule_set = await console.db(console.validator, text)
        except RuleError as exc:
            return await _page(
                console,
                request,
                user,
                400,
                text=text,
                comment=comment,
                problems=exc.problems,
                errors=[f"{len(exc.problems)} problem(s): nothing was saved."],
            )
        notice = f"Valid: {len(rule_set.rules)} rule(s). Save to make them live."
        return await _page(console, request, user, text=text, comment=comment, notice=notice)

    return [
        guarded("/rules", editor, STAFF, console.users, console.denied),
        guarded("/rules", submit, STAFF, console.users, console.denied, methods=["POST"]),
    ]


async def _save(console: Console, request: Request, user: ConsoleUser, text: str, comment: str) -> Response:
    try:
        live = await console.db(console.rules.live_text)
        diff = await console.db(console.rules.diff, text)
        version = await console.db(console.rules.save, text, user.name, comment)
    except RuleError as exc:
        return await _page(
            console,
            request,
            user,
            400,
            text=text,
            comment=comment,
            problems=exc.problems,
            errors=[f"Not saved: {len(exc.problems)} problem(s). The live rules are unchanged."],
        )
    if live is not None and live[0] == version:
        return await _page(console, request, user, text=text, notice=f"No change: version {version} stays live.")
    before = {"version": live[0]} if live else None
    after = {"version": version, "comment": comment, "diff": diff}
    await console.db(console.audit.record, user.name, "rules_save", "transfer_rules", before, after)
    return await _page(console, request, user, text=text, notice=f"Saved as version {version}, now live.")


async def _page(
    console: Console, request: Request, user: ConsoleUser, status_code: int = 200, **context: Any
) -> Response:
    try:
        live = await console.db(console.rules.live_text)
        versions = await console.db(console.rules.versions)
    except RuleError:
        live, versions = None, []
    context.setdefault("text", "")
    context.setdefault("comment", "")
    context.setdefault("diff", None)
    return console.render(
        request,
        user,
        "rules.html",
        "Transfer rules",
        status_code,
        live_version=live[0] if live else None,
        versions=versions,
        **context,
    )
