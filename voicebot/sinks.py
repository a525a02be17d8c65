"""Event sinks: structured log, JSONL file, in-memory list. A failing sink never breaks a call."""

from __future__ import annotations

import json
import logging
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
