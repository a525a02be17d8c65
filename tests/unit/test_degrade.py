from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio import AudioChunk, read_wav
from voicebot.degrade import add_noise, degrade, telephone
from voicebot.recordings import Recording, load_recordings


@pytest.fixture(scope="module")
def arctic() -> Recording:
    return next(r for r in load_recordings() if r.name == "arctic-a0007")


def _burst_in_silence(amplitude: float = 0.3) -> tuple[AudioChunk, slice]:
    """1 s of 440 Hz between 2 s of digital silence on each side: the 'speech' part is known exactly."""
    rate = 16000
    t = np.arange(rate) / rate
    burst = amplitude * np.sin(2 * np.pi * 440 * t)
    signal = np.concatenate([np.zeros(2 * rate), burst, np.zeros(2 * rate)])
    return AudioChunk.from_samples(signal.astype(np.float32), rate), slice(2 * rate, 3 * rate)


def _above_4khz_fraction(chunk: AudioChunk) -> float:
    power = np.abs(np.fft.rfft(chunk.to_float())) ** 2
    bins = np.fft.rfftfreq(chunk.samples_per_channel, 1 / chunk.rate)
    return float(power[bins > 4000].sum() / power.sum())


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 10.0, 20.0])
def test_add_noise_hits_the_snr_over_the_speech_part(snr_db: float) -> None:
    clean, speech = _burst_in_silence()
    noisy = add_noise(clean, snr_db, seed=3)
    signal = clean.samples().astype(np.float64)
    noise = noisy.samples().astype(np.float64) - signal
    measured = 10 * np.log10(np.mean(signal[speech] ** 2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_add_noise_level_ignores_leading_and_trailing_silence(arctic: Recording) -> None:
    speech = read_wav(arctic.path)
    padded = AudioChunk(bytes(3 * 32000) + speech.audio + bytes(3 * 32000), speech.rate)
    noise_power = []
    for chunk in (speech, padded):
        noisy = add_noise(chunk, 10.0, seed=1)
        noise = noisy.samples().astype(np.float64) - chunk.samples()
        noise_power.append(np.mean(noise**2))
    assert 10 * np.log10(noise_power[1] / noise_power[0]) == pytest.approx(0.0, abs=0.5)


def test_add_noise_is_reproducible_per_seed(arctic: Recording) -> None:
    speech = read_wav(arctic.path)
    assert add_noise(speech, 10.0, seed=7).audio == add_noise(speech, 10.0, seed=7).audio
    assert add_noise(speech, 10.0, seed=7).audio != add_noise(speech, 10.0, seed=8).audio


def test_add_noise_clips_instead_of_wrapping_around() -> None:
    loud = AudioChunk.from_samples(np.full(16000, 32000, dtype=np.int16), 16000)
    noisy = add_noise(loud, 20.0).samples()
    assert noisy.max() == 32767
    assert noisy.min() > 0  # int16 overflow would have wrapped to large negative values


def test_add_noise_refuses_digital_silence() -> None:
    with pytest.raises(ValueError, match="silent"):
        add_noise(AudioChunk.silence(1.0, 16000), 10.0)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_telephone_is_8khz_and_band_limited(arctic: Recording, codec: str) -> None:
    speech = read_wav(arctic.path)
    line = telephone(speech, codec)
    assert (line.rate, line.channels) == (8000, 1)
    assert line.duration_s == pytest.approx(speech.duration_s, abs=0.001)
    assert _above_4khz_fraction(speech) > 1e-3  # the clean clip has real energy up there
    assert _above_4khz_fraction(line.resample(16000)) < 1e-6


def test_telephone_downmixes_stereo(arctic: Recording) -> None:
    mono = read_wav(arctic.path).samples()
    stereo = AudioChunk.from_samples(np.stack([mono, mono], axis=1), 16000)
    assert telephone(stereo).audio == telephone(AudioChunk.from_samples(mono, 16000)).audio


def test_telephone_codecs_differ_and_unknown_codec_fails(arctic: Recording) -> None:
    speech = read_wav(arctic.path)
    assert telephone(speech, "pcmu").audio != telephone(speech, "pcma").audio
    with pytest.raises(ValueError, match="unknown codec"):
        telephone(speech, "opus")


def test_degrade_composes_noise_then_line(arctic: Recording) -> None:
    speech = read_wav(arctic.path)
    assert degrade(speech, None, None) is speech
    assert degrade(speech, None, 10.0, seed=2).audio == add_noise(speech, 10.0, seed=2).audio
    both = degrade(speech, "pcma", 10.0, seed=2)
    assert both.audio == telephone(add_noise(speech, 10.0, seed=2), "pcma").audio
    assert both.rate == 8000
