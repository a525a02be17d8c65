"""DialogueBackend that talks to a Rasa server over its REST channel and HTTP API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from voicebot.ports import DialogueContext, DialogueError, DialogueReply, Handoff

WEBHOOK_PATH = "/webhooks/rest/webhook"
# Slots Rasa keeps for itself; they say nothing about the caller.
INTERNAL_SLOTS = frozenset({"requested_slot", "session_started_metadata"})
FIX_HINT = "start it with `voicebot dialogue serve` or run `make setup`"


class RasaRestClient:
    """One reused httpx.AsyncClient; call `aclose()` (or use `async with`) when done."""

    def __init__(
        self,
        url: str,
        auth_token: str | None,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.auth_token = auth_token
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> RasaRestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, text: str, context: DialogueContext) -> DialogueReply:
        messages = await self._request_json("POST", WEBHOOK_PATH, json=_webhook_body(text, context))
        if not isinstance(messages, list):
            raise DialogueError(f"Rasa at {self.url} answered {WEBHOOK_PATH} with a non-list JSON body")
        texts, payloads = _split_messages(messages)
        intent, confidence, slots = await self._tracker_state(context.call_id)
        language = next((p["language"] for p in payloads if isinstance(p.get("language"), str)), None)
        hangup = any(p.get("hangup") is True for p in payloads)
        kb_id = next((str(p["kb"]["id"]) for p in payloads if isinstance(p.get("kb"), dict) and "id" in p["kb"]), None)
        handoff_payload = next((p["handoff"] for p in payloads if isinstance(p.get("handoff"), dict)), None)
        handoff = None
        if handoff_payload is not None:
            handoff = _handoff(handoff_payload, language or context.language, slots)
        return DialogueReply(
            texts=tuple(texts),
            intent=intent,
            confidence=confidence,
            slots=slots,
            language=language,
            handoff=handoff,
            hangup=hangup,
            kb_id=kb_id,
            kb_miss=any(p.get("kb_miss") is True for p in payloads),
        )

    async def tracker(self, call_id: str, include_events: str = "NONE") -> dict[str, Any]:
        """The conversation tracker from Rasa's HTTP API (needs the auth token)."""
        if self.auth_token is None:
            raise DialogueError(f"Reading trackers from Rasa at {self.url} needs an auth token")
        path = f"/conversations/{quote(call_id, safe='')}/tracker"
        params = {"token": self.auth_token, "include_events": include_events}
        tracker = await self._request_json("GET", path, params=params)
        if not isinstance(tracker, dict):
            raise DialogueError(f"Rasa at {self.url} answered {path} with a non-object JSON body")
        return tracker

    async def _tracker_state(self, call_id: str) -> tuple[str | None, float | None, dict[str, Any]]:
        if self.auth_token is None:
            return None, None, {}
        # `latest_message` stays on the message that opened a form while the form runs (Rasa 3.6 rebuilds
        # it from "applied" events), so the caller's last utterance is read from the events instead.
        tracker = await self.tracker(call_id, include_events="AFTER_RESTART")
        intent = _last_user_intent(tracker)
        confidence = intent.get("confidence")
        slots = {
            name: value
            for name, value in (tracker.get("slots") or {}).items()
            if value is not None and name not in INTERNAL_SLOTS
        }
        return intent.get("name"), float(confidence) if confidence is not None else None, slots

    async def _request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise DialogueError(
                f"Rasa at {self.url} did not answer {path} within {self.timeout_s:g} s — "
                f"check that it is running and not overloaded ({FIX_HINT})"
            ) from error
        except httpx.HTTPError as error:
            raise DialogueError(f"Rasa is not reachable at {self.url} — {FIX_HINT}") from error
        if not response.is_success:
            raise DialogueError(_status_message(self.url, path, response.status_code))
        try:
            return response.json()
        except ValueError as error:
            raise DialogueError(
                f"Rasa at {self.url} answered {path} with malformed JSON — is that a Rasa server?"
            ) from error


def _webhook_body(text: str, context: DialogueContext) -> dict[str, Any]:
    return {
        "sender": context.call_id,
        "message": text,
        "metadata": {
            "call_id": context.call_id,
            "language": context.language,
            "language_probability": context.language_probability,
            "caller": context.caller,
        },
    }


def _split_messages(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Rasa's REST channel answers a list of {"text": ...} and {"custom": {...}} messages."""
    texts: list[str] = []
    payloads: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("text"), str) and message["text"].strip():
            texts.append(message["text"])
        if isinstance(message.get("custom"), dict):
            payloads.append(message["custom"])
    return texts, payloads


def _handoff(payload: dict[str, Any], language: str | None, tracker_slots: dict[str, Any]) -> Handoff:
    slots = payload.get("slots")
    return Handoff(
        queue=str(payload.get("queue") or "default"),
        reason=str(payload.get("reason") or ""),
        language=payload.get("language") or language,
        summary=str(payload.get("summary") or ""),
        slots=dict(slots) if isinstance(slots, dict) else dict(tracker_slots),
    )


def _status_message(url: str, path: str, status: int) -> str:
    if status in (401, 403):
        fix = "check that the auth token matches the one Rasa was started with"
    elif status == 409:
        fix = "Rasa has no model loaded yet — wait for it or run `make setup`"
    else:
        fix = f"see the Rasa server log ({FIX_HINT})"
    return f"Rasa at {url} answered HTTP {status} to {path} — {fix}"


def _last_user_intent(tracker: dict[str, Any]) -> dict[str, Any]:
    for event in reversed(tracker.get("events") or []):
        if event.get("event") == "user":
            return dict((event.get("parse_data") or {}).get("intent") or {})
    return dict((tracker.get("latest_message") or {}).get("intent") or {})
