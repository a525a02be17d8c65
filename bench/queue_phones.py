"""pjsua2 phones for bench/agent_queue.py: tests/support/pj_phone.py processes (callers and agents) whose JSON
event lines are kept with wall-clock times, and the bench's agents, who end each call and press Available.

pj_phone stamps its events with time.monotonic(); CLOCK_MONOTONIC is one clock for the whole machine, so adding
(time.time() - time.monotonic()) read here turns them into epoch seconds comparable with the ACD's times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicebot.config import REPO_ROOT

PHONE = REPO_ROOT / "tests" / "support" / "pj_phone.py"
Event = dict[str, Any]  # a pj_phone line with "at": epoch seconds added


def monotonic_to_epoch() -> float:
    """The offset to add to a time.monotonic() value of any process on this machine to get epoch seconds."""
    return time.time() - time.monotonic()


class PhoneProcess:
    """One pj_phone process; its events are read as they come and can be awaited."""

    def __init__(self, name: str, mode: str, port: int, rtp_port: int, args: list[str], uri: str | None = None):
        self.name, self.mode, self.port = name, mode, port
        self.command = [sys.executable, str(PHONE), mode, *([uri] if uri else []), "--port", str(port),
                        "--rtp-port", str(rtp_port), "--name", name, *args]  # fmt: skip
        self.events: list[Event] = []
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._offset = monotonic_to_epoch()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            event["at"] = event["t"] + self._offset
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, matches: Callable[[Event], bool], timeout_s: float) -> Event | None:
        """The first event (already seen or to come) that matches; None after `timeout_s`."""

        async def first() -> Event:
            async with self._changed:
                while True:
                    found = next((event for event in self.events if matches(event)), None)
                    if found is not None:
                        return found
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(first(), timeout_s)
        except TimeoutError:
            return None

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event["event"] == kind]

    def hang_up(self) -> None:
        """SIGTERM: pj_phone hangs up every call it has, then exits."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def stop(self, grace_s: float = 15.0) -> int | None:
        if self.process is None:
            return None
        self.hang_up()
        try:
            await asyncio.wait_for(self.process.wait(), grace_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return self.process.returncode


@dataclass
class Agent:
    """An agent of the bench: the ACD's id and the phone on its desk."""

    id: str
    phone: PhoneProcess

    @property
    def uri(self) -> str:
        return f"sip:{self.id}@127.0.0.1:{self.phone.port}"


@dataclass
class CallerRun:
    """What the bench saw of one caller (epoch seconds)."""

    phone: PhoneProcess
    agent_id: str | None = None
    transfer_at: float | None = None  # the caller's phone got the bot's REFER (with Replaces)
    connected_at: float | None = None  # the agent's phone took the caller's INVITE/Replaces
    hung_up_at: float | None = None
    finished_at: float | None = None  # the agent pressed "Call finished" on the desk
    errors: list[str] = field(default_factory=list)

    @property
    def key_pressed_at(self) -> float | None:
        sent = self.phone.of("dtmf-sent")
        return sent[0]["at"] if sent else None


async def serve_caller(
    run: CallerRun,
    agents: list[Agent],
    finish: Callable[[str], Any],
    talk_s: float,
    max_wait_s: float,
) -> CallerRun:
    """Wait until the caller is handed to an agent, talk `talk_s`, hang up (the caller), then the agent presses
    "Call finished" on the desk: after the REFER the worker is out of the call, so nothing else frees the agent."""
    refer = await run.phone.wait_for(lambda e: e["event"] == "transfer-request", max_wait_s)
    if refer is None:
        run.errors.append(f"{run.phone.name}: no transfer to an agent within {max_wait_s:.0f} s")
        await run.phone.stop()
        return run
    run.transfer_at = refer["at"]
    agent = next((a for a in agents if f"{a.id}@" in refer["target"]), None)
    if agent is None:
        run.errors.append(f"{run.phone.name}: transferred to an unknown target {refer['target']}")
        await run.phone.stop()
        return run
    run.agent_id = agent.id
    at = refer["at"]
    replaced = await agent.phone.wait_for(lambda e: e["event"] == "replaced" and e["at"] >= at, 30)
    if replaced is None:
        run.errors.append(f"{run.phone.name}: agent {agent.id} never took the caller's INVITE/Replaces")
    else:
        run.connected_at = replaced["at"]
        await asyncio.sleep(talk_s)
    run.hung_up_at = time.time()
    await run.phone.stop()
    await asyncio.to_thread(finish, agent.id)
    run.finished_at = time.time()
    return run
