"""eSpeak NG formant synthesis through ctypes: robotic, but every language. Emergency fallback only."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator

import espeakng_loader

from voicebot.audio import AudioChunk
from voicebot.engines.tts import split_sentences
from voicebot.ports import ConfigError, EngineError

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE = 1
EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Library:
    """The process-global libespeak-ng: initialised once, every use under `lock`."""

    lock = threading.Lock()
    _instance: _Library | None = None

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_EspeakVoice)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise EngineError(f"espeak_Initialize failed ({rate})")
        self.rate = int(rate)
        self._lib = lib
        self._pieces: list[bytes] = []
        self._callback = _SynthCallback(self._collect)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Library:
        """Call with `lock` held."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, wav: ctypes._Pointer, count: int, _events: int | None) -> int:
        if count > 0:
            self._pieces.append(ctypes.string_at(wav, count * 2))
        return 0

    def select_voice(self, language: str) -> bool:
        voice = _EspeakVoice(languages=language.encode())
        return bool(self._lib.espeak_SetVoiceByProperties(ctypes.byref(voice)) == EE_OK)

    def synthesize(self, text: str, rate_wpm: int) -> bytes:
        self._pieces = []
        self._lib.espeak_SetParameter(ESPEAK_RATE, rate_wpm, 0)
        data = text.encode()
        size = len(data) + 1
        status = self._lib.espeak_Synth(data, size, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != EE_OK:
            raise EngineError(f"espeak_Synth failed ({status})")
        return b"".join(self._pieces)


def _espeak_language(language: str) -> str:
    return language.strip().lower().replace("_", "-")


class EspeakTTS:
    def __init__(self, language: str, rate_wpm: int = 165) -> None:
        self.language = language
        self.rate_wpm = rate_wpm
        self._espeak_language = _espeak_language(language)
        with _Library.lock:
            library = _Library.get()
            if not self._espeak_language or not library.select_voice(self._espeak_language):
                raise ConfigError(f"eSpeak NG has no voice for language {language!r} (use a code like 'fr' or 'en')")
            self.rate = library.rate

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        for sentence in split_sentences(text):
            with _Library.lock:
                library = _Library.get()
                library.select_voice(self._espeak_language)
                pcm = library.synthesize(sentence, self.rate_wpm)
            if pcm:
                yield AudioChunk(pcm, self.rate)
