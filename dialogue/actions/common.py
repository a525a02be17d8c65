"""What every custom action shares: the caller's language, rendering responses, hand-offs.

Runs in the Rasa venv (Python 3.10, rasa-sdk); imports nothing from voicebot.
Responses live in domain.yml with one variant per language (`condition` on the `language` slot).
Rasa renders a response with the slots as they were *before* the action ran, so an action that
changes the language in the same turn renders the text itself (see `render`).
"""

from __future__ import annotations

import os
import string
from abc import abstractmethod
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from dialogue.nlp import find_phone_numbers

SUPPORTED_LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LANGUAGE_CONFIDENCE = 0.6
DEFAULT_MAX_FALLBACKS = 2
# Intents that leave a form at once (the form's extraction ignores them, the rules take over).
INTERRUPTING_INTENTS = frozenset({"request_human", "emergency"})
FALLBACK_ACTION = "action_fallback"
SPOKEN_LANGUAGE_NAMES = {
    "fr": ("franç", "francais", "french", "français"),
    "en": ("english", "anglais", "inglés", "ingles"),
}
DTMF_LANGUAGES = {"1": "fr", "2": "en"}

Events = list[dict[str, Any]]
Domain = dict[str, Any]


def max_fallbacks() -> int:
    """`VOICEBOT_MAX_FALLBACKS` (default 2): misunderstood turns in a row before a person takes over."""
    try:
        return max(1, int(os.environ.get("VOICEBOT_MAX_FALLBACKS", DEFAULT_MAX_FALLBACKS)))
    except ValueError:
        return DEFAULT_MAX_FALLBACKS


# --- reading the tracker ------------------------------------------------------------------------


def latest_user_event(tracker: Tracker) -> dict[str, Any]:
    return next((event for event in reversed(tracker.events) if event.get("event") == "user"), {})


def latest_metadata(tracker: Tracker) -> dict[str, Any]:
    """The call metadata voicebot sends with every message (it is on the `user` event, not in parse_data)."""
    metadata = latest_user_event(tracker).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def latest_intent(tracker: Tracker) -> str | None:
    intent = (tracker.latest_message or {}).get("intent") or {}
    name = intent.get("name")
    return str(name) if name else None


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    value = next(tracker.get_latest_entity_values(entity), None)
    return None if value is None else str(value)


def user_turns_in_session(tracker: Tracker) -> int:
    turns = 0
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            break
        turns += event.get("event") == "user"
    return turns


def dtmf_digits(tracker: Tracker) -> str | None:
    """The keys pressed, when the latest message is voicebot's `/dtmf{"digits": "..."}`."""
    if latest_intent(tracker) != "dtmf":
        return None
    return latest_entity(tracker, "digits")


def session_texts(tracker: Tracker) -> list[str]:
    """What the caller said in this session, oldest first (keys pressed, "/dtmf{...}", left out)."""
    texts: list[str] = []
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            break
        text = str(event.get("text") or "") if event.get("event") == "user" else ""
        if text and not text.startswith("/"):
            texts.append(text)
    return texts[::-1]


def said_phone_number(tracker: Tracker) -> str | None:
    """The last phone number the caller read out in this session ("call me back on 06 12 34 56 78")."""
    language = current_language(tracker)
    for text in reversed(session_texts(tracker)):
        numbers = find_phone_numbers(text, language)
        if numbers:
            return numbers[-1]
    return None


def is_interruption(tracker: Tracker) -> bool:
    """True when a form must step aside: a request for a person, an emergency, or DTMF 0."""
    return latest_intent(tracker) in INTERRUPTING_INTENTS or (dtmf_digits(tracker) or "").startswith("0")


def answering(tracker: Tracker, slot: str, or_form_start: bool = False) -> bool:
    """True when this message answers the form's question for `slot` (or, with `or_form_start`, opens the
    form and may already carry the value) and is not an interruption."""
    requested = tracker.get_slot("requested_slot")
    asked = requested == slot or (or_form_start and requested is None)
    return asked and not is_interruption(tracker)


def consecutive_fallbacks(tracker: Tracker) -> int:
    """Turns in a row answered by the fallback action, counting the one being answered now."""
    first_actions: list[str | None] = []
    for event in tracker.events:
        if event.get("event") == "user":
            first_actions.append(None)
        elif event.get("event") == "action" and first_actions and first_actions[-1] is None:
            name = event.get("name")
            if name != "action_listen":
                first_actions[-1] = name
    count = 1
    for name in reversed(first_actions[:-1]):
        if name != FALLBACK_ACTION:
            break
        count += 1
    return count


# --- language -----------------------------------------------------------------------------------


def spoken_language_choice(text: str) -> str | None:
    lowered = text.lower()
    found = [language for language, words in SPOKEN_LANGUAGE_NAMES.items() if any(w in lowered for w in words)]
    return found[0] if len(found) == 1 else None


def confident_language(metadata: dict[str, Any]) -> str | None:
    language = metadata.get("language")
    try:
        probability = float(metadata.get("language_probability") or 0.0)
    except (TypeError, ValueError):
        return None
    if language in SUPPORTED_LANGUAGES and probability >= LANGUAGE_CONFIDENCE:
        return str(language)
    return None


def language_is_uncertain(metadata: dict[str, Any]) -> bool:
    """Speech-based language ID below the threshold (no probability at all counts as certain: typed text)."""
    probability = metadata.get("language_probability")
    if probability is None:
        return False
    try:
        return float(probability) < LANGUAGE_CONFIDENCE
    except (TypeError, ValueError):
        return True


def current_language(tracker: Tracker) -> str:
    language = tracker.get_slot("language")
    return language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


def language_for_turn(tracker: Tracker) -> str:
    """The language to answer in: an explicit choice, else a confident detection, else the slot."""
    if latest_intent(tracker) == "choose_language":
        chosen = spoken_language_choice(latest_text(tracker))
        if chosen:
            return chosen
    digits = dtmf_digits(tracker)
    if digits in DTMF_LANGUAGES and tracker.active_loop_name is None:
        return DTMF_LANGUAGES[digits]
    return confident_language(latest_metadata(tracker)) or current_language(tracker)


# --- responses ----------------------------------------------------------------------------------


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(domain: Domain, response: str, language: str, **fill: Any) -> tuple[str, dict[str, Any]]:
    """The text and custom payload of a domain response in `language` (default variant otherwise)."""
    variants = (domain.get("responses") or {}).get(response) or []
    chosen = next((v for v in variants if _variant_language(v) == language), None)
    chosen = chosen or next((v for v in variants if not v.get("condition")), None) or {"text": response}
    text = string.Formatter().vformat(str(chosen.get("text") or ""), (), _Blank(fill))
    custom = chosen.get("custom")
    return text, dict(custom) if isinstance(custom, dict) else {}


def _variant_language(variant: dict[str, Any]) -> str | None:
    for condition in variant.get("condition") or []:
        if condition.get("type") == "slot" and condition.get("name") == "language":
            return str(condition.get("value"))
    return None


class Turn:
    """One bot turn: decides the language, says responses in it, and announces a language change once."""

    def __init__(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> None:
        self.dispatcher = dispatcher
        self.tracker = tracker
        self.domain = domain
        self.previous_language = current_language(tracker)
        self.language = language_for_turn(tracker)
        self._announce = self.language != self.previous_language

    def switch_to(self, language: str) -> None:
        self._announce = self._announce or language != self.language
        self.language = language

    def say(self, response: str, custom: dict[str, Any] | None = None, **fill: Any) -> str:
        text, payload = render(self.domain, response, self.language, **fill)
        self.say_text(text, {**payload, **(custom or {})})
        return text

    def say_text(self, text: str, custom: dict[str, Any] | None = None) -> None:
        payload = dict(custom or {})
        if self._announce:
            payload["language"] = self.language
            self._announce = False
        self.dispatcher.utter_message(text=text or None, json_message=payload or None)

    def events(self, offered_human: bool = False) -> Events:
        events = [SlotSet("human_offered", offered_human)]
        if self.language != self.previous_language:
            events.append(SlotSet("language", self.language))
        return events

    def asks_for_language_first(self) -> bool:
        """First turn of the call with an unsure language: ask the bilingual question instead of answering."""
        return (
            user_turns_in_session(self.tracker) <= 1
            and language_is_uncertain(latest_metadata(self.tracker))
            and latest_intent(self.tracker) not in {"choose_language", "dtmf", *INTERRUPTING_INTENTS}
        )


# --- hand-off -----------------------------------------------------------------------------------

HANDOFF_SLOTS = (
    "case_reference",
    "looked_up_case",
    "request_category",
    "request_location",
    "request_description",
    "ticket_number",
)
TOPICS = {
    "faq": "a question about city services",
    "case_status": "the status of a case",
    "service_request": "reporting a problem",
    "emergency": "an emergency",
    "request_human": "speaking to a person",
}


REASON_WORDS = {
    "dtmf_0": "the caller pressed 0",
    "caller_request": "the caller asked for a person",
    "repeated_fallback": "the assistant did not understand the caller",
    "emergency": "the caller reported an emergency",
    "unknown_case": "the case number was not found",
}


def handoff_summary(tracker: Tracker, reason: str, language: str) -> str:
    topic = _latest_topic(tracker)
    because = REASON_WORDS.get(reason, reason.replace("_", " "))
    parts = [f"Caller ({language}) handed over because {because}"]
    if topic:
        parts.append(f"about {topic}")
    case = tracker.get_slot("case_reference") or tracker.get_slot("looked_up_case")
    if case:
        parts.append(f"case {case}")
    if tracker.get_slot("request_category"):
        parts.append(f"report category {tracker.get_slot('request_category')}")
    return ", ".join(parts) + "."


def _latest_topic(tracker: Tracker) -> str | None:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if name in TOPICS and name not in INTERRUPTING_INTENTS:
                return TOPICS[name]
    return None


def hand_off(turn: Turn, reason: str, queue: str = "general", response: str = "utter_handoff") -> Events:
    """Say the transfer message with the hand-off payload, and leave any active form."""
    tracker = turn.tracker
    slots = {name: tracker.get_slot(name) for name in HANDOFF_SLOTS if tracker.get_slot(name) is not None}
    phone = said_phone_number(tracker)
    if phone:
        slots["callback_phone"] = phone
    handoff = {
        "queue": queue,
        "reason": reason,
        "language": turn.language,
        "summary": handoff_summary(tracker, reason, turn.language),
        "slots": {**slots, "language": turn.language, "call_id": tracker.get_slot("call_id")},
    }
    turn.say(response, {"handoff": handoff})
    return [*turn.events(), ActiveLoop(None), SlotSet("requested_slot", None)]


class LanguageAwareValidation(FormValidationAction):
    """A form validation action that also follows the caller's language each turn (and announces a change)."""

    @abstractmethod
    def name(self) -> str: ...  # abstract, so that the action server does not register this base class

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        events = list(await super().run(dispatcher, tracker, domain))
        extracted = any(event.get("event") == "slot" and event.get("name") != "requested_slot" for event in events)
        if not extracted:
            return events  # leave the rejection to Rasa: the rules answer this turn
        turn = Turn(dispatcher, tracker, domain)
        if turn.language == turn.previous_language:
            return events
        turn.say_text("")
        return [SlotSet("language", turn.language), *events]
