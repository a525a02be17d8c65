"""After each caller turn, the supervisors' transfer rules may send the caller to a human (or elsewhere)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from voicebot.ports import DialogueReply, TransferRouter, TurnNote

log = logging.getLogger(__name__)


class TurnRouting:
    """Keeps the call's turns and asks the router, which may add, redirect or keep the dialogue's handoff."""

    def __init__(self, call_id: str, caller: str | None, router: TransferRouter | None) -> None:
        self.call_id, self.caller, self.router = call_id, caller, router
        self.notes: list[TurnNote] = []

    async def apply(self, note: TurnNote, reply: DialogueReply) -> DialogueReply:
        self.notes.append(note)
        if self.router is None:
            return reply
        try:
            handoff = await asyncio.to_thread(
                self.router.route, self.call_id, self.caller, tuple(self.notes), reply.handoff
            )
        except Exception:  # the rules are an overlay: when they fail, the dialogue's own decision stands
            log.exception("call %s: the transfer rules failed; keeping the dialogue's decision", self.call_id)
            return reply
        if handoff is None or handoff == reply.handoff:
            return reply
        log.info("call %s: rule %s -> %s", self.call_id, handoff.rule, handoff.fixed_number or handoff.queue)
        texts = reply.texts if reply.handoff is not None else ()
        if handoff.announcement:
            texts = (handoff.announcement,)
        return dataclasses.replace(reply, texts=texts, handoff=handoff, hangup=False)


def note_for(turn: int, text: str, keys: str | None, language: str, probability: float | None,
             reply: DialogueReply) -> TurnNote:  # fmt: skip
    return TurnNote(
        turn=turn,
        text="" if keys is not None else text,
        language=language,
        language_probability=probability,
        intent=reply.intent,
        confidence=reply.confidence,
        dtmf=keys,
        handoff_reason=reply.handoff.reason if reply.handoff is not None else None,
    )
