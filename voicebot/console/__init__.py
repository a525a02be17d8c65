"""The supervisor/agent web console: live queues, agents, transfer rules, calls, callbacks and the agent desk.

`create_app` (voicebot.console.app), `serve_console` and `ConsoleThread` (voicebot.console.runner) are loaded on
first use: voicebot.config imports ConsoleSettings from here, and the app imports voicebot.config."""

from __future__ import annotations

from typing import Any

from voicebot.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "ConsoleThread", "create_app", "serve_console"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from voicebot.console import app

        return app.create_app
    if name in ("serve_console", "ConsoleThread"):
        from voicebot.console import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'voicebot.console' has no attribute {name!r}")
