"""eSpeak NG formant synthesis through ctypes: robotic, but every language. Emergency fallback only.

Voices are named `<language>[+<variant>]` ("fr", "fr-be", "fr+m1": the variants of `espeak-ng --voices=variant`).
Synthesis is deterministic: eSpeak's pitch flutter and roughness advance a phase that lives for the whole
process, so the same sentence came out differently depending on what had been said before (and Whisper heard
different words). Every voice is loaded from a generated voice file with both turned off.
"""

from __future__ import annotations

import atexit
import ctypes
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import espeakng_loader

from voicebot.audio import AudioChunk
from voicebot.engines.tts import split_sentences
from voicebot.ports import ConfigError, EngineError

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE = 1
EE_OK = 0
# Appended to every generated voice file: no pitch flutter, no roughness (both carry process-wide state).
STEADY_SETTINGS = "flutter 0\nroughness 0\n"

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
        lib.espeak_SetVoiceByFile.argtypes = [ctypes.c_char_p]
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_EspeakVoice)
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
        self.data_dir = Path(espeakng_loader.get_data_path())
        self._lib = lib
        self._voice_dir = Path(tempfile.mkdtemp(prefix="voicebot-espeak-"))
        atexit.register(shutil.rmtree, self._voice_dir, True)
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

    def steady_voice_file(self, language: str, variant: str | None) -> Path | None:
        """A voice file for `language` (+ `variant`) without flutter and roughness; None if eSpeak lacks either."""
        if not self.select_voice(language):
            return None
        identifier = (self._lib.espeak_GetCurrentVoice().contents.identifier or b"").decode()
        base = self.data_dir / "lang" / identifier
        extra = self.data_dir / "voices" / "!v" / variant if variant else None
        if not base.is_file() or (extra is not None and not extra.is_file()):
            return None
        text = base.read_text(encoding="utf-8", errors="replace")
        if extra is not None:
            text += "\n" + _variant_settings(extra)
        # A plain lower-case file name: eSpeak reads "+" as a variant and did not load "roa_fr-BE".
        path = self._voice_dir / re.sub(r"[^a-z0-9]+", "_", f"{identifier}_{variant or 'default'}".lower())
        path.write_text(f"{text}\n{STEADY_SETTINGS}", encoding="utf-8")
        return path

    def use_voice_file(self, path: Path) -> None:
        if self._lib.espeak_SetVoiceByFile(str(path).encode()) != EE_OK:
            raise EngineError(f"eSpeak NG could not load its voice file {path}")

    def synthesize(self, text: str, rate_wpm: int) -> bytes:
        self._pieces = []
        self._lib.espeak_SetParameter(ESPEAK_RATE, rate_wpm, 0)
        data = text.encode()
        size = len(data) + 1
        status = self._lib.espeak_Synth(data, size, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != EE_OK:
            raise EngineError(f"espeak_Synth failed ({status})")
        return b"".join(self._pieces)


def _variant_settings(path: Path) -> str:
    """A variant file's voice settings, without the lines that would rename the voice or its language."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(line for line in lines if line.split()[:1] not in (["language"], ["name"]))


def _espeak_language(language: str) -> str:
    return language.strip().lower().replace("_", "-")


class EspeakTTS:
    """`name` is a language code, optionally with an eSpeak variant: "fr", "fr-be", "fr+m1"."""

    def __init__(self, name: str, rate_wpm: int = 165) -> None:
        language, _, variant = name.partition("+")
        self.language = language
        self.variant = variant.strip().lower() or None
        self.rate_wpm = rate_wpm
        espeak_language = _espeak_language(language)
        with _Library.lock:
            library = _Library.get()
            voice_file = library.steady_voice_file(espeak_language, self.variant) if espeak_language else None
            self.rate = library.rate
        if voice_file is None:
            raise ConfigError(
                f"eSpeak NG has no voice {name!r} (use a language code like 'fr' or 'en', optionally with a "
                "variant from `espeak-ng --voices=variant`: 'fr+m1')"
            )
        self._voice_file = voice_file

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        for sentence in split_sentences(text):
            with _Library.lock:
                library = _Library.get()
                library.use_voice_file(self._voice_file)
                pcm = library.synthesize(sentence, self.rate_wpm)
            if pcm:
                yield AudioChunk(pcm, self.rate)
