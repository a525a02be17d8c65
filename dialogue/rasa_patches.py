"""Rasa's command line with two small patches; run it in the Rasa venv instead of `rasa`:

    python -m dialogue.rasa_patches run --enable-api --auth-token ... --endpoints ...

1. Cached action-response validator. Rasa 3.6 checks every custom action's answer with
   `jsonschema.validate(result, schema)`, which re-checks the *schema itself* against the
   meta-schema on every call (~55 ms of CPU per custom action with jsonschema 4.17). The patch
   checks the schema once and keeps the built validator; answers are still validated the same
   way (same schema, same best-match error, same message).
2. Polite failure when the action server cannot be used (down, refusing, HTTP 5xx): instead of
   logging and saying nothing, the bot says `utter_service_unavailable` (an apology and a hand-off
   payload, in the caller's language). Rejections (ActionExecutionRejection, used by forms) are
   untouched. A failing `action_session_start` falls back to Rasa's default one.

Both patches replace one method each on `rasa.core.actions.action.RemoteAction`; `apply()` is
idempotent. Nothing here is imported by the product (Python 3.11): it runs in the Rasa venv.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

UNAVAILABLE_RESPONSE = "utter_service_unavailable"
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _cache_action_response_validator()
    _answer_when_action_server_fails()
    _applied = True


def _cache_action_response_validator() -> None:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)  # once, instead of once per custom action call
    validator = validator_class(schema)

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = validate_action_result


def _answer_when_action_server_fails() -> None:
    from rasa.core.actions.action import (
        ActionExecutionRejection,
        ActionSessionStart,
        RemoteAction,
        create_bot_utterance,
    )
    from rasa.shared.exceptions import RasaException

    run_remote = RemoteAction.run

    async def run(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> list[Any]:
        try:
            return await run_remote(self, output_channel, nlg, tracker, domain)
        except ActionExecutionRejection:
            raise
        except RasaException:
            logger.exception("Custom action '%s' failed; answering %s", self.name(), UNAVAILABLE_RESPONSE)
            if self.name() == "action_session_start":
                return await ActionSessionStart().run(output_channel, nlg, tracker, domain)
            message = await nlg.generate(UNAVAILABLE_RESPONSE, tracker, output_channel.name())
            if not message:
                return []
            return [create_bot_utterance({**message, "utter_action": UNAVAILABLE_RESPONSE})]

    RemoteAction.run = run


def main() -> None:
    apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
