"""One call: caller audio in, turn-taking, transcription, dialogue, bot speech out.

Runs on an asyncio loop. The channel calls `feed()` on that loop (foreign threads go through
`call_soon_threadsafe`) and drains `playout` with its media clock. VAD runs inline (a few µs per
frame: cheaper than a thread hop); ASR and TTS run in executors. Whatever fails inside the call
becomes a CallError, an apology from the prompt cache and a transfer to a human.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from voicebot import events as ev
from voicebot.audio import AudioChunk, AudioFormat
from voicebot.bot_voice import BotVoice
from voicebot.dtmf import DtmfCollector, dtmf_message
from voicebot.emitter import DISCLOSURE_PROMPTS, Emitter, TurnClock
from voicebot.language import CallLanguage
from voicebot.listener import Boundary, Listener
from voicebot.playout import Playout
from voicebot.ports import CallControl, DialogueContext, DialogueReply, EventSink, Handoff, SpeechToText, Transcription
from voicebot.segmenter import Segment
from voicebot.session_types import SessionEngines, SessionOptions
from voicebot.speaker import Speaker
from voicebot.turn_routing import TurnRouting, note_for

log = logging.getLogger(__name__)


class CallSession:
    def __init__(
        self,
        call_id: str,
        engines: SessionEngines,
        options: SessionOptions,
        channel: AudioFormat,
        control: CallControl,
        sink: EventSink,
        caller: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.call_id = call_id
        self.engines = engines
        self.options = options
        self.control = control
        self.sink = sink
        self.caller = caller
        self.clock = clock
        self.language = CallLanguage(
            options.default_language,
            engines.stt.multilingual,
            options.languages,
            options.language_threshold,
            forced=options.language_forced,
            lock_threshold=options.language_lock_threshold,
        )
        self.playout = Playout(channel)
        self._keys = DtmfCollector(options.dtmf_timeout_ms)
        self._listener = Listener(engines.vad, options.endpoint, channel.rate, self._on_boundary)
        self._speculation: asyncio.Future[tuple[Transcription, float]] | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn = 0
        self._unheard = 0
        self._action_pending = False  # a transfer or hang-up is decided: barge-in no longer cancels it
        self._silent_ms = 0.0
        self._reprompts = 0
        self._ending = False
        self._emit = Emitter(call_id, sink, clock)
        self.routing = TurnRouting(call_id, caller, engines.router)
        speaker = Speaker(engines.voices, engines.prompts, self.playout, engines.tts_executor, "en")
        self._voice = BotVoice(speaker, self._emit, self._note_progress)
        self._tasks: set[asyncio.Task[None]] = set()
        self.outcome: asyncio.Future[str] | None = None
        self._progress: asyncio.Event | None = None  # set whenever processing may have stopped

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.outcome = asyncio.get_running_loop().create_future()
        self._progress = asyncio.Event()
        self._emit(
            ev.CallStarted, caller=self.caller, language=self.language.current, channel_rate=self.playout.format.rate
        )
        for name in self.options.welcome_prompts:
            heard = self._voice.prompt(name, self.language.current, self._turn)
            if (notice := DISCLOSURE_PROMPTS.get(name)) is not None:
                heard.add_done_callback(self._emit.disclosure_heard(notice, str(self.engines.prompts.version)))

    @property
    def events(self) -> Emitter:
        return self._emit

    @property
    def thinking(self) -> bool:
        """True while a turn is transcribing, asking the dialogue or synthesizing (not while only playing)."""
        tasks = [self._turn_task, *self._tasks]
        return any(t is not None and not t.done() and t not in self._voice.playing_tasks for t in tasks)

    async def settle(self) -> None:
        """Wait until nothing is being processed (for drivers that run faster than real time)."""
        while self.thinking:
            await self._next_progress()

    async def _next_progress(self) -> None:
        assert self._progress is not None, "start() the session first"
        self._progress.clear()
        await self._progress.wait()

    @property
    def busy(self) -> bool:
        turn_running = self._turn_task is not None and not self._turn_task.done()
        return turn_running or self.playout.is_playing or self._keys.pending

    @property
    def in_utterance(self) -> bool:
        return self._listener.in_utterance

    @property
    def ended(self) -> bool:
        return self.outcome is not None and self.outcome.done()

    async def close(self, outcome: str = "hangup-by-caller") -> str:
        """End the call from the channel side (caller hung up) or after the bot's own action."""
        for task in [self._turn_task, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
        self._voice.stop_speaking()
        final = self._finish(outcome)
        self._emit.notices_cut()
        self._emit(ev.CallEnded, outcome=final)
        return final

    def dtmf(self, key: str) -> None:
        """A key press from the channel (RFC 4733 or SIP INFO). Keys interrupt the bot like speech does."""
        if self._ending:
            return
        self._emit(ev.DtmfReceived, digit=key)
        if self._voice.speaking:
            self._voice.barge_in(self._turn, cancel_reply=not self._action_pending)
        entry = self._keys.press(key)
        if entry is not None:
            self._start_turn(None, entry)

    # --- caller audio ----------------------------------------------------------------------------

    def feed(self, chunk: AudioChunk) -> None:
        if self._ending:
            return
        try:
            self._listener.feed(chunk)
        except Exception as exc:  # a broken VAD must still end with a human, not silence
            self._spawn(self._fail("vad", exc))
            return
        entry = self._keys.advance(chunk.duration_s * 1000)
        if entry is not None:
            self._start_turn(None, entry)
        self._track_silence(chunk.duration_s * 1000)

    def _track_silence(self, elapsed_ms: float) -> None:
        """Media time the caller has been silent while the bot waits for them (clock-free, like the endpointer)."""
        if self.busy or self.in_utterance or self._action_pending or not self.options.silence_reprompts:
            self._silent_ms = 0.0
            if self.in_utterance:
                self._reprompts = 0
            return
        self._silent_ms += elapsed_ms
        if self._silent_ms < self.options.silence_reprompt_ms:
            return
        self._silent_ms, self._reprompts = 0.0, self._reprompts + 1
        self._emit(ev.CallerSilent, reprompt=self._reprompts)
        if self._reprompts <= self.options.silence_reprompts:
            self._voice.prompt("still_there", self.language.current, self._turn)
        else:
            self._spawn(self._say_then_hang_up("no_response", "no-response"))

    async def _say_then_hang_up(self, prompt: str, reason: str) -> None:
        self._action_pending = True
        self._emit(ev.HangupRequested, reason=reason)
        await self._voice.until_played(self._voice.prompt(prompt, self.language.current, self._turn))
        self._complete_hangup(reason)

    def _on_boundary(self, boundary: Boundary) -> None:
        segment = boundary.segment
        if segment is Segment.STARTED:
            self._on_speech_started()
        elif segment is Segment.PAUSED:
            self._emit(ev.SpeechPaused)
            self._speculation = self._submit_asr(boundary.audio)
        elif segment is Segment.RESUMED:
            self._emit(ev.SpeechResumed)
            self._drop_speculation()
        elif segment is Segment.DISCARDED:
            self._drop_speculation()
        else:
            self._on_speech_ended(boundary)

    def _on_speech_started(self) -> None:
        speaking = self._voice.speaking
        self._emit(ev.SpeechStarted, during_bot_speech=speaking)
        if speaking:
            self._voice.barge_in(self._turn, cancel_reply=not self._action_pending)

    def _on_speech_ended(self, boundary: Boundary) -> None:
        forced = boundary.segment is Segment.FORCED_END
        audio = boundary.audio
        assert audio is not None
        self._emit(ev.SpeechEnded, speech_s=round(audio.duration_s, 3), forced=forced)
        job = self._speculation if not forced and self._speculation is not None else self._submit_asr(audio)
        self._speculation = None
        if self._action_pending:
            return  # the bot is already transferring or hanging up
        if self.playout.is_playing:  # a reply started while the caller was still talking: this turn supersedes it
            self._voice.barge_in(self._turn, cancel_reply=True)
        self._start_turn(job, None, boundary.endpointing_ms)

    def _start_turn(
        self, job: asyncio.Future[tuple[Transcription, float]] | None, keys: str | None, endpointing_ms: float = 0.0
    ) -> None:
        """A caller turn: speech (an ASR job) or a DTMF entry. Turns are answered in order."""
        self._turn += 1
        turn = TurnClock(self._turn, endpointing_ms, self.clock())
        previous = self._turn_task if self._turn_task is not None and not self._turn_task.done() else None
        self._turn_task = asyncio.get_running_loop().create_task(self._run_turn(turn, job, keys, previous))
        self._turn_task.add_done_callback(self._note_progress)

    def _drop_speculation(self) -> None:
        """A queued speculative job is cancelled; one already running finishes and its result is ignored."""
        if self._speculation is not None:
            self._speculation.cancel()
            self._speculation = None

    def _submit_asr(self, audio: AudioChunk | None) -> asyncio.Future[tuple[Transcription, float]]:
        assert audio is not None
        language = self.language.for_asr()
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.engines.asr_executor, _timed_transcribe, self.engines.stt, audio, language)

    # --- one caller turn -------------------------------------------------------------------------

    async def _run_turn(
        self,
        turn: TurnClock,
        job: asyncio.Future[tuple[Transcription, float]] | None,
        keys: str | None,
        previous: asyncio.Task[None] | None,
    ) -> None:
        # The caller spoke again while the last turn was still thinking: answer in order, but don't wait
        # for the previous reply to be played.
        while previous is not None and not previous.done() and previous not in self._voice.playing_tasks:
            await self._next_progress()
        if self._action_pending:
            return
        text = dtmf_message(keys) if keys is not None else await self._transcribe(turn, job)
        if text is None:
            return
        reply = await self._ask_dialogue(turn, text)
        if reply is None:
            return
        language = self.language
        note = note_for(turn.turn, text, keys, language.current, language.probability, reply)
        reply = await self.routing.apply(note, reply)
        if not (reply.texts or reply.handoff or reply.hangup):
            log.warning("call %s: the dialogue had nothing to say to %r", self.call_id, text)
            await self._voice.until_played(self._voice.prompt("not_understood", self.language.current, turn.turn))
            return
        await self._reply(turn, reply)

    async def _transcribe(self, turn: TurnClock, job: asyncio.Future[tuple[Transcription, float]] | None) -> str | None:
        assert job is not None
        try:
            transcription, turn.asr_ms = await job
        except Exception as exc:
            await self._fail("asr", exc)
            return None
        turn.asr_wait_ms = (self.clock() - turn.decided_at) * 1000
        self._emit.transcript(turn.turn, transcription)
        if not transcription.accepted:
            self._on_unheard()
            return None
        self._unheard = 0
        self.language.heard(transcription)
        return transcription.text.lstrip("/ ")  # Rasa obeys "/intent{...}": a caller must not inject one

    async def _ask_dialogue(self, turn: TurnClock, text: str) -> DialogueReply | None:
        context = DialogueContext(self.call_id, self.language.current, self.language.probability, self.caller)
        started = self.clock()
        try:
            reply = await asyncio.wait_for(
                self.engines.dialogue.send(text, context), timeout=self.options.dialogue_timeout_s
            )
        except Exception as exc:
            await self._fail("dialogue", exc if str(exc) else TimeoutError("no answer in time"))
            return None
        turn.dialogue_ms = (self.clock() - started) * 1000
        self._emit.replied(turn.turn, reply)
        return reply

    async def _reply(self, turn: TurnClock, reply: DialogueReply) -> None:
        if reply.language:
            self.language.chosen(reply.language)
        language = self.language.current
        handoff = reply.handoff
        if handoff is not None:
            self._action_pending = True
            handoff = handoff.with_default_language(language)
            self._emit.transfer(handoff)
        elif reply.hangup:
            self._action_pending = True
            self._emit(ev.HangupRequested, reason="dialogue")
        tts_started = self.clock()
        first_audio: list[float] = []

        def on_first_audio() -> None:  # timings are known now: a turn interrupted later still reports them
            first_audio.append(self.clock())
            self._emit.timings(turn, tts_started, first_audio[0])

        try:
            await self._voice.say(reply.texts, language, turn.turn, on_first_audio)
        except Exception as exc:
            await self._fail("tts", exc)
            return
        if not first_audio:
            self._emit.timings(turn, tts_started, None)
        played = await self._voice.until_played(self.playout.mark())
        self._voice.end(turn.turn, interrupted=not played)
        if handoff is not None:
            self._complete_transfer(handoff)
        elif reply.hangup:
            self._complete_hangup("dialogue")

    def _on_unheard(self) -> None:
        self._unheard += 1
        if self._unheard >= self.options.max_unheard_turns:
            self._unheard = 0
            self._voice.prompt("not_understood", self.language.current, self._turn)

    # --- failures and endings --------------------------------------------------------------------

    async def _fail(self, stage: str, exc: BaseException) -> None:
        if self._ending:
            return
        self._ending = self._action_pending = True
        log.warning("call %s: %s failed: %s", self.call_id, stage, exc)
        self._emit(ev.CallError, stage=stage, error=f"{type(exc).__name__}: {exc}")
        handoff = Handoff(self.options.default_queue, f"{stage}_error", self.language.current, f"{stage} failed")
        self._emit.transfer(handoff)
        self._voice.stop_speaking()
        try:
            await self._voice.until_played(self._voice.prompt("apology", self.language.current, self._turn))
        except Exception:
            log.exception("call %s: could not play the apology prompt", self.call_id)
        self._complete_transfer(handoff)

    def _complete_transfer(self, handoff: Handoff) -> None:
        self._ending = True
        try:
            self.control.transfer(handoff)
        except Exception:
            log.exception("call %s: transfer to %s failed", self.call_id, handoff.queue)
        self._finish("transferred")

    def _complete_hangup(self, reason: str) -> None:
        self._ending = True
        try:
            self.control.hangup(reason)
        except Exception:
            log.exception("call %s: hang-up failed", self.call_id)
        self._finish("hangup-by-bot")

    def _finish(self, outcome: str) -> str:
        if self.outcome is None:
            self.outcome = asyncio.get_running_loop().create_future()
        if not self.outcome.done():
            self.outcome.set_result(outcome)
        return self.outcome.result()

    # --- helpers ---------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._note_progress)

    def _note_progress(self, _: object = None) -> None:
        if self._progress is not None:
            self._progress.set()


def _timed_transcribe(stt: SpeechToText, audio: AudioChunk, language: str | None) -> tuple[Transcription, float]:
    started = time.perf_counter()
    result = stt.transcribe(audio, language)
    return result, (time.perf_counter() - started) * 1000
