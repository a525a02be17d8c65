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
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from voicebot import events as ev
from voicebot.audio import AudioChunk, AudioFormat
from voicebot.emitter import Emitter, TurnClock
from voicebot.listener import Boundary, Listener
from voicebot.playout import Playout
from voicebot.ports import (
    CallControl,
    DialogueBackend,
    DialogueContext,
    DialogueReply,
    EventSink,
    Handoff,
    SpeechToText,
    Transcription,
    VoiceActivityDetector,
    VoiceCatalogue,
)
from voicebot.prompts import PromptCache
from voicebot.segmenter import EndpointConfig, Segment
from voicebot.speaker import Speaker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionEngines:
    vad: VoiceActivityDetector
    stt: SpeechToText
    voices: VoiceCatalogue
    dialogue: DialogueBackend
    prompts: PromptCache
    asr_executor: Executor
    tts_executor: Executor


@dataclass(frozen=True)
class SessionOptions:
    endpoint: EndpointConfig
    default_language: str = "en"
    language_forced: bool = False
    language_threshold: float = 0.6
    languages: tuple[str, ...] = ("en", "fr")
    default_queue: str = "general"
    max_unheard_turns: int = 2
    dialogue_timeout_s: float = 6.0
    welcome_prompts: tuple[str, ...] = ("disclosure", "greeting")


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
        self.language = options.default_language
        self.language_probability: float | None = 1.0 if options.language_forced else None
        self.playout = Playout(channel)
        self._speaker = Speaker(engines.voices, engines.prompts, self.playout, engines.tts_executor, "en")
        self._listener = Listener(engines.vad, options.endpoint, channel.rate, self._on_boundary)
        self._speculation: asyncio.Future[tuple[Transcription, float]] | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn = 0
        self._unheard = 0
        self._speaking_turn: int | None = None
        self._action_pending = False  # a transfer or hang-up is decided: barge-in no longer cancels it
        self._ending = False
        self._emit = Emitter(call_id, sink, clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._playing_tasks: set[asyncio.Task[object]] = set()  # tasks only waiting for their audio to play
        self.outcome: asyncio.Future[str] | None = None
        self._progress: asyncio.Event | None = None  # set whenever processing may have stopped

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.outcome = asyncio.get_running_loop().create_future()
        self._progress = asyncio.Event()
        self._emit(ev.CallStarted, caller=self.caller, language=self.language, channel_rate=self.playout.format.rate)
        for name in self.options.welcome_prompts:
            self._play_prompt(name)

    @property
    def thinking(self) -> bool:
        """True while a turn is transcribing, asking the dialogue or synthesizing (not while only playing)."""
        tasks = [self._turn_task, *self._tasks]
        return any(t is not None and not t.done() and t not in self._playing_tasks for t in tasks)

    async def settle(self) -> None:
        """Wait until nothing is being processed (for drivers that run faster than real time)."""
        assert self._progress is not None, "start() the session first"
        while self.thinking:
            self._progress.clear()
            await self._progress.wait()

    @property
    def busy(self) -> bool:
        turn_running = self._turn_task is not None and not self._turn_task.done()
        return turn_running or self.playout.is_playing

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
        self.playout.flush()
        self._end_bot_speech(interrupted=True)
        final = self._finish(outcome)
        self._emit(ev.CallEnded, outcome=final)
        return final

    def dtmf(self, digit: str) -> None:
        self._emit(ev.DtmfReceived, digit=digit)

    # --- caller audio ----------------------------------------------------------------------------

    def feed(self, chunk: AudioChunk) -> None:
        if self._ending:
            return
        try:
            self._listener.feed(chunk)
        except Exception as exc:  # a broken VAD must still end with a human, not silence
            self._spawn(self._fail("vad", exc))

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
        speaking = self.playout.is_playing or self._speaking_turn is not None
        self._emit(ev.SpeechStarted, during_bot_speech=speaking)
        if not speaking:
            return
        self.playout.flush()  # barge-in: the very next frame the channel reads is silence
        self._emit(ev.BargeIn, turn=self._speaking_turn if self._speaking_turn is not None else self._turn)
        self._end_bot_speech(interrupted=True)
        task = self._turn_task
        if task is not None and not task.done() and not self._action_pending:
            task.cancel()

    def _on_speech_ended(self, boundary: Boundary) -> None:
        forced = boundary.segment is Segment.FORCED_END
        audio = boundary.audio
        assert audio is not None
        self._emit(ev.SpeechEnded, speech_s=round(audio.duration_s, 3), forced=forced)
        job = self._speculation if not forced and self._speculation is not None else self._submit_asr(audio)
        self._speculation = None
        if self._action_pending:
            return  # the bot is already transferring or hanging up
        self._turn += 1
        turn = TurnClock(self._turn, boundary.endpointing_ms, self.clock())
        previous = self._turn_task if self._turn_task is not None and not self._turn_task.done() else None
        self._turn_task = asyncio.get_running_loop().create_task(self._run_turn(turn, job, previous))
        self._turn_task.add_done_callback(self._note_progress)

    def _drop_speculation(self) -> None:
        """A queued speculative job is cancelled; one already running finishes and its result is ignored."""
        if self._speculation is not None:
            self._speculation.cancel()
            self._speculation = None

    def _submit_asr(self, audio: AudioChunk | None) -> asyncio.Future[tuple[Transcription, float]]:
        assert audio is not None
        language = self._asr_language()
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.engines.asr_executor, _timed_transcribe, self.engines.stt, audio, language)

    def _asr_language(self) -> str | None:
        if self.options.language_forced:
            return self.language
        return None if self.engines.stt.multilingual else "en"

    # --- one caller turn -------------------------------------------------------------------------

    async def _run_turn(
        self,
        turn: TurnClock,
        job: asyncio.Future[tuple[Transcription, float]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:  # the caller spoke again while the last turn was still thinking
            await asyncio.wait([previous])
        if self._action_pending:
            return
        try:
            transcription, turn.asr_ms = await job
        except Exception as exc:
            await self._fail("asr", exc)
            return
        turn.asr_wait_ms = (self.clock() - turn.decided_at) * 1000
        self._emit.transcript(turn.turn, transcription)
        if not transcription.accepted:
            self._on_unheard()
            return
        self._unheard = 0
        self._update_language(transcription)
        reply = await self._ask_dialogue(turn, transcription.text)
        if reply is None:
            return
        if not (reply.texts or reply.handoff or reply.hangup):
            log.warning("call %s: the dialogue had nothing to say to %r", self.call_id, transcription.text)
            await self._until_played(self._play_prompt("not_understood"))  # never dead air
            return
        await self._reply(turn, reply)

    async def _ask_dialogue(self, turn: TurnClock, text: str) -> DialogueReply | None:
        context = DialogueContext(self.call_id, self.language, self.language_probability, self.caller)
        started = self.clock()
        try:
            reply = await asyncio.wait_for(
                self.engines.dialogue.send(text, context), timeout=self.options.dialogue_timeout_s
            )
        except Exception as exc:
            await self._fail("dialogue", exc if str(exc) else TimeoutError("no answer in time"))
            return None
        turn.dialogue_ms = (self.clock() - started) * 1000
        self._emit(
            ev.DialogueReplied,
            turn=turn.turn,
            texts=reply.texts,
            intent=reply.intent,
            confidence=reply.confidence,
            slots=dict(reply.slots),
        )
        return reply

    async def _reply(self, turn: TurnClock, reply: DialogueReply) -> None:
        language = reply.language or self.language
        handoff = reply.handoff
        if handoff is not None:
            self._action_pending = True
            handoff = _with_language(handoff, language)
            self._emit.transfer(handoff)
        elif reply.hangup:
            self._action_pending = True
            self._emit(ev.HangupRequested, reason="dialogue")
        tts_started = self.clock()
        first_audio: list[float] = []

        def on_first_audio() -> None:
            first_audio.append(self.clock())
            self._speaking_turn = turn.turn
            self._emit(ev.BotSpeechStarted, turn=turn.turn, text=" ".join(reply.texts))

        try:
            await self._speaker.say(reply.texts, language, on_first_audio)
        except Exception as exc:
            await self._fail("tts", exc)
            return
        self._emit.timings(turn, tts_started, first_audio[0] if first_audio else None)
        played = await self._until_played(self.playout.mark())
        self._end_bot_speech(interrupted=not played)
        if handoff is not None:
            self._complete_transfer(handoff)
        elif reply.hangup:
            self._complete_hangup("dialogue")

    def _on_unheard(self) -> None:
        self._unheard += 1
        if self._unheard >= self.options.max_unheard_turns:
            self._unheard = 0
            self._play_prompt("not_understood")

    def _update_language(self, transcription: Transcription) -> None:
        if self.options.language_forced or not self.engines.stt.multilingual:
            return
        probability = transcription.language_probability or 0.0
        language = transcription.language
        if language in self.options.languages and probability >= self.options.language_threshold:
            self.language, self.language_probability = language, probability

    # --- failures and endings --------------------------------------------------------------------

    async def _fail(self, stage: str, exc: BaseException) -> None:
        if self._ending:
            return
        self._ending = self._action_pending = True
        log.warning("call %s: %s failed: %s", self.call_id, stage, exc)
        self._emit(ev.CallError, stage=stage, error=f"{type(exc).__name__}: {exc}")
        handoff = Handoff(self.options.default_queue, f"{stage}_error", self.language, f"{stage} failed")
        self._emit.transfer(handoff)
        self.playout.flush()
        self._end_bot_speech(interrupted=True)
        try:
            await self._until_played(self._play_prompt("apology"))
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

    def _play_prompt(self, name: str) -> asyncio.Future[bool]:
        turn = self._turn
        self._speaking_turn = turn
        self._emit(ev.BotSpeechStarted, turn=turn, text=self.engines.prompts.text(name, self.language), prompt=name)
        heard = self._speaker.play_prompt(name, self.language)

        def done(fut: asyncio.Future[bool]) -> None:
            if not fut.cancelled() and self._speaking_turn == turn and not self.playout.is_playing:
                self._end_bot_speech(interrupted=not fut.result())

        heard.add_done_callback(done)
        return heard

    async def _until_played(self, heard: asyncio.Future[bool]) -> bool:
        task = asyncio.current_task()
        assert task is not None
        self._playing_tasks.add(task)
        self._note_progress()
        try:
            return await heard
        finally:
            self._playing_tasks.discard(task)

    def _end_bot_speech(self, interrupted: bool) -> None:
        if self._speaking_turn is None:
            return
        turn, self._speaking_turn = self._speaking_turn, None
        self._emit(ev.BotSpeechEnded, turn=turn, interrupted=interrupted)

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


def _with_language(handoff: Handoff, language: str) -> Handoff:
    if handoff.language:
        return handoff
    return Handoff(handoff.queue, handoff.reason, language, handoff.summary, dict(handoff.slots))
