"""Event sinks: structured log, JSONL file, in-memory list. A failing sink never breaks a call."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from voicebot.events import CallEvent
from voicebot.ports import EventSink

log = logging.getLogger("voicebot.call")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def event_json(event: CallEvent) -> str:
    return json.dumps(event.to_dict(), default=_json_default, ensure_ascii=False)


class LogSink:
    def emit(self, event: CallEvent) -> None:
        if log.isEnabledFor(logging.INFO):  # the JSON is built only when it is logged
            log.info("%s", event_json(event), extra={"call_id": event.call_id})


class JsonlSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def emit(self, event: CallEvent) -> None:
        if self._file is None:
            return
        self._file.write(event_json(event) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


Redact = Callable[[str, str | None], str]


def redacted_json(event: CallEvent, redact: Redact) -> str:
    """The event as JSON with every text in it redacted (numbers and flags as they are)."""
    language = getattr(event, "language", None)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, language if isinstance(language, str) else None)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(event.to_dict()), default=_json_default, ensure_ascii=False)


class RedactedJsonlSink:
    """Appends each event, redacted, to a JSONL file from a thread of its own: the call loop only enqueues."""

    def __init__(self, path: Path, redact: Redact, max_pending: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.redact = path, redact
        self._queue: queue.Queue[CallEvent | None] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._write, name="events-jsonl", daemon=True)
        self._thread.start()

    def emit(self, event: CallEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("events file %s: writer behind, event %s of call %s dropped", self.path, event.kind,
                        event.call_id)  # fmt: skip

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    def _write(self) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            while (event := self._queue.get()) is not None:
                try:
                    file.write(redacted_json(event, self.redact) + "\n")
                except Exception:
                    log.exception("events file %s: event %s not written", self.path, event.kind)
                if self._queue.empty():
                    file.flush()


class MemorySink:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[CallEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class FanOut:
    """Delivers each event to every sink; a sink that raises is logged and skipped."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks

    def emit(self, event: CallEvent) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:
                log.exception("event sink %s failed on %s", type(sink).__name__, event.kind)
