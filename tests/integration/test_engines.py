"""The real speech engines end to end: Piper, eSpeak NG, Whisper tiny.en and multilingual base, the catalogue."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest

from voicebot.audio import AudioChunk, concat
from voicebot.engines.espeak import EspeakTTS
from voicebot.engines.stt import WhisperSTT
from voicebot.engines.tts import PiperTTS, split_sentences
from voicebot.models import install_models, joe_voice_path, resolve_whisper_model
from voicebot.ports import ConfigError
from voices.catalogue import Catalogue

SENTENCE = "Hello, I would like to renew my passport. My appointment is next Monday at ten."


def _rms(chunk: AudioChunk) -> float:
    return float(np.sqrt(np.mean(chunk.to_float() ** 2)))


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="module")
def joe() -> PiperTTS:
    return PiperTTS(joe_voice_path(), "en")


@pytest.fixture(scope="module")
def english_16k(joe: PiperTTS) -> AudioChunk:
    chunks = list(joe.synthesize(SENTENCE))
    return concat(chunks, chunks[0].format).resample(16000)


@pytest.fixture(scope="module")
def tiny() -> WhisperSTT:
    return WhisperSTT("tiny.en")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("models")
    install_models(target, lambda _message: None)
    return target


@pytest.fixture(scope="module")
def base(models_dir: Path) -> WhisperSTT:
    return WhisperSTT("base", models_dir=models_dir)


def _white_noise(seconds: float, level: float) -> AudioChunk:
    rng = np.random.default_rng(7)
    return AudioChunk.from_samples(rng.normal(0, level, int(seconds * 16000)).astype(np.float32), 16000)


# --- TTS -----------------------------------------------------------------------------------------


def test_piper_yields_one_chunk_per_sentence(joe: PiperTTS) -> None:
    chunks = list(joe.synthesize("Your request is registered. Goodbye!"))
    assert [c.rate for c in chunks] == [22050, 22050]
    assert joe.rate == 22050
    for chunk in chunks:
        assert chunk.duration_s > 0.4
        assert _rms(chunk) > 0.05
    assert list(joe.synthesize("  \n ")) == []


def test_piper_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        PiperTTS(tmp_path / "fr_FR-nobody-medium.onnx", "fr")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"lonely\.onnx\.json"):
        PiperTTS(lonely, "en")


def test_split_sentences_handles_french_spacing() -> None:
    assert split_sentences("Bonjour ! Comment allez-vous ? « Très bien. » M. Dupont arrive.") == [
        "Bonjour !",
        "Comment allez-vous ?",
        "« Très bien. »",
        "M. Dupont arrive.",
    ]
    assert split_sentences("It costs 3.5 euros! Thanks") == ["It costs 3.5 euros!", "Thanks"]


def test_espeak_french_fallback_warns_once_and_speaks(caplog: pytest.LogCaptureFixture) -> None:
    catalogue = Catalogue()
    with caplog.at_level(logging.WARNING, logger="voicebot.voices"):
        voice = catalogue.voice_for("fr")
        assert catalogue.voice_for("fr-FR").language == "fr-fr"
        assert catalogue.voice_for("fr") is voice
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "'fr'" in w]) == 1
    assert "no Piper voice" in warnings[0] and "voices.yaml" in warnings[0]
    assert isinstance(voice, EspeakTTS)
    chunks = list(voice.synthesize("Bonjour ! Comment allez-vous ?"))
    assert len(chunks) == 2
    assert all(c.rate == voice.rate and c.duration_s > 0.3 and _rms(c) > 0.02 for c in chunks)


def test_espeak_says_the_same_sentence_identically_whatever_was_said_before() -> None:
    # eSpeak's pitch flutter and roughness carry a process-wide phase: the same sentence used to differ
    # from one synthesis to the next, and Whisper heard different words in each.
    caller, other = EspeakTTS("fr+m1"), EspeakTTS("fr")
    sentence = "Je voudrais connaître l'état de mon dossier."
    first = b"".join(c.audio for c in caller.synthesize(sentence))
    for text in ("Bonjour.", "Très bien, continuons en français. Comment puis-je vous aider ?"):
        list(other.synthesize(text))
        assert b"".join(c.audio for c in caller.synthesize(sentence)) == first
    assert (caller.language, caller.variant) == ("fr", "m1")
    assert b"".join(c.audio for c in other.synthesize(sentence)) != first  # the variant is a different voice
    with pytest.raises(ConfigError, match="espeak-ng --voices=variant"):
        EspeakTTS("fr+nobody")


def test_catalogue_uses_configured_piper_voice_and_caches_it() -> None:
    catalogue = Catalogue()
    english = catalogue.voice_for("en-US")
    assert isinstance(english, PiperTTS)
    assert english.language == "en"
    assert catalogue.voice_for("en") is english
    assert isinstance(catalogue.voice_by_name("joe"), PiperTTS)
    assert isinstance(catalogue.voice_by_name(str(joe_voice_path())), PiperTTS)
    assert catalogue.voice_by_name("espeak:de").language == "de"


def test_catalogue_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[fr\].*/nope/fr\.onnx"):
        Catalogue({"fr": {"engine": "piper", "model": "/nope/fr.onnx"}})
    bad_file = tmp_path / "voices.yaml"
    bad_file.write_text("de:\n  engine: festival\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(bad_file))} \[de\].*engine"):
        Catalogue.from_file(bad_file)
    with pytest.raises(ConfigError, match="builtin"):
        Catalogue({"en": {"engine": "piper", "model": "builtin:nobody"}})
    with pytest.raises(ConfigError, match="eSpeak NG has no voice"):
        Catalogue().voice_by_name("espeak:xx")
    with pytest.raises(ConfigError, match="unknown voice"):
        Catalogue().voice_by_name("nobody")


# --- STT -----------------------------------------------------------------------------------------


def test_tiny_en_transcribes_piper_speech(tiny: WhisperSTT, english_16k: AudioChunk) -> None:
    result = tiny.transcribe(english_16k)
    assert result.accepted, result.rejected_because
    assert jiwer.wer(_words(SENTENCE), _words(result.text)) <= 0.2
    assert (result.language, result.language_probability) == ("en", 1.0)
    assert tiny.multilingual is False


@pytest.mark.parametrize(
    "audio",
    [AudioChunk.silence(2.0, 16000), _white_noise(2.0, 0.05), _white_noise(2.0, 0.3)],
    ids=["silence", "quiet-noise", "loud-noise"],
)
def test_tiny_en_rejects_non_speech(tiny: WhisperSTT, audio: AudioChunk) -> None:
    result = tiny.transcribe(audio)
    assert not result.accepted
    assert result.text == ""
    assert result.rejected_because


def test_stt_input_checks(tiny: WhisperSTT, english_16k: AudioChunk) -> None:
    short = tiny.transcribe(AudioChunk.silence(0.05, 16000))
    assert short.rejected_because == "too short"
    with pytest.raises(ValueError, match="16000"):
        tiny.transcribe(english_16k.resample(8000))


def test_base_detects_english_and_honours_forced_language(base: WhisperSTT, english_16k: AudioChunk) -> None:
    assert base.multilingual is True
    detected = base.transcribe(english_16k)
    assert detected.accepted, detected.rejected_because
    assert detected.language == "en"
    assert detected.language_probability is not None and detected.language_probability > 0.8
    assert jiwer.wer(_words(SENTENCE), _words(detected.text)) <= 0.2
    forced = base.transcribe(english_16k, language="fr")
    assert (forced.language, forced.language_probability) == ("fr", 1.0)
    with pytest.raises(ConfigError, match="klingon"):
        base.transcribe(english_16k, language="klingon")


def test_base_rejects_noise(base: WhisperSTT) -> None:
    assert not base.transcribe(_white_noise(2.0, 0.3)).accepted


def test_unknown_models_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-model"):
        WhisperSTT("no-such-model")
    with pytest.raises(ConfigError, match="not found"):
        WhisperSTT(str(tmp_path / "missing-model"))
    with pytest.raises(ConfigError, match="cannot load"):
        WhisperSTT(str(tmp_path))  # a directory without model.bin
    with pytest.raises(ConfigError, match="voicebot models install"):
        resolve_whisper_model("base", tmp_path)


def test_install_models_is_idempotent_and_repairs_a_truncated_model(models_dir: Path) -> None:
    model = models_dir / "whisper-base" / "model.bin"
    size, inode = model.stat().st_size, model.stat().st_ino
    assert size > 100_000_000
    messages: list[str] = []
    install_models(models_dir, messages.append)
    assert model.stat().st_ino == inode
    assert any("already assembled" in m for m in messages)
    with model.open("r+b") as handle:
        handle.truncate(1000)
    install_models(models_dir, messages.append)
    assert model.stat().st_size == size
    assert sorted(p.name for p in model.parent.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    assert resolve_whisper_model("base", models_dir) == str(model.parent)
