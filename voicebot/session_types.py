"""What a CallSession is built from: its engines (shared by calls) and its per-call options."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from voicebot.ports import DialogueBackend, SpeechToText, TransferRouter, VoiceActivityDetector, VoiceCatalogue
from voicebot.prompts import PromptCache
from voicebot.segmenter import EndpointConfig


@dataclass(frozen=True)
class SessionEngines:
    vad: VoiceActivityDetector
    stt: SpeechToText
    voices: VoiceCatalogue
    dialogue: DialogueBackend
    prompts: PromptCache
    asr_executor: Executor
    tts_executor: Executor
    router: TransferRouter | None = None  # supervisors' transfer rules; None: the dialogue alone decides


@dataclass(frozen=True)
class SessionOptions:
    endpoint: EndpointConfig
    default_language: str = "en"
    language_forced: bool = False
    language_threshold: float = 0.6
    language_lock_threshold: float = 0.8
    languages: tuple[str, ...] = ("en", "fr")
    default_queue: str = "general"
    max_unheard_turns: int = 2
    dialogue_timeout_s: float = 6.0
    welcome_prompts: tuple[str, ...] = ("disclosure", "greeting")
    dtmf_timeout_ms: int = 1500
    silence_reprompt_ms: int = 10000  # caller silent this long while the bot waits: "are you still there?"
    silence_reprompts: int = 2  # then the bot says it cannot hear and hangs up (0 = never)
