"""Answers questions about city services from the knowledge base only (never invented).

Retrieval happens here, at run time, so `voicebot kb import FILE` changes answers without retraining.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from dialogue.actions.common import SUPPORTED_LANGUAGES, Domain, Events, Turn, latest_text
from dialogue.kb import KbMatch, KnowledgeBase
from dialogue.state import DATA_DIR

KB_SEED_DIR = DATA_DIR / "kb"


def find_answer(question: str, language: str) -> KbMatch | None:
    """Best KB match in the caller's language, else in the other one (a caller may mix languages)."""
    knowledge = KnowledgeBase()
    knowledge.ensure_seeded(KB_SEED_DIR)
    others = [other for other in SUPPORTED_LANGUAGES if other != language]
    for candidate in (language, *others):
        matches = knowledge.search(question, candidate, limit=1)
        if matches:
            return matches[0]
    return None


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Domain) -> Events:
        turn = Turn(dispatcher, tracker, domain)
        if turn.asks_for_language_first():
            turn.say("utter_choose_language")
            return turn.events()
        match = find_answer(latest_text(tracker), turn.language)
        if match is None:
            turn.say("utter_faq_unknown", {"kb_miss": True})
            return turn.events(offered_human=True)
        entry = match.entry
        turn.switch_to(entry.language)
        turn.say_text(entry.answer, {"kb": {"id": entry.id, "source": entry.source, "updated": entry.updated}})
        return turn.events()
