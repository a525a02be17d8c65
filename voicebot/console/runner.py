"""Running the console: `serve_console` (uvicorn inside an asyncio program, until cancelled) and `ConsoleThread`
(the same on a thread of its own, for synchronous programs such as `voicebot serve` and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from voicebot.config import Settings
from voicebot.console.app import create_app
from voicebot.console.settings import ConsoleSettings
from voicebot.ports import ConfigError

log = logging.getLogger("voicebot.console")


class _EmbeddedServer(uvicorn.Server):
    """Leaves signal handling to whoever runs the console (`voicebot serve` or `voicebot console run`): stopping
    is cancelling `serve_console`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_console(
    settings: ConsoleSettings,
    db_path: Path,
    started: asyncio.Event | None = None,
    *,
    app_settings: Settings | None = None,
) -> None:
    """Serve the console until cancelled; `started` is set once it accepts connections. ConfigError when the
    address cannot be bound."""
    app = create_app(settings, db_path, app_settings=app_settings)
    listener = _bind(settings.host, settings.port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off")
    server = _EmbeddedServer(config)
    app.state.console.stopping = lambda: server.should_exit
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn only offers this flag)
            await asyncio.sleep(0.02)
        log.info("console at http://%s:%d/", settings.host, settings.port)
        if started is not None:
            started.set()
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()


def _bind(host: str, port: int) -> socket.socket:
    """Bound here rather than by uvicorn, whose bind failure is a SystemExit that would end the whole process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"console: cannot listen on {host}:{port} ({exc.strerror}): set console.port or "
            "console.host to a free address"
        ) from None
    return listener


class ConsoleThread:
    """The console served on a daemon thread with its own event loop. `start()` returns once it accepts
    connections (ConfigError if its address cannot be bound); `stop()` closes streams and connections."""

    def __init__(self, settings: ConsoleSettings, db_path: Path, app_settings: Settings | None = None) -> None:
        self.settings = settings
        self.db_path = db_path
        self.app_settings = app_settings
        self.url = f"http://{settings.host}:{settings.port}"
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"the console did not start within {timeout_s:.0f} s")
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout_s: float = 10.0) -> bool:
        """True once the thread has ended (streams closed, port released)."""
        if self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to cancel
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # handed to start(): a bind error must reach the caller, not die here
            self._failure = exc
        finally:
            self._started.set()  # after _failure: start() never misses a failure nor waits in vain
            self._loop.close()

    async def _serve(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(
            serve_console(self.settings, self.db_path, ready, app_settings=self.app_settings)
        )
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([self._task, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if ready.is_set():
            self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
