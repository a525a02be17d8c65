"""The case status form: reference number (spoken or keyed), read-back, look-up, answer.

Slots use custom extraction (`extract_*` below) so that the whole user text is searched for a
reference, and so that a request for a person, an emergency or DTMF 0 leaves the form (nothing
is extracted, the form rejects the turn and the rules hand the caller over).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from dialogue.actions.common import (
    Domain,
    Events,
    LanguageAwareValidation,
    Turn,
    answering,
    current_language,
    dtmf_digits,
    hand_off,
    latest_intent,
    latest_text,
)
from dialogue.cases import CaseBackendError, CaseStatus, case_backend_from_env, status_sentence
from dialogue.references import normalise_reference, reference_from_dtmf, speakable_reference

YES_WORDS = frozenset({"yes", "yeah", "yep", "correct", "right", "oui", "exact", "exactement", "ouais", "voilà"})
NO_WORDS = frozenset({"no", "nope", "wrong", "non", "pas"})
MAX_UNKNOWN_RETRIES = 1


def reference_in_message(tracker: Tracker) -> str | None:
    digits = dtmf_digits(tracker)
    if digits is not None:
        return reference_from_dtmf(digits)
    return normalise_reference(latest_text(tracker), current_language(tracker))


def yes_or_no(tracker: Tracker) -> bool | None:
    intent = latest_intent(tracker)
    if intent in ("affirm", "deny"):
        return intent == "affirm"
    words = set(latest_text(tracker).lower().replace(",", " ").replace(".", " ").split())
    if words & YES_WORDS and not words & NO_WORDS:
        return True
    if words & NO_WORDS:
        return False
    return None


def _reference_slots(reference: str | None) -> dict[str, Any]:
    return {"case_reference": reference, "case_confirmed": None}


class ValidateCaseStatusForm(LanguageAwareValidation):
    def name(self) -> str:
        return "validate_case_status_form"

    async def extract_case_reference(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        if not answering(tracker, "case_reference", or_form_start=True):
            return {}
        requested = tracker.get_slot("requested_slot")
        if requested is None and tracker.get_slot("case_reference"):
            return {}
        reference = reference_in_message(tracker)
        if reference is None and requested is None:
            return {}  # the form is starting: it will ask for the number
        if reference is None:
            Turn(dispatcher, tracker, domain).say("utter_reference_not_understood")
        return _reference_slots(reference)

    async def extract_case_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain
    ) -> dict[str, Any]:
        if not answering(tracker, "case_confirmed"):
            return {}
        answer = yes_or_no(tracker)
        corrected = reference_in_message(tracker)
        if answer is True:
            return {"case_confirmed": True}
        if corrected and corrected != tracker.get_slot("case_reference"):
            return _reference_slots(corrected)
        if answer is False:
            return _reference_slots(None)
        return {"case_confirmed": None}


class ActionAskCaseConfirmed(Action):
    """Reads the reference back one character at a time (the form's question for `case_confirmed`)."""

    def name(self) -> str:
        return "action_ask_case_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        reference = str(tracker.get_slot("case_reference") or "")
        turn.say("utter_ask_case_confirmed", case_reference_spoken=speakable_reference(reference, turn.language))
        return turn.events()


class ActionCaseStatus(Action):
    """Looks the confirmed reference up and answers; unknown: one retry, then a person."""

    def name(self) -> str:
        return "action_case_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        reference = str(tracker.get_slot("case_reference") or "")
        try:
            case = case_backend_from_env().lookup(reference)
        except (CaseBackendError, ValueError):  # ValueError: unusable VOICEBOT_CASE_* settings
            return hand_off(turn, "case_backend_error", response="utter_case_backend_error")
        if case is None:
            return self._unknown(turn, reference)
        return self._answer(turn, case)

    @staticmethod
    def _answer(turn: Turn, case: CaseStatus) -> Events:
        payload = {"case": {"reference": case.reference, "status": case.status, "updated": case.updated}}
        turn.say_text(status_sentence(case, turn.language), payload)
        cleared = [SlotSet(name, value) for name, value in _reference_slots(None).items()]
        return [*turn.events(), *cleared, SlotSet("looked_up_case", case.reference), SlotSet("case_attempts", 0)]

    @staticmethod
    def _unknown(turn: Turn, reference: str) -> Events:
        attempts = int(turn.tracker.get_slot("case_attempts") or 0)
        spoken = speakable_reference(reference, turn.language) if reference else ""
        if attempts >= MAX_UNKNOWN_RETRIES:
            return hand_off(turn, "unknown_case", response="utter_case_unknown_handoff")
        turn.say("utter_case_unknown_retry", case_reference_spoken=spoken)
        cleared = [SlotSet(name, value) for name, value in _reference_slots(None).items()]
        return [*turn.events(), *cleared, SlotSet("case_attempts", attempts + 1), FollowupAction("case_status_form")]
