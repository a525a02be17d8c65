"""G.711 µ-law and A-law codecs (ITU-T G.711), vectorised with numpy.

Encoders take int16 samples and return one byte per sample; decoders are table lookups.
"""

from __future__ import annotations

import numpy as np

from voicebot.audio import AudioChunk

_ULAW_BIAS = 0x21
_ULAW_CLIP = 8159


def ulaw_encode(samples: np.ndarray) -> bytes:
    pcm = samples.astype(np.int32) >> 2  # µ-law works on 14-bit values
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + _ULAW_BIAS
    seg = _segment(magnitude)
    mantissa = (magnitude >> (seg + 1)) & 0x0F
    code = np.where(seg > 7, 0x7F, (seg << 4) | mantissa)  # clipped to the loudest code
    mask = np.where(negative, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8).tobytes()


def _segment(magnitude: np.ndarray) -> np.ndarray:
    """G.711 µ-law segment (0..7, 8 when over range) of a biased 14-bit magnitude."""
    seg = np.zeros(magnitude.shape, dtype=np.int32)
    for threshold in range(8):
        seg += (magnitude > (0x3F << threshold | ((1 << threshold) - 1))).astype(np.int32)
    return seg


def _ulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    seg = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << seg) - 0x84  # 16-bit scale bias
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> bytes:
    pcm = samples.astype(np.int32) >> 3  # A-law works on 13-bit magnitudes
    negative = pcm < 0
    magnitude = np.where(negative, -pcm - 1, pcm)
    magnitude = np.minimum(magnitude, 0xFFF)
    seg = _alaw_segment(magnitude)
    mantissa = np.where(seg == 0, magnitude >> 1, magnitude >> seg) & 0x0F
    code = (seg << 4) | mantissa
    code = np.where(negative, code, code | 0x80)
    return (code ^ 0x55).astype(np.uint8).tobytes()


def _alaw_segment(magnitude: np.ndarray) -> np.ndarray:
    seg = np.zeros(magnitude.shape, dtype=np.int32)
    for threshold in range(1, 8):
        seg += (magnitude >= (0x10 << threshold)).astype(np.int32)
    return seg


def _alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(seg == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(seg - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_TABLE = _ulaw_decode_table()
_ALAW_TABLE = _alaw_decode_table()


def ulaw_decode(data: bytes) -> np.ndarray:
    return _ULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    return _ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


CODECS = {
    "pcmu": (ulaw_encode, ulaw_decode),
    "pcma": (alaw_encode, alaw_decode),
}


def g711_roundtrip(chunk: AudioChunk, codec: str) -> AudioChunk:
    """Encode and decode 8 kHz audio as a telephone line would."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")
    if chunk.rate != 8000 or chunk.channels != 1:
        raise ValueError(f"G.711 needs mono 8000 Hz audio, got {chunk.format}")
    encode, decode = CODECS[codec]
    return AudioChunk.from_samples(decode(encode(chunk.samples())), 8000)
