"""Log output: plain text for people, or one JSON object per line for log collectors, each line carrying the
id of the call it is about.

The call id comes from the record's `call_id` (`extra={"call_id": ...}`, as LogSink passes it) or else from
`current_call_id`, which the SIP worker's CallHost sets in the context its call coroutines and callbacks run in,
so any library logging from inside a call is tagged without knowing about calls.
"""

from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from voicebot.ports import ConfigError

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("voicebot_call_id", default=None)


@dataclass(frozen=True)
class LoggingSettings:
    format: str = "text"  # text, or json: one object per line with ts, level, logger, message, call_id

    def __post_init__(self) -> None:
        check_log_format(self.format)


def check_log_format(fmt: str) -> str:
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"logging.format: {fmt!r} is not a log format; use one of {', '.join(LOG_FORMATS)}")
    return fmt


def call_context(call_id: str) -> contextvars.Context:
    """A copy of the current context in which `current_call_id` is `call_id` (for `context=` arguments)."""
    context = contextvars.copy_context()
    context.run(current_call_id.set, call_id)
    return context


def record_call_id(record: logging.LogRecord) -> str | None:
    """The call a log record is about: its own `call_id`, else the one of the context it was logged in (read
    when formatting, which logging's stream handlers do in the logging thread)."""
    call_id = getattr(record, "call_id", None)
    return str(call_id) if call_id else current_call_id.get()


def utc_timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO-8601 UTC, ms), level, logger, message, call_id when known, exc_info
    (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if call_id := record_call_id(record):
            line["call_id"] = call_id
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _OwnHandler(logging.StreamHandler):
    """The handler configure_logging installs (and replaces when called again)."""


def configure_logging(
    fmt: str = "text",
    level: int | str = logging.INFO,
    *,
    text_format: str = TEXT_FORMAT,
    redact: logging.Filter | None = None,
) -> None:
    """Send the root logger's records to stderr as text (`text_format`) or JSON lines, with personal data
    redacted: by `redact` when given, else by voicebot.redaction's filter (FR+EN PII; spaCy is loaded here and
    its pipelines with the first record). Like logging.basicConfig, it leaves alone a root logger that something
    else configured (a test runner); a second call replaces what the first installed."""
    check_log_format(fmt)
    root = logging.getLogger()
    own = [handler for handler in root.handlers if isinstance(handler, _OwnHandler)]
    if root.handlers and not own:
        return
    for handler in own:
        root.removeHandler(handler)
    handler = _OwnHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text_format))
    root.addHandler(handler)
    root.setLevel(level)
    if redact is not None:
        handler.addFilter(redact)
    else:
        from voicebot.redaction import install_log_redaction

        install_log_redaction(root)  # on the root logger and on its handlers (this one)
        # spaCy announces each pipeline it builds at INFO, through a handler of its own (so twice, once not JSON)
        logging.getLogger("spacy").setLevel(logging.WARNING)
