"""RasaRestClient against a fake Rasa (httpx.MockTransport): request shape and reply parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dialogue.rasa_client import RasaRestClient
from voicebot.ports import DialogueContext, DialogueError, Handoff

URL = "http://rasa.test:5005"
CONTEXT = DialogueContext(call_id="call/42", language="fr", language_probability=0.83, caller="+33123456789")

Handler = Callable[[httpx.Request], httpx.Response]


def fake_rasa(
    messages: Any,
    tracker: dict[str, Any] | None = None,
    seen: list[httpx.Request] | None = None,
) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/webhooks/rest/webhook":
            return httpx.Response(200, json=messages)
        if request.url.path.endswith("/tracker"):
            return httpx.Response(200, json=tracker or {})
        return httpx.Response(404, json={"message": "not found"})

    return handle


def client(handler: Handler, token: str | None = "secret") -> RasaRestClient:
    return RasaRestClient(URL, token, timeout_s=1.0, transport=httpx.MockTransport(handler))


async def test_webhook_body_carries_sender_text_and_call_metadata() -> None:
    seen: list[httpx.Request] = []
    async with client(fake_rasa([], seen=seen), token=None) as rasa:
        await rasa.send("bonjour", CONTEXT)
    assert len(seen) == 1
    assert seen[0].method == "POST"
    assert json.loads(seen[0].content) == {
        "sender": "call/42",
        "message": "bonjour",
        "metadata": {"call_id": "call/42", "language": "fr", "language_probability": 0.83, "caller": "+33123456789"},
    }


async def test_texts_are_collected_in_order_and_empty_ones_dropped() -> None:
    messages = [
        {"recipient_id": "call/42", "text": "Hello."},
        {"recipient_id": "call/42", "text": "  "},
        {"recipient_id": "call/42", "image": "http://x/y.png"},
        {"recipient_id": "call/42", "text": "How can I help?"},
    ]
    async with client(fake_rasa(messages), token=None) as rasa:
        reply = await rasa.send("hello", CONTEXT)
    assert reply.texts == ("Hello.", "How can I help?")
    assert reply.handoff is None and reply.hangup is False and reply.intent is None


async def test_handoff_payload_becomes_handoff_with_context_language_and_tracker_slots() -> None:
    messages = [
        {"recipient_id": "call/42", "text": "Please hold on."},
        {"recipient_id": "call/42", "custom": {"handoff": {"queue": "general", "reason": "caller_request"}}},
    ]
    tracker = {
        "latest_message": {"intent": {"name": "request_human", "confidence": 0.97}},
        "slots": {"topic": "passport", "requested_slot": "topic", "session_started_metadata": {"a": 1}, "x": None},
    }
    async with client(fake_rasa(messages, tracker)) as rasa:
        reply = await rasa.send("je veux parler à quelqu'un", CONTEXT)
    assert reply.texts == ("Please hold on.",)
    assert reply.intent == "request_human"
    assert reply.confidence == pytest.approx(0.97)
    assert reply.slots == {"topic": "passport"}
    assert reply.handoff == Handoff(
        queue="general", reason="caller_request", language="fr", summary="", slots={"topic": "passport"}
    )


async def test_handoff_payload_fields_win_over_defaults() -> None:
    payload = {"queue": "civil", "reason": "form", "language": "en", "summary": "wants a passport", "slots": {"a": 1}}
    messages = [{"recipient_id": "c", "custom": {"handoff": payload}}]
    async with client(fake_rasa(messages, {"slots": {"b": 2}})) as rasa:
        reply = await rasa.send("x", CONTEXT)
    assert reply.handoff == Handoff(
        queue="civil", reason="form", language="en", summary="wants a passport", slots={"a": 1}
    )


async def test_hangup_and_language_payloads() -> None:
    messages = [
        {"recipient_id": "c", "text": "Au revoir."},
        {"recipient_id": "c", "custom": {"language": "fr"}},
        {"recipient_id": "c", "custom": {"hangup": True}},
    ]
    async with client(fake_rasa(messages), token=None) as rasa:
        reply = await rasa.send("au revoir", CONTEXT)
    assert reply.hangup is True
    assert reply.language == "fr"
    assert reply.handoff is None


async def test_tracker_is_read_with_token_and_quoted_call_id() -> None:
    seen: list[httpx.Request] = []
    async with client(fake_rasa([], {"latest_message": {"intent": {"name": "greet", "confidence": 1}}}, seen)) as rasa:
        reply = await rasa.send("hi", CONTEXT)
    assert reply.intent == "greet" and reply.confidence == 1.0
    tracker_request = seen[1]
    assert tracker_request.method == "GET"
    assert tracker_request.url.raw_path.decode().startswith("/conversations/call%2F42/tracker?")
    assert tracker_request.url.params["token"] == "secret"
    assert tracker_request.url.params["include_events"] == "AFTER_RESTART"


async def test_intent_comes_from_the_last_user_event_not_the_stale_latest_message() -> None:
    tracker = {
        "latest_message": {"intent": {"name": "case_status", "confidence": 0.99}},  # what Rasa 3.6 shows inside a form
        "events": [
            {"event": "user", "parse_data": {"intent": {"name": "case_status", "confidence": 0.99}}},
            {"event": "user", "parse_data": {"intent": {"name": "affirm", "confidence": 0.93}}},
            {"event": "bot", "text": "Your passport is ready."},
        ],
    }
    async with client(fake_rasa([{"text": "Your passport is ready."}], tracker)) as rasa:
        reply = await rasa.send("yes", CONTEXT)
    assert (reply.intent, reply.confidence) == ("affirm", 0.93)


async def test_without_token_the_tracker_is_not_read() -> None:
    seen: list[httpx.Request] = []
    async with client(fake_rasa([{"text": "hi"}], seen=seen), token=None) as rasa:
        reply = await rasa.send("hi", CONTEXT)
    assert [r.url.path for r in seen] == ["/webhooks/rest/webhook"]
    assert reply.intent is None and reply.slots == {}


@pytest.mark.parametrize(
    ("response", "message_part"),
    [
        (httpx.Response(500, text="boom"), "HTTP 500"),
        (httpx.Response(401, json={}), "auth token"),
        (httpx.Response(200, text="<html>not json</html>"), "malformed JSON"),
        (httpx.Response(200, json={"not": "a list"}), "non-list"),
    ],
)
async def test_bad_answers_raise_dialogue_error_naming_the_url(response: httpx.Response, message_part: str) -> None:
    async with client(lambda request: response) as rasa:
        with pytest.raises(DialogueError) as raised:
            await rasa.send("hello", CONTEXT)
    assert URL in str(raised.value)
    assert message_part in str(raised.value)


async def test_unauthorised_tracker_raises_dialogue_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tracker"):
            return httpx.Response(401, json={"message": "User is not authenticated."})
        return httpx.Response(200, json=[{"text": "hi"}])

    async with client(handle) as rasa:
        with pytest.raises(DialogueError, match="auth token"):
            await rasa.send("hello", CONTEXT)


@pytest.mark.parametrize(
    ("error", "message_part"),
    [
        (httpx.ConnectError("refused"), "not reachable"),
        (httpx.ReadTimeout("slow"), "did not answer"),
    ],
)
async def test_transport_failures_raise_dialogue_error_with_the_fix(error: Exception, message_part: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error

    async with client(handle) as rasa:
        with pytest.raises(DialogueError) as raised:
            await rasa.send("hello", CONTEXT)
    assert message_part in str(raised.value)
    assert URL in str(raised.value)
    assert "make setup" in str(raised.value)


async def test_kb_source_and_kb_miss_payloads() -> None:
    answered = [{"recipient_id": "c", "text": "We open at nine.", "custom": {"kb": {"id": "opening-hours-en"}}}]
    missed = [{"recipient_id": "c", "text": "I have no reliable information.", "custom": {"kb_miss": True}}]
    async with client(fake_rasa(answered), token=None) as rasa:
        reply = await rasa.send("when do you open", CONTEXT)
    assert (reply.kb_id, reply.kb_miss) == ("opening-hours-en", False)
    async with client(fake_rasa(missed), token=None) as rasa:
        reply = await rasa.send("can I park my boat", CONTEXT)
    assert (reply.kb_id, reply.kb_miss) == (None, True)
