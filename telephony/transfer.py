"""Handing a caller to a human: blind (REFER) or attended (brief the agent, then REFER/Replaces).

Attended: the bot calls the agent, speaks a one-sentence summary, then asks the caller's phone to
replace that consult call with its own (REFER with Replaces). If the agent does not answer in time, or
the replace fails, the caller hears an apology and is transferred blind. If the blind transfer fails
too, the caller hears that nobody could be reached and the bot hangs up — never silence.
pj thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from telephony.call_host import CallLink
from telephony.pjsip import BotCall
from voicebot.audio import AudioFormat
from voicebot.playout import Playout
from voicebot.ports import Handoff

if TYPE_CHECKING:
    from telephony.worker import SipWorker

log = logging.getLogger(__name__)

ACCEPTED = 202
BRIEFING_MAX_S = 30.0


@dataclass
class Pending:
    link: CallLink
    handoff: Handoff
    target: str
    kind: str  # "blind" | "consult" | "replace"
    deadline: float
    consult: BotCall | None = None
    consult_port: Any = None
    consult_media: Any = None
    briefing: Playout | None = None
    briefing_ready: bool = False
    on_result: Callable[[bool], None] | None = None  # queue transfers: the ACD learns the outcome, no fallback


class ConsultEvents:
    """Callbacks of the bot's call to the agent."""

    def __init__(self, transfers: Transfers, pending: Pending) -> None:
        self.transfers, self.pending = transfers, pending

    def on_state(self, call: BotCall) -> None:
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.transfers.consult_ended(self.pending, call, info.id, info.lastStatusCode)

    def on_media(self, call: BotCall) -> None:
        self.transfers.consult_media(self.pending, call)

    def on_dtmf(self, call: BotCall, digit: str) -> None:
        pass

    def on_transfer_status(self, call: BotCall, status: int, final: bool) -> None:
        pass


class Transfers:
    def __init__(self, worker: SipWorker) -> None:
        self.worker = worker
        self.pending: dict[str, Pending] = {}

    def start(self, link: CallLink, handoff: Handoff) -> None:
        settings = self.worker.settings
        target, mode = settings.target_for(handoff.queue), settings.mode_for(handoff.queue)
        if link.ended or link.call_id in self.pending:
            return
        if handoff.fixed_number:  # a supervisors' rule names a fixed line (emergency): no queue, no agent choice
            target, mode = handoff.fixed_number, "blind"
        elif mode == "queue":
            self.worker.queue_caller(link, handoff)
            return
        log.info("call %s: %s transfer to %s (queue %s, %s)", link.call_id, mode, target, handoff.queue,
                 handoff.reason)  # fmt: skip
        if mode == "attended":
            self._consult(link, handoff, target)
        else:
            self._blind(link, handoff, target)

    def ring_agent(self, link: CallLink, handoff: Handoff, target: str, timeout_s: float,
                   on_result: Callable[[bool], None]) -> None:  # fmt: skip
        """An attended transfer to the agent the ACD chose; `on_result(False)` when that agent cannot take the
        call (the caller stays in the queue and the next agent is tried), `on_result(True)` once connected."""
        if link.ended or link.call_id in self.pending:
            on_result(False)
            return
        log.info("call %s: ringing agent %s (queue %s)", link.call_id, target, handoff.queue)
        self._consult(link, handoff, target, on_result)
        pending = self.pending.get(link.call_id)
        if pending is not None:
            pending.deadline = time.monotonic() + timeout_s

    def stop_ringing(self, link: CallLink, why: str) -> None:
        """The ACD withdrew the offer (the agent went offline or paused): hang up the agent's leg."""
        pending = self.pending.get(link.call_id)
        if pending is not None and pending.kind == "consult":
            self._failed(link.call_id, why)

    # --- blind -----------------------------------------------------------------------------------

    def _blind(self, link: CallLink, handoff: Handoff, target: str) -> None:
        if link.ended or link.pj_call is None:
            return
        deadline = time.monotonic() + self.worker.settings.agent_answer_timeout_s + 5
        self.pending[link.call_id] = Pending(link, handoff, target, "blind", deadline)
        try:
            link.pj_call.xfer(target, pj.CallOpParam(True))
        except pj.Error as exc:
            self._failed(link.call_id, f"REFER not sent: {exc.info()}")

    def status(self, link: CallLink, status: int, final: bool) -> None:
        pending = self.pending.get(link.call_id)
        if pending is None or pending.kind not in ("blind", "replace"):
            return
        log.info("call %s: transfer progress %d%s", link.call_id, status, " (final)" if final else "")
        if 200 <= status < 300 and status != ACCEPTED:
            self.pending.pop(link.call_id, None)
            self._release_consult(pending, hang_up=False)
            if pending.on_result is not None:
                pending.on_result(True)
            self.worker.hangup(link, "transferred")
        elif status >= 300 or (final and status != ACCEPTED):
            self._failed(link.call_id, f"transfer answered {status}")

    def _failed(self, call_id: str, why: str) -> None:
        pending = self.pending.pop(call_id, None)
        if pending is None:
            return
        log.warning("call %s: %s transfer to %s failed: %s", call_id, pending.kind, pending.target, why)
        self._release_consult(pending, hang_up=True)
        if pending.on_result is not None:
            pending.on_result(False)
            return
        if pending.kind == "blind":
            self.worker.say_then_hangup(pending.link, "transfer_failed")
            return
        link, handoff, target = pending.link, pending.handoff, pending.target
        retry = lambda: self._blind(link, handoff, target)  # noqa: E731
        self.worker.host.say_then(link, "transfer_fallback", retry, self.worker.post)

    # --- attended --------------------------------------------------------------------------------

    def _consult(
        self, link: CallLink, handoff: Handoff, target: str, on_result: Callable[[bool], None] | None = None
    ) -> None:
        deadline = time.monotonic() + self.worker.settings.agent_answer_timeout_s
        pending = Pending(link, handoff, target, "consult", deadline, on_result=on_result)
        self.pending[link.call_id] = pending
        if on_result is None:  # a queued caller hears the queue's announcements and hold music instead
            self.worker.host.say_then(link, "hold", lambda: None, self.worker.post)
        pending.briefing = Playout(AudioFormat(link.rate))
        self.worker.host.submit(self._prepare_briefing(pending))
        consult = BotCall(self.worker.endpoint.account, ConsultEvents(self, pending))
        pending.consult = consult
        try:
            consult.makeCall(target, pj.CallOpParam(True))
        except pj.Error as exc:
            pending.consult = None
            self._failed(link.call_id, f"agent not called: {exc.info()}")
            return
        self.worker.hold_call(consult.getId(), consult)

    async def _prepare_briefing(self, pending: Pending) -> None:
        session = pending.link.session
        assert pending.briefing is not None
        language = pending.handoff.language or "en"
        text = briefing_text(pending.handoff, language)
        try:
            if session is not None:
                voice = session.engines.voices.voice_for(language)
                loop = asyncio.get_running_loop()
                chunks = await loop.run_in_executor(session.engines.tts_executor, lambda: list(voice.synthesize(text)))
                for chunk in chunks:
                    pending.briefing.push(chunk.to_mono().resample(pending.link.rate))
        finally:
            pending.briefing_ready = True

    def consult_media(self, pending: Pending, call: BotCall) -> None:
        if pending.consult_port is not None or self.pending.get(pending.link.call_id) is not pending:
            return
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                port = self.worker.pool.acquire()
                audio = call.getAudioMedia(index)
                port.startTransmit(audio)
                assert pending.briefing is not None
                port.attach(lambda _data: None, pending.briefing.read)
                pending.consult_port, pending.consult_media = port, audio
                pending.deadline = time.monotonic() + BRIEFING_MAX_S  # the agent answered: time to brief
                return

    def consult_ended(self, pending: Pending, call: BotCall, pj_id: int, status: int) -> None:
        self.worker.forget_call(pj_id, call)
        was_consulting = pending.kind == "consult" and self.pending.get(pending.link.call_id) is pending
        pending.consult = None  # breaks the Call -> events -> Pending -> Call cycle (no GC on a foreign thread)
        if was_consulting:
            self._failed(pending.link.call_id, f"agent call ended ({status})")

    def _replace(self, pending: Pending) -> None:
        if pending.link.ended or pending.link.pj_call is None:
            return
        pending.kind = "replace"
        pending.deadline = time.monotonic() + 10
        try:
            pending.link.pj_call.xferReplaces(pending.consult, pj.CallOpParam(True))
        except pj.Error as exc:
            self._failed(pending.link.call_id, f"REFER/Replaces not sent: {exc.info()}")

    def _release_consult(self, pending: Pending, hang_up: bool) -> None:
        port, media = pending.consult_port, pending.consult_media
        if port is not None:
            port.detach()
            with contextlib.suppress(pj.Error):
                port.stopTransmit(media)
            self.worker.pool.release(port)
            pending.consult_port = pending.consult_media = None
        if hang_up and pending.consult is not None:
            with contextlib.suppress(pj.Error):
                pending.consult.hangup(pj.CallOpParam(True))

    # --- timers ----------------------------------------------------------------------------------

    def check(self, now: float) -> None:
        for call_id, pending in list(self.pending.items()):
            if now > pending.deadline:
                self._failed(call_id, "no answer in time")
            elif pending.kind == "consult" and self._briefed(pending):
                self._replace(pending)

    @staticmethod
    def _briefed(pending: Pending) -> bool:
        briefing = pending.briefing
        return (
            pending.consult_port is not None
            and pending.briefing_ready
            and briefing is not None
            and not briefing.is_playing
        )

    def call_ended(self, link: CallLink) -> None:
        pending = self.pending.pop(link.call_id, None)
        if pending is not None:
            self._release_consult(pending, hang_up=pending.kind == "consult")
            if pending.on_result is not None:
                pending.on_result(False)

    def consult_calls(self) -> int:
        return sum(1 for pending in self.pending.values() if pending.consult is not None)

    def clear(self) -> None:
        self.pending.clear()


REASONS = {
    "en": {
        "dtmf_0": "the caller pressed 0",
        "caller_request": "the caller asked for a person",
        "repeated_fallback": "the assistant did not understand the caller",
        "emergency": "the caller reported an emergency",
    },
    "fr": {
        "dtmf_0": "l'appelant a tapé 0",
        "caller_request": "l'appelant a demandé une personne",
        "repeated_fallback": "l'assistant n'a pas compris l'appelant",
        "emergency": "l'appelant signale une urgence",
    },
}


def briefing_text(handoff: Handoff, language: str = "en") -> str:
    """One sentence for the agent, in the caller's language (the agent was chosen for speaking it)."""
    words = REASONS["fr" if language == "fr" else "en"]
    reason = words.get(handoff.reason, handoff.reason.replace("_", " "))
    if language == "fr":
        summary = handoff.summary or f"Appel transmis parce que {reason}."
        return f"Appel de l'assistant vocal, en français. {summary}"
    summary = handoff.summary or f"Handed over because {reason}."
    return f"Call from the voice assistant. {summary}"
