"""Typed audio: every chunk carries its format. Conversions happen only at the edges."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

PIPELINE_RATE = 16000  # what VAD and Whisper consume


class AudioFileError(ValueError):
    """A caller recording or prompt file that cannot be used (user error, no traceback)."""


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int = 2
    channels: int = 1

    def bytes_for_ms(self, ms: int) -> int:
        return self.rate * ms // 1000 * self.width * self.channels


@dataclass(frozen=True)
class AudioChunk:
    """Signed little-endian PCM, interleaved when channels > 1."""

    audio: bytes
    rate: int
    width: int = 2
    channels: int = 1

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.rate, self.width, self.channels)

    @property
    def samples_per_channel(self) -> int:
        return len(self.audio) // (self.width * self.channels)

    @property
    def duration_s(self) -> float:
        return self.samples_per_channel / self.rate

    def samples(self) -> np.ndarray:
        """int16 samples, shape (n,) for mono or (n, channels)."""
        self._require_16bit()
        data = np.frombuffer(self.audio, dtype="<i2")
        return data if self.channels == 1 else data.reshape(-1, self.channels)

    def to_float(self) -> np.ndarray:
        return self.samples().astype(np.float32) / 32768.0

    @classmethod
    def from_samples(cls, samples: np.ndarray, rate: int) -> AudioChunk:
        """Build from int16 or float samples; float input is clipped to [-1, 1]."""
        arr = np.asarray(samples)
        if arr.dtype.kind == "f":
            arr = np.clip(arr, -1.0, 1.0) * 32767.0
        pcm = np.ascontiguousarray(arr.astype("<i2"))
        channels = 1 if pcm.ndim == 1 else pcm.shape[1]
        return cls(pcm.tobytes(), rate, 2, channels)

    @classmethod
    def silence(cls, duration_s: float, rate: int) -> AudioChunk:
        return cls(bytes(round(duration_s * rate) * 2), rate)

    def to_mono(self) -> AudioChunk:
        if self.channels == 1:
            return self
        mixed = self.samples().astype(np.int32).mean(axis=1)
        return AudioChunk.from_samples(mixed.astype(np.int16), self.rate)

    def resample(self, rate: int) -> AudioChunk:
        """One-shot conversion with soxr (for whole utterances or prompts)."""
        if rate == self.rate:
            return self
        converted = soxr.resample(self.samples(), self.rate, rate, quality="HQ")
        return AudioChunk.from_samples(converted, rate)

    def _require_16bit(self) -> None:
        if self.width != 2:
            raise ValueError(f"expected 16-bit PCM, got {self.width * 8}-bit")


def concat(chunks: list[AudioChunk], fmt: AudioFormat) -> AudioChunk:
    for chunk in chunks:
        if chunk.format != fmt:
            raise ValueError(f"cannot concatenate {chunk.format} into {fmt}")
    return AudioChunk(b"".join(c.audio for c in chunks), fmt.rate, fmt.width, fmt.channels)


class StreamResampler:
    """Stateful soxr stream for continuous audio (a live call), keeping filter state across frames."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def process(self, chunk: AudioChunk) -> AudioChunk:
        if chunk.rate != self.in_rate or chunk.channels != 1:
            raise ValueError(f"resampler expects mono {self.in_rate} Hz, got {chunk.format}")
        if self._stream is None:
            return chunk
        out = self._stream.resample_chunk(chunk.samples())
        return AudioChunk.from_samples(out, self.out_rate)


def read_wav(path: str | Path) -> AudioChunk:
    """Read any soundfile-supported file as 16-bit PCM, keeping its rate and channels."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"audio file not found: {p} (check the path)")
    if p.is_dir():
        raise AudioFileError(f"{p} is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioFileError(f"audio file {p} is empty (0 bytes): record or export it again")
    try:
        data, rate = sf.read(str(p), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(f"cannot read audio file {p}: {exc} (expected a WAV/FLAC/OGG file)") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {p} is empty (no samples)")
    samples = data[:, 0] if data.shape[1] == 1 else data
    return AudioChunk.from_samples(samples, int(rate))


def write_wav(path: str | Path, chunk: AudioChunk) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), chunk.samples(), chunk.rate, subtype="PCM_16")


def frames(chunk: AudioChunk, frame_ms: int) -> list[AudioChunk]:
    """Split into fixed frames, zero-padding the last one."""
    size = chunk.format.bytes_for_ms(frame_ms)
    audio = chunk.audio
    if len(audio) % size:
        audio += bytes(size - len(audio) % size)
    return [
        AudioChunk(audio[i : i + size], chunk.rate, chunk.width, chunk.channels) for i in range(0, len(audio), size)
    ]
