"""Make clean speech sound like a phone call: narrowband G.711 and background noise."""

from __future__ import annotations

import numpy as np

from voicebot.audio import AudioChunk
from voicebot.g711 import g711_roundtrip

TELEPHONE_RATE = 8000
_FRAME_MS = 20
# Frames more than 30 dB below the loudest one count as silence when measuring speech power.
_SPEECH_FLOOR_DB = -30.0


def telephone(chunk: AudioChunk, codec: str = "pcmu") -> AudioChunk:
    """Mono 8 kHz (soxr band-limits to 4 kHz) through a G.711 encode/decode; stays at 8 kHz."""
    narrowband = chunk.to_mono().resample(TELEPHONE_RATE)
    return g711_roundtrip(narrowband, codec)


def speech_power(samples: np.ndarray, rate: int) -> float:
    """Mean power of the frames that hold speech, so leading/trailing silence does not dilute it."""
    flat = samples.astype(np.float64).reshape(len(samples), -1)
    frame_len = max(1, rate * _FRAME_MS // 1000)
    usable = len(flat) // frame_len * frame_len
    if usable == 0:
        return float(np.mean(flat**2)) if flat.size else 0.0
    frame_power = np.mean(flat[:usable].reshape(-1, frame_len * flat.shape[1]) ** 2, axis=1)
    loudest = float(frame_power.max())
    if loudest == 0.0:
        return 0.0
    speech = frame_power[frame_power >= loudest * 10 ** (_SPEECH_FLOOR_DB / 10)]
    return float(speech.mean())


def add_noise(chunk: AudioChunk, snr_db: float, seed: int = 0) -> AudioChunk:
    """Add white Gaussian noise at `snr_db` relative to the speech frames; the result is clipped to int16."""
    samples = chunk.samples().astype(np.float64)
    power = speech_power(samples, chunk.rate)
    if power == 0.0:
        raise ValueError("cannot add noise at an SNR to silent audio")
    noise_rms = np.sqrt(power / 10 ** (snr_db / 10))
    noisy = samples + np.random.default_rng(seed).standard_normal(samples.shape) * noise_rms
    clipped = np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
    return AudioChunk.from_samples(clipped, chunk.rate)


def degrade(chunk: AudioChunk, codec: str | None, snr_db: float | None, seed: int = 0) -> AudioChunk:
    """Noise at the caller's end first, then the phone line; either step is skipped when None."""
    result = chunk
    if snr_db is not None:
        result = add_noise(result, snr_db, seed)
    if codec is not None:
        result = telephone(result, codec)
    return result
