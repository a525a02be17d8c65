"""When nobody can take the call (out of hours, or the wait is too long): offer to call the caller back.

The number is confirmed on the keypad: 1 for the number the call comes from (read back first), or another number
typed and ended with #. The callback task keeps the call's context for the agent who will return it.
Runs on the CallHost's event loop; keys reach it through `CallLink.key_handler`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telephony.call_host import CallLink

if TYPE_CHECKING:
    from dialogue.acd import Acd

log = logging.getLogger(__name__)

KEY_TIMEOUT_S = 20.0
MIN_NUMBER_DIGITS = 6
CALLER_NUMBER_RE = re.compile(r"^(?:.*<)?(?:sips?|tel):(\+?[0-9]{3,20})(?:[@;>]|$)")

TEXTS = {
    "en": {
        "offer_own": "Nobody can take your call right now. We can call you back on the number ending in {tail}. "
        "Press 1 to confirm, or type another number followed by the hash key.",
        "offer_typed": "Nobody can take your call right now. To be called back, type your phone number followed by "
        "the hash key.",
        "confirmed": "Thank you. We will call you back on {spoken}. Goodbye.",
        "no_number": "I did not get a phone number. Please call again during opening hours. Goodbye.",
    },
    "fr": {
        "offer_own": "Personne ne peut prendre votre appel pour le moment. Nous pouvons vous rappeler au numéro qui se "
        "termine par {tail}. Tapez 1 pour confirmer, ou tapez un autre numéro suivi de la touche dièse.",
        "offer_typed": "Personne ne peut prendre votre appel pour le moment. Pour être rappelé, tapez votre numéro "
        "de téléphone suivi de la touche dièse.",
        "confirmed": "Merci. Nous vous rappellerons au {spoken}. Au revoir.",
        "no_number": "Je n'ai pas reçu de numéro. Merci de rappeler pendant les heures d'ouverture. Au revoir.",
    },
}


def caller_number(caller: str) -> str | None:
    """The digits of the calling number in a From URI ("sip:+33612345678@host"), when it is one."""
    match = CALLER_NUMBER_RE.match(caller.strip())
    return match.group(1) if match and len(match.group(1).lstrip("+")) >= MIN_NUMBER_DIGITS else None


def spoken_digits(number: str) -> str:
    return " ".join(number)


class CallbackOffer:
    def __init__(
        self,
        link: CallLink,
        acd: Acd,
        language: str,
        context: dict[str, Any],
        say: Callable[[str], Awaitable[None]],  # speaks a sentence, returns once it was heard
        stop_speaking: Callable[[], None],
        hang_up: Callable[[], None],
    ) -> None:
        self.link, self.acd, self.context = link, acd, context
        self.texts = TEXTS.get(language, TEXTS["en"])
        self.language = language if language in TEXTS else "en"
        self.say, self.stop_speaking, self.hang_up = say, stop_speaking, hang_up
        self._keys: asyncio.Queue[str] = asyncio.Queue()

    async def run(self) -> int | None:
        """The callback task's id, or None when no number was given. The call is hung up either way."""
        self.link.key_handler = self._keys.put_nowait
        try:
            number = await self._ask_number()
            if number is None:
                await self.say(self.texts["no_number"])
                return None
            task_id = await asyncio.to_thread(self.acd.add_callback, self.link.call_id, number, self.language,
                                              self.context)  # fmt: skip
            log.info("call %s: callback task %d stored", self.link.call_id, task_id)
            await self.say(self.texts["confirmed"].format(spoken=spoken_digits(number)))
            return task_id
        finally:
            self.link.key_handler = None
            self.hang_up()

    async def _ask_number(self) -> str | None:
        own = caller_number(self.link.caller)
        prompt = self.texts["offer_own"].format(tail=spoken_digits(own[-4:])) if own else self.texts["offer_typed"]
        speaking = asyncio.ensure_future(self.say(prompt))
        typed = ""
        while not self.link.ended:
            try:
                key = await asyncio.wait_for(self._keys.get(), KEY_TIMEOUT_S + (0 if speaking.done() else 15))
            except TimeoutError:
                return None
            if not speaking.done():  # a key interrupts the prompt
                speaking.cancel()
                self.stop_speaking()
            if key == "1" and own and not typed:
                return own
            if key == "#":
                return typed if len(typed) >= MIN_NUMBER_DIGITS else None
            if key.isdigit():
                typed += key
        return None
