"""A caller waiting in the agent queue: position and estimated wait announced in their language, hold music in
between, the agent the ACD picks rung (attended), the next one tried when it does not answer.

Runs on the CallHost's event loop; ACD calls (SQLite) go to a thread, pj work is posted to the pj thread by `ring`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from telephony.call_host import CallLink
from telephony.callback_offer import CallbackOffer, caller_number
from voicebot import events as ev
from voicebot.audio import AudioChunk
from voicebot.emitter import Emitter
from voicebot.ports import EventSink, Handoff, TurnNote
from voicebot.redaction import Redactor

if TYPE_CHECKING:
    from dialogue.acd import Acd, Offer

log = logging.getLogger(__name__)

RingAgent = Callable[[CallLink, Handoff, str, float, Callable[[bool], None]], None]
StopRinging = Callable[[CallLink, str], None]
POLL_S = 0.5
ANNOUNCE_EVERY_S = 30.0
MUSIC_LOW_WATER_S = 0.5


class QueueHold:
    def __init__(
        self,
        link: CallLink,
        handoff: Handoff,
        acd: Acd,
        ring: RingAgent,
        stop_ringing: StopRinging,
        hang_up: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        announce_every_s: float = ANNOUNCE_EVERY_S,
        sink: EventSink | None = None,
    ) -> None:
        self.link, self.handoff, self.acd = link, handoff, acd
        self.ring, self.stop_ringing, self.hang_up = ring, stop_ringing, hang_up
        self.clock, self.announce_every_s = clock, announce_every_s
        self.language = handoff.language or "en"
        self.connected = False
        self.outcome = "abandoned"  # what the call records say when the wait ends
        self.agent: str | None = None
        self._emit = _call_emitter(link, sink)
        self._queue: str | None = None
        self._announced: tuple[int, int] | None = None
        self._announced_at = -math.inf
        # Synthesized aside: the loop keeps polling, so an offer is not left waiting for Piper (seconds when loaded).
        self._announcement: asyncio.Task[None] | None = None

    async def run(self) -> None:
        call_id = self.link.call_id
        try:
            if self.handoff.callback:  # a rule (out of hours, long wait) offers a callback instead of the queue
                await self._offer_callback()
                return
            entered = self.clock()
            try:
                await asyncio.to_thread(self._enqueue)
                await self._wait_for_agent()
            except Exception as exc:
                self.outcome = "failed"
                if self._emit is not None:
                    self._emit(ev.CallError, stage="queue", error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                self._record_wait(self.clock() - entered)
        except Exception:
            log.exception("call %s: queue hold failed", call_id)
            raise
        finally:
            self._stop_announcing()
            if not self.connected:
                await self._leave_queue()  # a caller who hangs up leaves at once

    async def _leave_queue(self) -> None:
        """Takes the call out of the queue. If the queue's database is failing (the reason we may be here), keeps
        trying in the background: a call left "waiting" would be offered to an agent whose phone never rings."""
        try:
            await asyncio.to_thread(self.acd.call_ended, self.link.call_id)
        except Exception as exc:
            log.error("call %s: could not leave the queue (%s): retrying in the background", self.link.call_id, exc)
            retry = asyncio.get_running_loop().create_task(_leave_queue_later(self.acd, self.link.call_id))
            _BACKGROUND.add(retry)
            retry.add_done_callback(_BACKGROUND.discard)

    async def _wait_for_agent(self) -> None:
        call_id = self.link.call_id
        while not self.link.ended and not self.connected:
            offer = await asyncio.to_thread(self._poll)
            if offer is not None:
                await self._try_agent(offer)
                continue
            if await asyncio.to_thread(self._overdue):
                self._stop_announcing()
                await asyncio.to_thread(self.acd.call_ended, call_id)
                self.outcome = "callback"
                await self._offer_callback()
                return
            await self._keep_caller_company()
            await asyncio.sleep(POLL_S)

    def _record_wait(self, wait_s: float) -> None:
        if self._emit is not None:
            queue = self._queue or self.handoff.queue
            self._emit(ev.QueueLeft, queue=queue, outcome=self.outcome, agent=self.agent, wait_s=round(wait_s, 3))

    def _context(self) -> dict[str, Any]:
        """What the agent's screen-pop shows; what the caller said is redacted before it is stored."""
        handoff, session = self.handoff, self.link.session
        notes = session.routing.notes if session is not None else ()
        language = self.language
        return {
            "reason": handoff.reason,
            "rule": handoff.rule,
            "summary": _REDACTOR.redact(handoff.summary, language),
            "slots": {k: _redact_slot(k, v, language) for k, v in handoff.slots.items()},
            # While the caller waits, so that a restarted worker can still leave a callback task; the ACD drops it
            # from the context when the call leaves the queue (the number stays only in a callback task).
            "caller": self.link.caller,
            "case_reference": handoff.slots.get("case_reference"),
            "transcript": [_turn_line(n, language) for n in notes],
            "intent": next((n.intent for n in reversed(notes) if n.intent), None),
        }

    def _enqueue(self) -> None:
        handoff = self.handoff
        queue = self._queue_name(handoff.queue)
        self.acd.enqueue(self.link.call_id, queue, handoff.priority, self.language, self._context())
        self._queue = queue
        if self._emit is not None:
            self._emit(ev.QueueJoined, queue=queue)
        log.info("call %s: queued in %s (priority %d)", self.link.call_id, queue, handoff.priority)

    def _queue_name(self, wanted: str) -> str:
        """The dialogue names a kind of queue ("general"); the ACD has one per language ("general-fr")."""
        queues = {queue.name: queue for queue in self.acd.queues()}
        for name in (wanted, f"{wanted}-{self.language}", f"general-{self.language}"):
            if name in queues:
                return name
        same_language = [name for name, queue in queues.items() if queue.language == self.language]
        return (same_language or sorted(queues))[0]

    def _overdue(self) -> bool:
        return any(call.call_id == self.link.call_id for call in self.acd.overdue())

    async def _offer_callback(self) -> None:
        context = await asyncio.to_thread(self._context)  # redaction: kept off the call loop
        offer = CallbackOffer(self.link, self.acd, self.language, context, self._speak, self._stop_speaking,
                              self.hang_up)  # fmt: skip
        await offer.run()

    def _poll(self) -> Offer | None:
        self.acd.tick()
        self.acd.dispatch()
        return self.acd.offer_for(self.link.call_id)

    async def _try_agent(self, offer: Offer) -> None:
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bool] = loop.create_future()

        def settle(ok: bool) -> None:
            if not answered.done():
                answered.set_result(ok)

        def on_result(ok: bool) -> None:  # pj thread
            loop.call_soon_threadsafe(settle, ok)

        log.info("call %s: offered to agent %s (%s)", self.link.call_id, offer.agent_id, offer.sip_uri)
        timeout_s = await asyncio.to_thread(self.acd.ring_timeout_s, offer.queue)
        self.ring(self.link, self.handoff, offer.sip_uri, timeout_s, on_result)
        withdrawn = False
        while not answered.done():
            await self._keep_caller_company(announce=False)
            await asyncio.wait({answered}, timeout=POLL_S)
            if not withdrawn and not answered.done():
                withdrawn = not await asyncio.to_thread(self.acd.is_offered, self.link.call_id, offer.agent_id)
                if withdrawn:
                    self.stop_ringing(self.link, "the agent is no longer available")
        if answered.result():
            self.connected = True
            self.outcome, self.agent = "connected", offer.agent_id
            await asyncio.to_thread(self.acd.connected, self.link.call_id, offer.agent_id)
        elif not self.link.ended:
            log.info("call %s: agent %s did not take the call; trying the next", self.link.call_id, offer.agent_id)
            await asyncio.to_thread(self.acd.ring_failed, self.link.call_id, offer.agent_id)

    async def _keep_caller_company(self, announce: bool = True) -> None:
        session = self.link.session
        if session is None or self.link.ended:
            return
        if announce and (self._announcement is None or self._announcement.done()):
            position = await asyncio.to_thread(self.acd.position, self.link.call_id)
            wait = await asyncio.to_thread(self.acd.estimated_wait_s, self.link.call_id)
            if position is not None and self._announcement_due(position, wait):
                self._announcement = asyncio.create_task(self._announce(position, wait))
                return
        if session.playout.queued_s < MUSIC_LOW_WATER_S:
            session.playout.push(hold_music(session.playout.format.rate))

    def _announcement_due(self, position: int, wait_s: float) -> bool:
        key = (position, wait_minutes(wait_s))
        due = key != self._announced or self.clock() - self._announced_at >= self.announce_every_s
        if due:
            self._announced, self._announced_at = key, self.clock()
        return due

    async def _announce(self, position: int, wait_s: float) -> None:
        text = position_announcement(self.language, position, wait_s)
        try:
            await self._push_speech(text)
        except Exception:
            log.exception("call %s: announcement %r failed", self.link.call_id, text)
            return
        log.info("call %s: announced %r", self.link.call_id, text)

    def _stop_announcing(self) -> None:
        if self._announcement is not None:
            self._announcement.cancel()

    async def _push_speech(self, text: str) -> None:
        session = self.link.session
        if session is None or self.link.ended:
            return
        voice = session.engines.voices.voice_for(self.language)
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(session.engines.tts_executor, lambda: list(voice.synthesize(text)))
        session.playout.flush()  # cut the music: the announcement is what the caller waits for
        for chunk in chunks:
            session.playout.push(chunk.to_mono().resample(session.playout.format.rate))

    async def _speak(self, text: str) -> None:
        await self._push_speech(text)
        session = self.link.session
        if session is not None and not self.link.ended:
            await session.playout.mark()
            await asyncio.sleep(0.2)  # the last frames are still in pjmedia's buffers

    def _stop_speaking(self) -> None:
        if self.link.session is not None:
            self.link.session.playout.flush()


_REDACTOR = Redactor()
# Slots that hold what the work needs (references, the number to call back); other text slots are redacted.
_KEPT_SLOTS = frozenset({"case_reference", "looked_up_case", "ticket_number", "callback_phone", "language", "call_id",
                         "request_category", "case_confirmed", "case_attempts", "human_offered", "rating"})  # fmt: skip


def _redact_slot(name: str, value: Any, language: str) -> Any:
    return _REDACTOR.redact(value, language) if isinstance(value, str) and name not in _KEPT_SLOTS else value


_BACKGROUND: set[asyncio.Task[None]] = set()
LEAVE_RETRY_S = 2.0
LEAVE_GIVE_UP_S = 600.0


async def _leave_queue_later(acd: Acd, call_id: str) -> None:
    for _ in range(int(LEAVE_GIVE_UP_S / LEAVE_RETRY_S)):
        await asyncio.sleep(LEAVE_RETRY_S)
        try:
            await asyncio.to_thread(acd.call_ended, call_id)
        except Exception:  # still failing: try again
            continue
        log.info("call %s: left the queue once its database was back", call_id)
        return
    log.error("call %s: still in the queue after %g s of database errors: a worker restart clears it", call_id,
              LEAVE_GIVE_UP_S)  # fmt: skip


def _call_emitter(link: CallLink, sink: EventSink | None) -> Emitter | None:
    """Queue events go to the call's records on the same clock as the bot session's events."""
    if sink is None:
        return None
    emitter = Emitter(link.call_id, sink, time.perf_counter)
    if link.session is not None:
        emitter.t0 = link.session.events.t0
    return emitter


def _turn_line(note: TurnNote, language: str) -> dict[str, Any]:
    said = note.text or (f"[keys {note.dtmf}]" if note.dtmf else "")  # keyed digits too: a number keyed is PII
    said = _REDACTOR.redact(said, note.language or language)
    return {"speaker": "caller", "text": said, "turn": note.turn, "language": note.language, "intent": note.intent}


def wait_minutes(wait_s: float) -> int:
    return max(1, math.ceil(wait_s / 60)) if math.isfinite(wait_s) else -1


def position_announcement(language: str, position: int, wait_s: float) -> str:
    minutes = wait_minutes(wait_s)
    if minutes < 0:  # no agent who could take the call is signed in: no honest estimate
        if language == "fr":
            return f"Vous êtes en position {position}. Tous nos conseillers sont occupés, merci de rester en ligne."
        return f"You are number {position} in the queue. All our colleagues are busy; please stay on the line."
    if language == "fr":
        place = "Vous êtes le prochain dans la file d'attente." if position == 1 else (
            f"Vous êtes en position {position} dans la file d'attente.")  # fmt: skip
        unit = "minute" if minutes == 1 else "minutes"
        return f"{place} Le temps d'attente estimé est d'environ {minutes} {unit}. Merci de rester en ligne."
    place = "You are next in the queue." if position == 1 else f"You are number {position} in the queue."
    unit = "minute" if minutes == 1 else "minutes"
    return f"{place} The estimated wait is about {minutes} {unit}. Please stay on the line."


@cache
def hold_music(rate: int) -> AudioChunk:
    """Four seconds of a soft arpeggio (generated: no licensed audio ships with the bot)."""
    note_s, notes_hz = 0.5, (261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 246.94)
    t = np.arange(int(note_s * rate)) / rate
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t)
    tones = [0.12 * envelope * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) for f in notes_hz]
    return AudioChunk.from_samples(np.concatenate(tones).astype(np.float32), rate)


def recover_after_restart(acd: Acd, worker_name: str) -> int:
    """A worker that restarts lost its calls: the ones it had queued leave the queue (no ghost ahead of real
    callers), and each caller with a known number gets a callback task, so nobody is forgotten."""
    lost = [call for call in acd.waiting() if call.call_id.startswith(f"{worker_name}-")]
    for call in lost:
        acd.call_ended(call.call_id)
        number = caller_number(str(call.context.get("caller") or ""))
        if number:
            acd.add_callback(call.call_id, number, call.language, {**call.context, "reason": "cut_off_by_restart"})
    if lost:
        log.warning("worker %s: %d queued calls were cut off by a restart; callbacks stored", worker_name, len(lost))
    return len(lost)
