"""`voicebot console ...`: add console users (password read from stdin) and serve the console alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from pathlib import Path
from typing import Any

from voicebot.ports import ConfigError


def add_console_parser(subparsers: Any) -> None:
    console = subparsers.add_parser("console", help="the supervisor/agent web console")
    actions = console.add_subparsers(dest="console_command", required=True)

    user = actions.add_parser("user", help="console users")
    user_actions = user.add_subparsers(dest="user_command", required=True)
    add = user_actions.add_parser("add", help="add a user; the password is read from stdin (or asked for on a tty)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "supervisor", "agent"])
    add.add_argument("--agent", help="the ACD agent id this user answers calls as (required for --role agent)")
    add.add_argument("--db", help="operations database (default: $VOICEBOT_STATE_DIR/operations.db)")
    add.set_defaults(func=cmd_user_add)
    listing = user_actions.add_parser("list", help="list the console users")
    listing.add_argument("--db", help="operations database")
    listing.set_defaults(func=cmd_user_list)

    run = actions.add_parser("run", help="serve the console alone (voicebot serve also starts it)")
    run.add_argument("--config", help="YAML settings file (default: embedded defaults, or $VOICEBOT_CONFIG)")
    run.add_argument("--host", help="address to bind (default: console.host, 127.0.0.1)")
    run.add_argument("--port", type=int, help="port (default: console.port, 8080)")
    run.add_argument("--db", help="operations database")
    run.set_defaults(func=cmd_run)


def _db_path(args: argparse.Namespace) -> Path:
    from dialogue.ops_db import ops_db_path

    return Path(args.db) if args.db else ops_db_path()


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ: run the command again")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_add(args: argparse.Namespace) -> int:
    from dialogue.acd import Acd
    from voicebot.audit import Audit
    from voicebot.console.users import UserStore

    db_path = _db_path(args)
    if args.agent:
        known = [agent.id for agent in Acd(db_path).agents()]
        if args.agent not in known:
            listed = ", ".join(known) or "none yet: `voicebot serve` loads data/agents.yaml"
            raise ConfigError(f"agent {args.agent!r} is not in the agent directory (known: {listed})")
    try:
        user = UserStore(db_path).add(args.name, args.role, _read_password(), args.agent)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    after = {"name": user.name, "role": user.role, "agent_id": user.agent_id}
    Audit(db_path).record("cli", "user_add", f"user:{user.name}", None, after)
    print(f"user {user.name} added ({user.role}{', agent ' + user.agent_id if user.agent_id else ''})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from voicebot.console.users import UserStore

    for user in UserStore(_db_path(args)).all():
        print(f"{user.name}\t{user.role}\t{user.agent_id or ''}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from voicebot.config import load_settings
    from voicebot.console.runner import serve_console
    from voicebot.console.settings import ConsoleSettings

    app_settings = load_settings(args.config)
    settings: ConsoleSettings = getattr(app_settings, "console", ConsoleSettings())
    changes = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    if changes:
        from dataclasses import replace

        settings = replace(settings, **changes)
    db_path = _db_path(args)

    async def run() -> None:
        started = asyncio.Event()
        server = asyncio.create_task(serve_console(settings, db_path, started, app_settings=app_settings))
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait([server, waiting], return_when=asyncio.FIRST_COMPLETED)
        if started.is_set():
            print(f"console at http://{settings.host}:{settings.port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
        waiting.cancel()
        await server

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
