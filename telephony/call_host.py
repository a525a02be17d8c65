"""The asyncio side of a SIP worker: one CallSession per answered call, on an event-loop thread.

pjsua2 objects never reach this thread: the session talks to its call through `SipControl`, which posts
commands to the pj thread. Caller audio arrives from pjmedia's clock thread via `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from voicebot.audio import AudioChunk, AudioFormat
from voicebot.call_recorder import CallRecorder, open_recorder, wait_for_recordings
from voicebot.compose import Runtime
from voicebot.logs import call_context, current_call_id
from voicebot.ports import EventSink, Handoff
from voicebot.session import CallSession

log = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]  # runs a function on the pj thread


@dataclass
class CallLink:
    """One call as both threads see it. `pj` fields are touched only on the pj thread."""

    call_id: str
    caller: str
    rate: int
    pj_call: Any = None
    port: Any = None
    media: Any = None
    session: CallSession | None = None
    ended: bool = False  # the SIP call is gone
    key_handler: Callable[[str], None] | None = None  # set while keys answer the queue, not the dialogue (loop)
    pj_state: dict[str, Any] = field(default_factory=dict)


class SipControl:
    """CallControl for a SIP call: the session's transfer and hang-up become pj-thread commands."""

    def __init__(self, link: CallLink, post: Post, on_transfer: Callable[[CallLink, Handoff], None],
                 on_hangup: Callable[[CallLink, str], None]) -> None:  # fmt: skip
        self._link, self._post = link, post
        self._on_transfer, self._on_hangup = on_transfer, on_hangup

    def transfer(self, handoff: Handoff) -> None:
        self._post(lambda: self._on_transfer(self._link, handoff))

    def hangup(self, reason: str) -> None:
        self._post(lambda: self._on_hangup(self._link, reason))


class CallHost:
    def __init__(self, runtime: Runtime, sink: EventSink) -> None:
        self.runtime = runtime
        self.sink = sink
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="calls", daemon=True)
        self._sessions: dict[str, CallSession] = {}
        self._recorders: dict[str, CallRecorder] = {}  # calls being recorded (recording.enabled)

    def start(self, warm_up: bool = True, on_thread_start: Callable[[], None] | None = None) -> None:
        """`on_thread_start` runs first on the loop thread (the worker registers it with pjlib: a SWIG
        destructor collected there must not abort the process)."""
        if on_thread_start is not None:
            self.loop.call_soon(on_thread_start)
        self._thread.start()
        if warm_up:
            self.submit(self.runtime.warm_up(self.rate)).result()

    @property
    def rate(self) -> int:
        return 16000

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def active(self) -> int:
        return len(self._sessions)

    # --- called on the pj thread -----------------------------------------------------------------

    def open_call(self, link: CallLink, control: SipControl, language: str | None = None) -> None:
        self.submit(self._open(link, control, language))

    def caller_hung_up(self, link: CallLink) -> None:
        context = call_context(link.call_id)
        self.loop.call_soon_threadsafe(self._close, link.call_id, "hangup-by-caller", context=context)

    def dtmf(self, link: CallLink, digit: str) -> None:
        self.loop.call_soon_threadsafe(self._key, link, digit, context=call_context(link.call_id))

    def _key(self, link: CallLink, digit: str) -> None:
        if link.key_handler is not None:
            link.key_handler(digit)
        elif link.session is not None:
            link.session.dtmf(digit)

    def say_then(self, link: CallLink, prompt: str, then: Callable[[], None], post: Post) -> None:
        """Play a cached prompt to the caller (after the session ended too), then run `then` on the pj thread."""
        self.submit(self._say_then(link, prompt, then, post))

    def close(self, timeout_s: float = 5.0) -> None:
        async def close_all() -> None:
            closing = [call_context(c).run(self._close, c, "worker-shutdown") for c in list(self._sessions)]
            ended = [task for task in closing if task is not None]
            if ended:  # their CallEnded events reach the records before the process exits
                await asyncio.wait(ended, timeout=timeout_s / 2)
            await self.runtime.aclose()

        try:
            self.submit(close_all()).result(timeout_s)
        except Exception:
            log.exception("closing the call sessions failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        wait_for_recordings(timeout_s)

    # --- on the loop -----------------------------------------------------------------------------

    async def _open(self, link: CallLink, control: SipControl, language: str | None) -> None:
        current_call_id.set(link.call_id)  # log lines of this task and of the tasks it starts name the call
        try:
            await self._start_session(link, control, language)
        except Exception:
            log.exception("call %s: the session could not start: hanging up", link.call_id)
            self._sessions.pop(link.call_id, None)
            control.hangup("session-error")

    async def _start_session(self, link: CallLink, control: SipControl, language: str | None) -> None:
        session = self.runtime.session(link.call_id, AudioFormat(link.rate), control, self.sink, link.caller, language)
        link.session = session
        self._sessions[link.call_id] = session
        loop, rate, context = self.loop, link.rate, call_context(link.call_id)
        recorder = self._recorder(link, session)

        def caller_audio(data: bytes) -> None:  # pjmedia's clock thread
            loop.call_soon_threadsafe(session.feed, AudioChunk(data, rate), context=context)
            if recorder is not None:
                recorder.caller(data)

        port = link.port
        if port is not None and not link.ended:
            port.attach(caller_audio, session.playout.read if recorder is None else recorder.tap(session.playout.read))
        await session.start()
        if link.ended:  # the caller hung up while the session was being built
            self._close(link.call_id, "hangup-by-caller")

    def _recorder(self, link: CallLink, session: CallSession) -> CallRecorder | None:
        """Records the call when `recording.enabled` and its caller hears the recording notice."""
        texts, welcome = self.runtime.prompt_texts, session.options.welcome_prompts
        recorder = open_recorder(self.runtime.settings.recording, texts, link.call_id, AudioFormat(link.rate), welcome)
        if recorder is not None:
            self._recorders[link.call_id] = recorder
        return recorder

    def _close(self, call_id: str, outcome: str) -> asyncio.Task[Any] | None:
        recorder = self._recorders.pop(call_id, None)
        session = self._sessions.pop(call_id, None)
        if recorder is not None:  # encrypted and written on a thread of its own
            recorder.finish(session is not None and session.events.notices_heard.get("recording", False))
        if session is None:
            return None
        # A session the bot already ended (transfer, hang-up) keeps its own outcome; its CallEnded is logged now,
        # when the line is gone (after the queue, for a caller who waited for an agent).
        return self._spawn(session.close(outcome))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        task.add_done_callback(_log_failure)
        return task

    async def _say_then(self, link: CallLink, prompt: str, then: Callable[[], None], post: Post) -> None:
        current_call_id.set(link.call_id)
        session = link.session
        try:
            if session is not None and not link.ended:
                language = session.language.current
                session.playout.push(session.engines.prompts.get(prompt, language))
                await session.playout.mark()
                await asyncio.sleep(0.2)  # the last frames are still in pjmedia's buffers
        finally:
            post(then)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("call task failed", exc_info=task.exception())
