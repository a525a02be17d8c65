"""Bot speech: streams TTS sentence by sentence into the playout, and plays cached prompts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor

from voicebot.audio import AudioChunk
from voicebot.engines.tts import split_sentences
from voicebot.playout import Playout
from voicebot.ports import ConfigError, TextToSpeech, VoiceCatalogue
from voicebot.prompts import PromptCache

log = logging.getLogger(__name__)


def _next_chunk(chunks: Iterator[AudioChunk]) -> AudioChunk | None:
    return next(chunks, None)


class Speaker:
    def __init__(
        self,
        voices: VoiceCatalogue,
        prompts: PromptCache,
        playout: Playout,
        executor: Executor,
        fallback_language: str,
        lookahead_s: float = 1.5,
    ) -> None:
        self.voices = voices
        self.prompts = prompts
        self.playout = playout
        self.executor = executor
        self.fallback_language = fallback_language
        self.lookahead_s = lookahead_s

    def play_prompt(self, name: str, language: str) -> asyncio.Future[bool]:
        """Queue a cached prompt; the future says whether it was heard to the end."""
        self.playout.push(self.prompts.get(name, language))
        return self.playout.mark()

    async def say(
        self,
        texts: tuple[str, ...],
        language: str,
        on_first_audio: Callable[[], None],
        wait: Callable[[asyncio.Future[bool]], Awaitable[bool]] | None = None,
    ) -> None:
        """Synthesize and queue each sentence as soon as it is ready (the first one plays while the rest render)."""
        voice = self._voice(language)
        loop = asyncio.get_running_loop()
        first = True
        for text in speakable_pieces(texts):
            await self._until_needed(wait)
            chunks = iter(await loop.run_in_executor(self.executor, _sentences, voice, text))
            while (chunk := await loop.run_in_executor(self.executor, _next_chunk, chunks)) is not None:
                self.playout.push(self._to_channel(chunk))
                if first:
                    on_first_audio()
                    first = False

    async def _until_needed(self, wait: Callable[[asyncio.Future[bool]], Awaitable[bool]] | None) -> None:
        """Render the next sentence only when the caller is about to need it: the TTS thread is shared by
        the calls of a process, and another caller's first sentence should not wait behind our third one.
        `wait` lets the caller mark this task as only waiting for audio to play (see BotVoice)."""
        if self.playout.queued_s <= self.lookahead_s:
            return
        low = self.playout.when_below(self.lookahead_s)
        await (wait(low) if wait is not None else low)

    def _voice(self, language: str) -> TextToSpeech:
        try:
            return self.voices.voice_for(language)
        except ConfigError as exc:
            log.warning("no voice for %r (%s): speaking with the %r voice", language, exc, self.fallback_language)
            return self.voices.voice_for(self.fallback_language)

    def _to_channel(self, chunk: AudioChunk) -> AudioChunk:
        return chunk.to_mono().resample(self.playout.format.rate)


def speakable_pieces(texts: tuple[str, ...], min_words: int = 4) -> list[str]:
    """Sentences, with the first one cut at its first comma so the caller hears something sooner."""
    sentences = [s for text in texts for s in split_sentences(text)]
    if not sentences:
        return []
    head, _, tail = sentences[0].partition(", ")
    if tail and len(head.split()) >= min_words and len(tail.split()) >= min_words:
        return [head + ",", tail, *sentences[1:]]
    return sentences


def _sentences(voice: TextToSpeech, text: str) -> Iterator[AudioChunk]:
    return iter(voice.synthesize(text))
