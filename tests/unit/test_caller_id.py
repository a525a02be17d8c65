"""Who is calling: the From URI of the INVITE (worker) and the number a callback can use (callback offer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.callback_offer import caller_number
from telephony.invite_headers import caller_uri

INVITE = "INVITE sip:voicebot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n{from_line}\r\nCall-ID: x\r\n\r\nv=0"


@pytest.mark.parametrize(
    ("from_line", "expected"),
    [
        ('From: "Ann" <sip:+33612345678@trunk.example;user=phone>;tag=a', "sip:+33612345678@trunk.example;user=phone"),
        ("From: <tel:+441234567890>;tag=1", "tel:+441234567890"),
        ("f: sip:ann@127.0.0.1:5621;tag=9", "sip:ann@127.0.0.1:5621"),
        ("From: Anonymous;tag=9", None),
    ],
)
def test_the_caller_is_the_from_uri(from_line: str, expected: str | None) -> None:
    assert caller_uri(INVITE.format(from_line=from_line)) == expected


def test_a_from_header_in_the_body_is_not_read() -> None:
    assert caller_uri("INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nFrom: <sip:evil@x>\r\n") is None


@pytest.mark.parametrize(
    ("caller", "number"),
    [
        ("sip:+33612345678@trunk.example;user=phone", "+33612345678"),
        ("tel:+441234567890", "+441234567890"),
        ("sip:0612345678@10.0.0.1:5060", "0612345678"),
        ("sip:ann@127.0.0.1:5621", None),
        ("sip:112@trunk", None),  # too short to call back
    ],
)
def test_a_callback_can_use_the_callers_number_only_when_it_is_one(caller: str, number: str | None) -> None:
    assert caller_number(caller) == number


def test_calls_queued_by_a_worker_that_restarts_leave_the_queue_and_get_callbacks(tmp_path: Path) -> None:
    from dialogue.acd import Acd
    from dialogue.agents import load_directory
    from dialogue.state import DATA_DIR
    from telephony.queue_hold import recover_after_restart

    acd = Acd(tmp_path / "operations.db")
    acd.seed(*load_directory(DATA_DIR / "agents.yaml"))
    acd.enqueue("w0-1-aa", "general-en", 0, "en", {"caller": "sip:+33612345678@trunk", "summary": "s"})
    acd.enqueue("w0-2-bb", "general-en", 0, "en", {"caller": "sip:anonymous@trunk"})
    acd.enqueue("w1-1-cc", "general-en", 0, "en", {"caller": "sip:+33700000000@trunk"})

    assert recover_after_restart(acd, "w0") == 2
    assert [call.call_id for call in acd.waiting()] == ["w1-1-cc"]  # another worker's caller keeps its place
    tasks = acd.callbacks()
    assert [(task.call_id, task.number, task.context["reason"]) for task in tasks] == [
        ("w0-1-aa", "+33612345678", "cut_off_by_restart")
    ]
