"""Service request form (category, location, description -> ticket) and the end-of-call rating."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from dialogue.actions.common import (
    Domain,
    Events,
    LanguageAwareValidation,
    Turn,
    answering,
    current_language,
    dtmf_digits,
    latest_intent,
    latest_text,
    said_phone_number,
)
from dialogue.nlp import find_dates
from dialogue.records import FeedbackStore, TicketStore, normalise_category, parse_rating

REQUEST_SLOTS = ("request_category", "request_location", "request_description")
MIN_FREE_TEXT_LETTERS = 2


def speakable_ticket(number: str) -> str:
    """ "T-000123" -> "T, 0, 0, 0, 1, 2, 3": read back one character at a time."""
    return ", ".join(character for character in number if character.isalnum())


def free_text(tracker: Tracker) -> str | None:
    """The caller's words, when they contain some letters (keys or bare digits are not a location)."""
    if dtmf_digits(tracker) is not None:
        return None
    text = " ".join(latest_text(tracker).split())
    return text if sum(character.isalpha() for character in text) >= MIN_FREE_TEXT_LETTERS else None


class ValidateServiceRequestForm(LanguageAwareValidation):
    def name(self) -> str:
        return "validate_service_request_form"

    async def extract_request_category(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        if not answering(tracker, "request_category", or_form_start=True):
            return {}
        requested = tracker.get_slot("requested_slot")
        category = normalise_category(latest_text(tracker))
        if requested is None:
            return {"request_category": category} if category else {}
        if category is None:
            Turn(dispatcher, tracker, domain).say("utter_category_not_understood")
        return {"request_category": category}

    async def extract_request_location(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        return self._free_text_slot("request_location", dispatcher, tracker, domain)

    async def extract_request_description(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        return self._free_text_slot("request_description", dispatcher, tracker, domain)

    @staticmethod
    def _free_text_slot(
        slot: str, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        if not answering(tracker, slot):
            return {}
        text = free_text(tracker)
        if text is None:
            Turn(dispatcher, tracker, domain).say("utter_words_please")
        return {slot: text}


def ticket_details(tracker: Tracker, language: str) -> dict[str, Any]:
    """What a caller may add without being asked: a number to call back, dates in the description
    ("dark since Monday" -> the date); for the ticket payload."""
    details: dict[str, Any] = {}
    phone = said_phone_number(tracker)
    if phone:
        details["callback_phone"] = phone
    description = str(tracker.get_slot("request_description") or "")
    dates = [found.iso for found in find_dates(description, language, past=True) if found.iso]
    if dates:
        details["dates"] = dates
    return details


class ActionCreateTicket(Action):
    """Stores the report and reads the ticket number back digit by digit."""

    def name(self) -> str:
        return "action_create_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        ticket = TicketStore().create(
            category=str(tracker.get_slot("request_category")),
            location=str(tracker.get_slot("request_location")),
            description=str(tracker.get_slot("request_description")),
            language=turn.language,
            call_id=str(tracker.get_slot("call_id") or tracker.sender_id),
        )
        payload = {"ticket": ticket.number, **ticket_details(tracker, turn.language)}
        turn.say("utter_ticket_created", payload, ticket_spoken=speakable_ticket(ticket.number))
        cleared = [SlotSet(name, None) for name in REQUEST_SLOTS]
        return [*turn.events(), *cleared, SlotSet("ticket_number", ticket.number)]


class ValidateRatingForm(LanguageAwareValidation):
    """The optional 1-5 rating: a number (spoken or keyed) is kept, anything else declines."""

    def name(self) -> str:
        return "validate_rating_form"

    async def extract_rating(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        if not answering(tracker, "rating"):
            return {}
        if latest_intent(tracker) == "deny":
            return {"rating": 0}
        digits = dtmf_digits(tracker)
        rating = parse_rating(digits if digits is not None else latest_text(tracker), current_language(tracker))
        return {"rating": rating if rating is not None else 0}


class ActionFinishCall(Action):
    """Stores a rating when one was given, then says goodbye and hangs up."""

    def name(self) -> str:
        return "action_finish_call"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        rating = int(tracker.get_slot("rating") or 0)
        if 1 <= rating <= 5:
            FeedbackStore().add(str(tracker.get_slot("call_id") or tracker.sender_id), rating, turn.language)
            turn.say("utter_thanks_for_rating")
        turn.say("utter_goodbye")
        return [*turn.events(), SlotSet("rating", None)]
