"""G.711 against the CPython `audioop` reference (still shipped with Python 3.11)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voicebot.audio import AudioChunk
from voicebot.g711 import alaw_decode, alaw_encode, g711_roundtrip, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_every_int16() -> None:
    assert ulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.tobytes(), 2)


def test_alaw_encode_matches_audioop_for_every_int16() -> None:
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16.tobytes(), 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert ulaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert alaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_roundtrip_keeps_format_and_bounds_the_relative_error(codec: str) -> None:
    t = np.arange(8000) / 8000
    tone = AudioChunk.from_samples((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    decoded = g711_roundtrip(tone, codec)
    assert decoded.format == tone.format
    error = decoded.samples().astype(np.float64) - tone.samples()
    snr_db = 10 * np.log10(np.mean(tone.samples().astype(np.float64) ** 2) / np.mean(error**2))
    assert snr_db > 30  # G.711 gives ~38 dB SQNR on a loud tone


def test_roundtrip_rejects_wrong_rate_and_unknown_codec() -> None:
    with pytest.raises(ValueError, match="8000 Hz"):
        g711_roundtrip(AudioChunk.silence(0.1, 16000), "pcmu")
    with pytest.raises(ValueError, match="unknown codec"):
        g711_roundtrip(AudioChunk.silence(0.1, 8000), "g729")
