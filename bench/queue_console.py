"""The console's latency for bench/agent_queue.py, as a supervisor's browser sees it: the live page (GET /), the
first Server-Sent Events message of its live stream (GET /events) and the calls page (GET /calls)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field

import httpx

PAGES = ("live page GET /", "live stream /events, first message", "calls page GET /calls")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class ConsoleError(RuntimeError):
    """The console refused the bench's supervisor or answered an error."""


@dataclass
class ConsoleTimes:
    """Milliseconds per page, and the errors met."""

    ms: dict[str, list[float]] = field(default_factory=lambda: {page: [] for page in PAGES})
    errors: list[str] = field(default_factory=list)


class ConsoleProbe:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url, self.user, self.password = url, user, password
        self.client = httpx.AsyncClient(base_url=url, timeout=10.0, follow_redirects=False)

    async def __aenter__(self) -> ConsoleProbe:
        await self.log_in()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.aclose()

    async def log_in(self) -> None:
        form = await self.client.get("/login")
        token = CSRF.search(form.text)
        if token is None:
            raise ConsoleError(f"no CSRF token on {self.url}/login (status {form.status_code})")
        data = {"name": self.user, "password": self.password, "csrf": token.group(1), "next": ""}
        answer = await self.client.post("/login", data=data)
        if answer.status_code != 303:
            raise ConsoleError(f"login as {self.user} answered {answer.status_code}: {answer.text[:200]}")

    async def sample(self, times: ConsoleTimes) -> None:
        """One round: each page once, one after the other."""
        for page, fetch in zip(PAGES, (self._live, self._first_event, self._calls), strict=True):
            started = time.perf_counter()
            try:
                await fetch()
            except (httpx.HTTPError, ConsoleError) as exc:
                times.errors.append(f"{page}: {exc}")
                continue
            times.ms[page].append((time.perf_counter() - started) * 1000)

    async def sample_until(self, stop: asyncio.Event, period_s: float) -> ConsoleTimes:
        times = ConsoleTimes()
        while not stop.is_set():
            await self.sample(times)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s)
        return times

    async def sample_rounds(self, rounds: int, period_s: float) -> ConsoleTimes:
        times = ConsoleTimes()
        for _ in range(rounds):
            await self.sample(times)
            await asyncio.sleep(period_s)
        return times

    async def _live(self) -> None:
        await self._page("/", "Live")

    async def _calls(self) -> None:
        await self._page("/calls", "Calls")

    async def _page(self, path: str, expected: str) -> None:
        page = await self.client.get(path)
        if page.status_code != 200 or expected not in page.text:
            raise ConsoleError(f"GET {path} answered {page.status_code}")

    async def _first_event(self) -> None:
        async with self.client.stream("GET", "/events", headers={"accept": "text/event-stream"}) as stream:
            if stream.status_code != 200:
                raise ConsoleError(f"GET /events answered {stream.status_code}")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    return
        raise ConsoleError("the /events stream ended before its first message")
