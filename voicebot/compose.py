"""Composition root: the one place that wires concrete engines, voices and the dialogue backend."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

from dialogue.acd import Acd
from dialogue.agents import load_directory
from dialogue.ops_db import ops_db_path
from dialogue.rasa_client import RasaRestClient
from dialogue.rasa_service import RasaService
from dialogue.routing import RulesRouter
from dialogue.rule_store import RuleStore, rules_validator
from voicebot.audio import AudioChunk, AudioFormat
from voicebot.audit import Audit
from voicebot.call_recorder import welcome_prompts
from voicebot.call_records import RecordRows
from voicebot.call_schema import CALLS_DB_NAME
from voicebot.config import Settings
from voicebot.engines.stt import WhisperSTT
from voicebot.engines.vad import make_vad
from voicebot.ports import (
    CallControl,
    ConfigError,
    DialogueBackend,
    DialogueContext,
    DialogueError,
    EventSink,
    TransferRouter,
    VoiceActivityDetector,
)
from voicebot.prompts import PromptCache, PromptTexts
from voicebot.record_writer import RecordWriter, WriterStats
from voicebot.segmenter import EndpointConfig
from voicebot.session import CallSession
from voicebot.session_types import SessionEngines, SessionOptions
from voices.catalogue import Catalogue

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Engines shared by every call of this process."""

    settings: Settings
    stt: WhisperSTT
    voices: Catalogue
    dialogue: DialogueBackend
    prompt_texts: PromptTexts
    router: TransferRouter | None = None  # supervisors' transfer rules (SIP workers in queue mode)
    asr_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "asr"))
    tts_executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "tts"))
    _prompts: dict[int, PromptCache] = field(default_factory=dict)

    def prompts(self, rate: int) -> PromptCache:
        if rate not in self._prompts:
            cache = PromptCache(self.prompt_texts, self.voices, rate, self.settings.cache_dir / "prompts")
            cache.warm([lang for lang in self.settings.call.languages if lang in self.prompt_texts.texts])
            self._prompts[rate] = cache
        return self._prompts[rate]

    def new_vad(self) -> VoiceActivityDetector:
        speech = self.settings.speech
        if speech.vad == "silero":
            return make_vad("silero", threshold=speech.silero_threshold)
        return make_vad(speech.vad, mode=speech.webrtc_mode)

    def session(
        self,
        call_id: str,
        channel: AudioFormat,
        control: CallControl,
        sink: EventSink,
        caller: str | None = None,
        language: str | None = None,
        welcome: bool = True,
    ) -> CallSession:
        vad = self.new_vad()
        engines = SessionEngines(
            vad,
            self.stt,
            self.voices,
            self.dialogue,
            self.prompts(channel.rate),
            self.asr_executor,
            self.tts_executor,
            self.router,
        )
        options = self.options(vad.frame_ms, language)
        if not welcome:
            options = dataclasses.replace(options, welcome_prompts=())
        return CallSession(call_id, engines, options, channel, control, sink, caller)

    def options(self, frame_ms: int, language: str | None) -> SessionOptions:
        speech, call = self.settings.speech, self.settings.call
        endpoint = EndpointConfig.from_ms(
            frame_ms,
            start_ms=speech.start_ms,
            speculate_after_ms=speech.speculate_after_ms,
            end_silence_ms=speech.end_silence_ms,
            min_speech_ms=speech.min_speech_ms,
            max_utterance_ms=speech.max_utterance_ms,
        )
        return SessionOptions(
            endpoint=endpoint,
            default_language=language or call.default_language,
            language_forced=language is not None or not self.stt.multilingual,
            language_threshold=speech.language_threshold,
            language_lock_threshold=speech.language_lock_threshold,
            languages=call.languages,
            default_queue=call.default_queue,
            max_unheard_turns=call.max_unheard_turns,
            dialogue_timeout_s=self.settings.dialogue.timeout_s,
            silence_reprompt_ms=int(call.silence_reprompt_s * 1000),
            silence_reprompts=call.silence_reprompts,
            welcome_prompts=welcome_prompts(self.settings.recording, self.prompt_texts, SessionOptions.welcome_prompts),
        )

    async def warm_up(self, rate: int) -> None:
        """Pay first-inference costs (allocations, lazy loads, Rasa's first turn) before a caller does."""
        noise = AudioChunk.from_samples(np.random.default_rng(0).normal(0, 0.01, 16000), 16000)
        await asyncio.to_thread(self.stt.transcribe, noise, None if self.stt.multilingual else "en")
        voice = self.voices.voice_for(self.settings.call.default_language)
        await asyncio.to_thread(lambda: list(voice.synthesize("Hello.")))
        self.prompts(rate)
        try:
            await self.dialogue.send("hello", DialogueContext(f"warm-up-{os.getpid()}"))
        except DialogueError as exc:
            log.warning("dialogue warm-up failed: %s", exc)

    async def aclose(self) -> None:
        close = getattr(self.dialogue, "aclose", None)
        if close is not None:
            await close()
        self.asr_executor.shutdown(wait=False, cancel_futures=True)
        self.tts_executor.shutdown(wait=False, cancel_futures=True)


def build_runtime(settings: Settings, dialogue: DialogueBackend | None = None) -> Runtime:
    speech = settings.speech
    stt = WhisperSTT(
        model=speech.stt_model,
        models_dir=settings.models_dir,
        cpu_threads=speech.stt_threads,
        beam_size=speech.beam_size,
        language_threshold=speech.language_threshold,
        encoder_window_s=speech.encoder_window_s or None,
    )
    voices = Catalogue.from_file(settings.voices_file)
    backend = dialogue or RasaRestClient(
        settings.dialogue.rasa_url, settings.dialogue.auth_token, settings.dialogue.timeout_s
    )
    return Runtime(settings, stt, voices, backend, PromptTexts.load(settings.prompts_file))


def rasa_service(settings: Settings) -> RasaService:
    url = urlparse(settings.dialogue.rasa_url)
    if url.hostname is None or url.port is None:
        raise ConfigError(f"dialogue.rasa_url must look like http://127.0.0.1:5005, got {settings.dialogue.rasa_url}")
    return RasaService(
        settings.dialogue.project_dir,
        settings.dialogue.venv_dir,
        port=url.port,
        host=url.hostname,
        auth_token=settings.dialogue.auth_token,
    )


def ensure_dialogue(settings: Settings, progress: Callable[[str], None]) -> RasaService | None:
    """Reuse a running Rasa server, or start one; returns the service when this process started it."""
    service = rasa_service(settings)
    if service.is_up():
        return None
    if not service.model_is_fresh():
        progress("the dialogue model is missing or older than its data: training it first")
        service.train(progress)
    progress(
        f"starting Rasa at {settings.dialogue.rasa_url} (takes 30-80 s; keep it running with `voicebot dialogue serve`)"
    )
    service.ensure_running()
    return service


def call_routing(settings: Settings) -> tuple[Acd, RulesRouter]:
    """The agent queue (seeded from settings.agents_file: new agents and queue definitions, live states kept)
    and the supervisors' live transfer rules, both in the operations database shared by every process."""
    db_path = ops_db_path()
    acd = Acd(db_path)
    acd.seed(*load_directory(settings.agents_file))
    store = RuleStore(db_path, rules_validator(db_path, settings.call.languages))
    router = RulesRouter(store, acd, db_path, settings.call.languages, settings.speech.language_threshold,
                         audit=Audit(db_path))  # fmt: skip
    return acd, router


class RecordsHealth:
    """Feeds the records writer's state to /metrics: store up/down, events waiting, events dropped."""

    def __init__(self) -> None:
        self._dropped = 0

    def update(self, stats: WriterStats) -> None:
        from voicebot.metrics import count_records_dropped, set_records_health

        set_records_health(stats.healthy, stats.pending)
        if stats.dropped > self._dropped:
            count_records_dropped(stats.dropped - self._dropped)
            self._dropped = stats.dropped


def call_records(settings: Settings, worker: str | None = None) -> RecordWriter:
    """Every call's facts, redacted, written to the call records database off the audio path."""
    from dialogue.pseudonym import caller_key
    from dialogue.state import state_dir
    from voicebot.redaction import Redactor

    redactor = Redactor()
    redactor.load()  # spaCy's pipelines load here, at start-up, not on a call's first turn
    rows = RecordRows(redactor.redact, caller_key(), worker=worker, languages=settings.call.languages,
                      language_threshold=settings.speech.language_threshold)  # fmt: skip
    # A 5 s busy timeout: the hourly retention run may hold the write lock a while; the writer thread can wait.
    return RecordWriter(state_dir() / CALLS_DB_NAME, rows, busy_timeout_s=5.0, on_cycle=RecordsHealth().update)
