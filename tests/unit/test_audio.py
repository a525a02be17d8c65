from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.audio import AudioChunk, AudioFileError, StreamResampler, frames, read_wav, write_wav


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> AudioChunk:
    t = np.arange(int(seconds * rate)) / rate
    return AudioChunk.from_samples((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def _out_of_band_db(samples: np.ndarray, rate: int, freq: float) -> float:
    """Energy away from `freq` relative to the total, in dB (clicks and aliases show up here)."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    power = np.abs(np.fft.rfft(x)) ** 2
    bins = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(10 * np.log10(power[np.abs(bins - freq) > 50].sum() / power.sum()))


def test_read_wav_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="not found"):
        read_wav(tmp_path / "nope.wav")


def test_read_wav_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="directory"):
        read_wav(tmp_path)


def test_read_wav_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"empty\.wav"):
        read_wav(path)


def test_read_wav_header_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "nosamples.wav"
    write_wav(path, AudioChunk(b"", 16000))
    with pytest.raises(AudioFileError, match="empty"):
        read_wav(path)


def test_read_wav_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    with pytest.raises(AudioFileError, match="cannot read"):
        read_wav(path)


def test_write_then_read_keeps_rate_channels_and_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stereo = AudioChunk.from_samples(rng.integers(-20000, 20000, size=(500, 2)).astype(np.int16), 22050)
    path = tmp_path / "stereo.wav"
    write_wav(path, stereo)
    back = read_wav(path)
    assert (back.rate, back.channels, back.width) == (22050, 2, 2)
    assert back.audio == stereo.audio


def test_frames_pads_the_last_frame_with_silence() -> None:
    chunk = AudioChunk.from_samples(np.arange(1, 1001, dtype=np.int16), 16000)
    parts = frames(chunk, 20)  # 320 samples per frame
    assert [p.samples_per_channel for p in parts] == [320, 320, 320, 320]
    joined = np.concatenate([p.samples() for p in parts])
    assert np.array_equal(joined[:1000], np.arange(1, 1001))
    assert not joined[1000:].any()


def test_frames_exact_multiple_adds_no_frame() -> None:
    assert len(frames(AudioChunk.silence(0.1, 8000), 20)) == 5


@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (8000, 16000), (22050, 8000), (22050, 16000)])
def test_resample_preserves_duration_and_pitch(src: int, dst: int) -> None:
    tone = _tone(440, 1.5, src)
    out = tone.resample(dst)
    assert out.rate == dst
    assert out.duration_s == pytest.approx(tone.duration_s, abs=1 / dst)
    assert _out_of_band_db(out.samples(), dst, 440) < -60


def test_resample_same_rate_is_identity() -> None:
    tone = _tone(440, 0.2, 16000)
    assert tone.resample(16000) is tone


def test_stream_resampler_is_continuous_across_frames() -> None:
    source = _tone(1000, 2.0, 8000)
    resampler = StreamResampler(8000, 16000)
    out = np.concatenate([resampler.process(f).samples() for f in frames(source, 20)])
    # soxr holds back a few ms of filter delay; everything else comes out
    assert 2 * source.samples_per_channel - len(out) < 16000 * 0.05
    skip = 16000 // 20  # the filter's start-up transient
    assert _out_of_band_db(out[skip:], 16000, 1000) < -70


def test_stream_resampler_rejects_other_formats_and_passes_through_equal_rates() -> None:
    with pytest.raises(ValueError, match="expects mono 8000"):
        StreamResampler(8000, 16000).process(AudioChunk.silence(0.02, 16000))
    chunk = _tone(300, 0.02, 16000)
    assert StreamResampler(16000, 16000).process(chunk) is chunk
