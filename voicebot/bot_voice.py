"""What the bot is saying right now: speech events, barge-in, and waiting for audio to be heard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from voicebot import events as ev
from voicebot.emitter import Emitter
from voicebot.playout import Playout
from voicebot.speaker import Speaker


class BotVoice:
    def __init__(self, speaker: Speaker, emit: Emitter, on_progress: Callable[[], None]) -> None:
        self.speaker = speaker
        self.playout: Playout = speaker.playout
        self._emit = emit
        self._on_progress = on_progress
        self.speaking_turn: int | None = None
        self._speaking_task: asyncio.Task[Any] | None = None
        self.playing_tasks: set[asyncio.Task[Any]] = set()  # tasks only waiting for their audio to be played

    @property
    def speaking(self) -> bool:
        return self.playout.is_playing or self.speaking_turn is not None

    def prompt(self, name: str, language: str, turn: int) -> asyncio.Future[bool]:
        """Queue a cached prompt; the future says whether it was heard to the end."""
        self.speaking_turn = turn
        text = self.speaker.prompts.text(name, language)
        self._emit(ev.BotSpeechStarted, turn=turn, text=text, prompt=name)
        heard = self.speaker.play_prompt(name, language)

        def done(fut: asyncio.Future[bool]) -> None:
            if not fut.cancelled() and self.speaking_turn == turn and not self.playout.is_playing:
                self.end(turn, interrupted=not fut.result())

        heard.add_done_callback(done)
        return heard

    async def say(self, texts: tuple[str, ...], language: str, turn: int, on_first_audio: Callable[[], None]) -> None:
        def first_audio() -> None:
            self.speaking_turn = turn
            self._speaking_task = asyncio.current_task()
            self._emit(ev.BotSpeechStarted, turn=turn, text=" ".join(texts))
            on_first_audio()

        await self.speaker.say(texts, language, first_audio, self.until_played)

    async def until_played(self, heard: asyncio.Future[bool]) -> bool:
        task = asyncio.current_task()
        assert task is not None
        self.playing_tasks.add(task)
        self._on_progress()
        try:
            return await heard
        finally:
            self.playing_tasks.discard(task)

    def barge_in(self, current_turn: int, cancel_reply: bool) -> None:
        """The caller talks over the bot: the very next frame the channel reads is silence."""
        self.playout.flush()
        self._emit(ev.BargeIn, turn=self.speaking_turn if self.speaking_turn is not None else current_turn)
        task = self._speaking_task
        self.stop_speaking()
        if cancel_reply and task is not None and not task.done():
            task.cancel()

    def stop_speaking(self) -> None:
        self.playout.flush()
        if self.speaking_turn is not None:
            self.end(self.speaking_turn, interrupted=True)

    def end(self, turn: int, interrupted: bool) -> None:
        if self.speaking_turn != turn:
            return  # another utterance is speaking now
        self.speaking_turn, self._speaking_task = None, None
        self._emit(ev.BotSpeechEnded, turn=turn, interrupted=interrupted)
