"""Session start, language choice, DTMF keys, small talk, repeat, fallback and hand-off actions."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from dialogue.actions.common import (
    DEFAULT_LANGUAGE,
    DTMF_LANGUAGES,
    SUPPORTED_LANGUAGES,
    Domain,
    Events,
    Turn,
    consecutive_fallbacks,
    dtmf_digits,
    hand_off,
    latest_intent,
    max_fallbacks,
)

# Intents answered by one plain response (in the caller's language).
PLAIN_RESPONSES = {
    "greet": "utter_greet",
    "deny": "utter_anything_else",
    "affirm": "utter_how_can_i_help",
}


class ActionSessionStart(Action):
    """Copies the call metadata (call id, detected language) into slots when a call starts."""

    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        metadata = tracker.get_slot("session_started_metadata") or {}
        language = metadata.get("language")
        events: Events = [SessionStarted()]
        events.append(SlotSet("language", language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE))
        if metadata.get("call_id"):
            events.append(SlotSet("call_id", str(metadata["call_id"])))
        events.append(ActionExecuted("action_listen"))
        return events


class ActionRespond(Action):
    """Greeting, yes/no outside a form: one response, or the language question first."""

    def name(self) -> str:
        return "action_respond"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        if turn.asks_for_language_first():
            turn.say("utter_choose_language")
            return turn.events()
        intent = latest_intent(tracker) or "out_of_scope"
        if intent == "affirm" and tracker.get_slot("human_offered"):
            return hand_off(turn, "caller_request")
        turn.say(PLAIN_RESPONSES.get(intent, "utter_how_can_i_help"))
        return turn.events()


class ActionChooseLanguage(Action):
    """The caller said "français" / "English": confirm in that language."""

    def name(self) -> str:
        return "action_choose_language"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        turn.say("utter_language_set")
        return turn.events()


class ActionHandleDtmf(Action):
    """Keys outside a form: 0 = a person, 1 = French, 2 = English, anything else = the menu again."""

    def name(self) -> str:
        return "action_handle_dtmf"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        digits = dtmf_digits(tracker) or ""
        if digits.startswith("0"):
            return hand_off(turn, "dtmf_0")
        if digits in DTMF_LANGUAGES:
            turn.say("utter_language_set")
        else:
            turn.say("utter_dtmf_unexpected")
        return turn.events()


class ActionHandoff(Action):
    """A person on request, or the emergency queue for sensitive topics."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        if latest_intent(tracker) == "emergency":
            return hand_off(turn, "emergency", queue="emergency", response="utter_handoff_emergency")
        if (dtmf_digits(tracker) or "").startswith("0"):
            return hand_off(turn, "dtmf_0")
        return hand_off(turn, "caller_request")


class ActionFallback(Action):
    """Not understood or out of scope: say so and offer a person; after VOICEBOT_MAX_FALLBACKS such
    turns in a row, hand over."""

    def name(self) -> str:
        return "action_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        if turn.asks_for_language_first():
            turn.say("utter_choose_language")
            return turn.events()
        if consecutive_fallbacks(tracker) >= max_fallbacks():
            return hand_off(turn, "repeated_fallback")
        turn.say("utter_out_of_scope" if latest_intent(tracker) == "out_of_scope" else "utter_default")
        return turn.events(offered_human=True)


class ActionRepeat(Action):
    """Say the last thing the bot said again (text only: no hand-off or hang-up is repeated)."""

    def name(self) -> str:
        return "action_repeat"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        texts = _last_bot_texts(tracker.events)
        if not texts:
            turn.say("utter_how_can_i_help")
        for text in texts:
            turn.say_text(text)
        return [*turn.events(offered_human=bool(tracker.get_slot("human_offered")))]


def _last_bot_texts(events: list[dict[str, Any]]) -> list[str]:
    """The texts of the bot's last turn (between the last two user messages)."""
    texts: list[str] = []
    seen_current_user = False
    for event in reversed(events):
        if event.get("event") == "user":
            if seen_current_user:
                break
            seen_current_user = True
        elif event.get("event") == "bot" and seen_current_user and event.get("text"):
            texts.append(str(event["text"]))
    return list(reversed(texts))
