"""Structured logs: one JSON object per line, carrying the call id from `extra` (LogSink) or from the context a
call's coroutines run in; `logging.format` and `configure_logging` as the processes use them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from voicebot import events as ev
from voicebot.config import REPO_ROOT, load_settings
from voicebot.logs import JsonFormatter, call_context, current_call_id
from voicebot.ports import ConfigError
from voicebot.sinks import LogSink

ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """JSON lines of everything logged under `voicebot` (and so of voicebot.call, LogSink's logger)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("voicebot")
    previous = logger.level, logging.getLogger("voicebot.call").level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logging.getLogger("voicebot.call").setLevel(logging.INFO)
    yield Lines(stream)
    logger.removeHandler(handler)
    logger.setLevel(previous[0])
    logging.getLogger("voicebot.call").setLevel(previous[1])


def test_a_line_is_one_json_object_with_time_level_logger_and_message(json_lines: Lines) -> None:
    logging.getLogger("voicebot.test").warning("queue %s is %d long", "général", 3)
    (line,) = json_lines.parsed()
    assert ISO_UTC_MS.match(line["ts"]), line["ts"]
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "voicebot.test", "queue général is 3 long")
    assert "call_id" not in line and "exc_info" not in line  # outside any call, nothing invented


def test_the_traceback_travels_inside_the_line(json_lines: Lines) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("voicebot.test").exception("the dialogue failed")
    (line,) = json_lines.parsed()
    assert line["message"] == "the dialogue failed"
    assert line["exc_info"].startswith("Traceback") and line["exc_info"].endswith("ValueError: boom")


def test_log_sink_lines_carry_the_call_id_of_their_event(json_lines: Lines) -> None:
    # the event's own id wins over the context's
    call_context("w0-other").run(LogSink().emit, ev.CallStarted("w0-17", 0.0, language="fr"))
    (line,) = json_lines.parsed()
    assert line["call_id"] == "w0-17"
    assert json.loads(line["message"])["event"] == "CallStarted"


def test_lines_logged_inside_a_call_context_carry_its_id_and_calls_do_not_mix(json_lines: Lines) -> None:
    log = logging.getLogger("voicebot.test")

    async def one_turn(step: asyncio.Event, name: str) -> None:
        log.info("%s: before waiting", name)
        await step.wait()
        await asyncio.sleep(0)  # the other call runs in between
        log.info("%s: after waiting", name)

    async def two_calls() -> None:
        loop = asyncio.get_running_loop()
        step = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        def start(call_id: str) -> None:
            tasks.append(loop.create_task(one_turn(step, call_id)))

        # As CallHost does: a call's callbacks run in its context, and the tasks they start inherit it.
        for call_id in ("w1-1", "w1-2"):
            loop.call_soon(start, call_id, context=call_context(call_id))
        await asyncio.sleep(0.01)
        log.info("between calls")
        step.set()
        await asyncio.gather(*tasks)

    asyncio.run(two_calls())
    lines = json_lines.parsed()
    by_message = {line["message"]: line.get("call_id") for line in lines}
    assert by_message == {
        "w1-1: before waiting": "w1-1",
        "w1-2: before waiting": "w1-2",
        "w1-1: after waiting": "w1-1",
        "w1-2: after waiting": "w1-2",
        "between calls": None,
    }
    assert current_call_id.get() is None  # nothing leaked into the caller's context


def test_logging_format_setting_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text("logging:\n  format: json\n")
    assert load_settings(config).logging.format == "json"
    assert load_settings().logging.format == "text"
    config.write_text("logging:\n  format: xml\n")
    with pytest.raises(ConfigError, match=r"logging.format: 'xml' is not a log format; use one of text, json"):
        load_settings(config)


CONFIGURED = """
import logging, sys
from voicebot.logs import call_context, configure_logging

class Tag(logging.Filter):
    def filter(self, record):
        record.msg = str(record.msg).replace("06 12 34 56 78", "<number>")
        return True

fmt, redaction = sys.argv[1], sys.argv[2]
if redaction == "tag":
    configure_logging("text", redact=Tag())
    configure_logging(fmt, redact=Tag())  # replaces the first: one line per record
else:
    configure_logging(fmt)
log = logging.getLogger("voicebot.test")
log.debug("not shown at INFO")
call_context("w2-5").run(log.info, "caller gave 06 12 34 56 78")
logging.getLogger("voicebot.call").info("event", extra={"call_id": "w2-6"})
"""


def run_configured(fmt: str, redaction: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", CONFIGURED, fmt, redaction], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)  # fmt: skip
    return result.stderr.splitlines()


def test_configure_logging_writes_json_lines_to_stderr_with_personal_data_redacted() -> None:
    lines = [json.loads(line) for line in run_configured("json", "default")]
    assert [(line["message"], line.get("call_id")) for line in lines] == [
        ("caller gave [PHONE]", "w2-5"),
        ("event", "w2-6"),
    ]


def test_configure_logging_text_keeps_the_plain_format_and_takes_another_filter() -> None:
    assert run_configured("text", "tag") == ["INFO voicebot.test: caller gave <number>", "INFO voicebot.call: event"]
