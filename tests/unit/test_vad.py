"""Both VADs on real speech (Piper joe, resampled to 16 kHz), digital silence and white noise."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio import AudioChunk, concat, frames
from voicebot.engines.tts import PiperTTS
from voicebot.engines.vad import SileroVad, WebRtcVad, make_vad
from voicebot.models import joe_voice_path
from voicebot.ports import ConfigError, VoiceActivityDetector

LOUD_RMS = 0.05  # frames this loud in TTS output are inside words


@pytest.fixture(scope="module")
def speech() -> AudioChunk:
    voice = PiperTTS(joe_voice_path(), "en")
    chunks = list(voice.synthesize("Good morning. I am calling about my tax return, which I sent three weeks ago."))
    return concat(chunks, chunks[0].format).resample(16000)


def _decisions(vad: VoiceActivityDetector, audio: AudioChunk) -> tuple[list[bool], list[float]]:
    vad.reset()
    parts = frames(audio, vad.frame_ms)
    flags = [vad.is_speech(part.audio) for part in parts]
    rms = [float(np.sqrt(np.mean(part.to_float() ** 2))) for part in parts]
    return flags, rms


def _white_noise(seconds: float, level: float) -> AudioChunk:
    rng = np.random.default_rng(0)
    return AudioChunk.from_samples(rng.normal(0, level, int(seconds * 16000)).astype(np.float32), 16000)


@pytest.mark.parametrize("vad", [WebRtcVad(), WebRtcVad(mode=3, frame_ms=30), SileroVad()], ids=repr)
def test_speech_frames_are_mostly_speech(vad: VoiceActivityDetector, speech: AudioChunk) -> None:
    flags, rms = _decisions(vad, speech)
    loud = [flag for flag, level in zip(flags, rms, strict=True) if level > LOUD_RMS]
    assert len(loud) > 40
    assert sum(loud) / len(loud) >= 0.9
    assert sum(flags) / len(flags) >= 0.7


@pytest.mark.parametrize("vad", [WebRtcVad(), WebRtcVad(frame_ms=10), SileroVad()], ids=repr)
def test_silence_is_not_speech(vad: VoiceActivityDetector) -> None:
    flags, _ = _decisions(vad, AudioChunk.silence(1.0, 16000))
    assert len(flags) >= 30
    assert not any(flags)


def test_silero_ignores_white_noise_that_webrtc_takes_for_speech() -> None:
    noise = _white_noise(1.0, 0.05)
    silero_flags, _ = _decisions(SileroVad(), noise)
    webrtc_flags, _ = _decisions(WebRtcVad(mode=2), noise)
    assert sum(silero_flags) / len(silero_flags) < 0.1
    assert sum(webrtc_flags) / len(webrtc_flags) > 0.5


def test_silero_state_carries_between_frames_and_reset_clears_it(speech: AudioChunk) -> None:
    vad = SileroVad()
    parts = [part.audio for part in frames(speech, vad.frame_ms)][:40]
    first = [vad.speech_probability(part) for part in parts]
    continued = vad.speech_probability(parts[0])
    vad.reset()
    again = [vad.speech_probability(part) for part in parts]
    assert again == pytest.approx(first, abs=1e-6)
    assert continued != pytest.approx(first[0], abs=1e-6)


@pytest.mark.parametrize(
    ("vad", "frame_bytes"), [(WebRtcVad(), 320), (WebRtcVad(frame_ms=30), 640), (SileroVad(), 640)]
)
def test_wrong_frame_size_raises(vad: VoiceActivityDetector, frame_bytes: int) -> None:
    with pytest.raises(ValueError, match="frames of"):
        vad.is_speech(bytes(frame_bytes))


def test_frame_sizes() -> None:
    assert (WebRtcVad().frame_ms, SileroVad().frame_ms) == (20, 32)
    assert SileroVad().is_speech(bytes(1024)) is False
    assert WebRtcVad(frame_ms=30, rate=8000).is_speech(bytes(480)) is False


def test_make_vad_builds_each_kind_and_rejects_bad_config() -> None:
    assert isinstance(make_vad("webrtc", mode=1, frame_ms=30), WebRtcVad)
    assert isinstance(make_vad("silero", threshold=0.6), SileroVad)
    with pytest.raises(ConfigError, match="unknown VAD kind"):
        make_vad("energy")
    with pytest.raises(ConfigError, match="mode"):
        make_vad("webrtc", mode=5)
    with pytest.raises(ConfigError, match="frame_ms"):
        make_vad("webrtc", frame_ms=25)
    with pytest.raises(ConfigError, match="16000"):
        make_vad("silero", rate=8000)
    with pytest.raises(ConfigError, match="invalid options"):
        make_vad("silero", aggressiveness=3)
