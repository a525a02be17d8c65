"""Recording a call: frames fed as the CallHost feeds them (caller frames, the playout read through the tap) become an
encrypted stereo WAV (caller left, bot right) and a `recordings` row; the recording notice goes with it."""

from __future__ import annotations

import io
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicebot import events as ev
from voicebot.audio import AudioChunk, AudioFormat
from voicebot.call_recorder import NOTICE_PROMPT, CallRecorder, open_recorder, welcome_prompts
from voicebot.playout import Playout
from voicebot.privacy_settings import RecordingSettings
from voicebot.prompts import PromptTexts
from voicebot.recording_crypto import add_key, decrypt_chunks, load_keyring, read_header

from .test_session import PROMPTS, ScriptedDialogue, ScriptedStt, make_call

RATE = 16000
FORMAT = AudioFormat(RATE)
FRAME = FORMAT.bytes_for_ms(20)
BASE = ("disclosure", "greeting")
TEXTS = PromptTexts(3, {lang: {"disclosure": "AI.", "greeting": "Hi.", NOTICE_PROMPT: "Recorded."} for lang in
                        ("en", "fr")})  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> RecordingSettings:
    keyring = tmp_path / "keys.yaml"
    add_key(keyring, "k1")
    return RecordingSettings(enabled=True, keyring=keyring, dir=tmp_path / "recordings")


def noise(seconds: float, seed: int) -> bytes:
    """Random PCM: no run of it can appear in a ciphertext by chance."""
    return np.random.default_rng(seed).integers(-20000, 20000, int(seconds * RATE), dtype="<i2").tobytes()


def record_call(recorder: CallRecorder, caller: bytes, bot: bytes) -> None:
    """What the CallHost does each 20 ms tick: the received frame in, the playout's frame out through the tap."""
    playout = Playout(FORMAT)
    playout.push(AudioChunk(bot, RATE))
    read = recorder.tap(playout.read)
    for start in range(0, len(caller), FRAME):
        recorder.caller(caller[start : start + FRAME])
        read(FRAME)
    thread = recorder.finish()
    assert thread is not None
    thread.join(10)
    assert recorder.written.is_set()


def stereo_of(path: Path, settings: RecordingSettings) -> tuple[np.ndarray, int]:
    wav = b"".join(decrypt_chunks(path, load_keyring(settings.keyring)))
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    return samples, rate


def test_a_recorded_call_is_an_encrypted_stereo_wav_with_its_row(settings: RecordingSettings, tmp_path: Path) -> None:
    caller, bot = noise(3.0, 1), noise(1.3, 2)  # the bot falls silent after 1.3 s
    calls_db = tmp_path / "calls.db"
    recorder = CallRecorder("w0-7-abcd", FORMAT, load_keyring(settings.keyring), settings.directory(), calls_db,
                            clock=lambda: 1_800_000_000.0)  # fmt: skip
    record_call(recorder, caller, bot)

    samples, rate = stereo_of(recorder.path, settings)
    assert rate == RATE and samples.shape == (3 * RATE, 2)
    assert samples[:, 0].tobytes() == caller
    assert samples[: len(bot) // 2, 1].tobytes() == bot and not samples[len(bot) // 2 :, 1].any()

    with sqlite3.connect(calls_db) as conn:
        row = conn.execute("SELECT call_id, path, key_id, created, bytes FROM recordings").fetchone()
    assert row == ("w0-7-abcd", str(recorder.path), "k1", "2027-01-15T08:00:00.000Z", recorder.path.stat().st_size)
    assert read_header(recorder.path).key_id == "k1"

    on_disk = recorder.path.read_bytes()
    interleaved = samples.tobytes()
    for source in (caller, bot, interleaved):
        for start in range(0, len(source) - 32, len(source) // 7):
            assert source[start : start + 32] not in on_disk  # no plaintext PCM run anywhere in the file


def test_missing_caller_frames_keep_both_sides_in_time(settings: RecordingSettings, tmp_path: Path) -> None:
    recorder = CallRecorder("c-dtmf", FORMAT, load_keyring(settings.keyring), settings.directory(), tmp_path / "c.db")
    bot = noise(1.0, 3)
    playout = Playout(FORMAT)
    playout.push(AudioChunk(bot, RATE))
    read = recorder.tap(playout.read)
    caller_frames = [noise(0.02, 100 + i) for i in range(50)]
    for i, frame in enumerate(caller_frames):
        if not 10 <= i < 20:  # 200 ms of no caller frames (pjmedia drops non-audio frames around DTMF)
            recorder.caller(frame)
        read(FRAME)
    thread = recorder.finish()
    assert thread is not None
    thread.join(10)
    samples, _ = stereo_of(recorder.path, settings)
    left = samples[:, 0].tobytes()
    assert samples[:, 1].tobytes() == bot
    frame_40 = left.index(caller_frames[40])  # after the gap the caller's audio is at most 3 frames early
    assert 37 * FRAME <= frame_40 <= 40 * FRAME


def test_recording_disabled_records_nothing_and_plays_no_notice(tmp_path: Path) -> None:
    disabled = RecordingSettings(enabled=False, dir=tmp_path / "recordings")
    assert open_recorder(disabled, TEXTS, "c1", FORMAT, BASE) is None
    assert welcome_prompts(disabled, TEXTS, BASE) == BASE
    assert not (tmp_path / "recordings").exists()


def test_a_missing_keyring_disables_recording_for_the_call_with_an_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = RecordingSettings(enabled=True, keyring=tmp_path / "lost.yaml", dir=tmp_path / "recordings")
    assert welcome_prompts(broken, TEXTS, BASE) == BASE  # no notice: nothing is recorded
    with caplog.at_level(logging.ERROR):
        assert open_recorder(broken, TEXTS, "c-lost", FORMAT, BASE) is None
    assert "ALERT call c-lost: recording disabled" in caplog.text and str(tmp_path / "lost.yaml") in caplog.text


def test_no_call_is_recorded_without_its_notice(settings: RecordingSettings, caplog: pytest.LogCaptureFixture) -> None:
    welcome = welcome_prompts(settings, TEXTS, BASE)
    assert welcome == ("disclosure", NOTICE_PROMPT, "greeting")
    assert isinstance(open_recorder(settings, TEXTS, "c2", FORMAT, welcome), CallRecorder)
    with caplog.at_level(logging.ERROR):
        assert open_recorder(settings, TEXTS, "c3", FORMAT, BASE) is None  # welcome without the notice
    no_french = PromptTexts(3, {"en": TEXTS.texts["en"], "fr": {"disclosure": "IA.", "greeting": "Bonjour."}})
    assert welcome_prompts(settings, no_french, BASE) == BASE
    assert "does not hear the recording notice" in caplog.text


async def test_the_recording_notice_is_logged_like_the_ai_disclosure(settings: RecordingSettings) -> None:
    texts = PromptTexts(1, {"en": {**PROMPTS.texts["en"], NOTICE_PROMPT: "This call is recorded."}})
    welcome = welcome_prompts(settings, texts, BASE)
    session, call, sink, _ = make_call(ScriptedStt([]), ScriptedDialogue([]), welcome=welcome)
    session.engines.prompts.texts = texts
    await session.start()
    await call.wait_until_quiet()
    notices = [(e.notice, e.prompt_version, e.heard_to_end) for e in sink.of(ev.DisclosurePlayed)]
    assert notices == [("ai", "1", True), ("recording", "1", True)]


def test_a_caller_who_hung_up_during_the_notice_is_not_recorded(settings: RecordingSettings, tmp_path: Path) -> None:
    recorder = CallRecorder("c-cut", FORMAT, load_keyring(settings.keyring), settings.directory(), tmp_path / "c.db")
    read = recorder.tap(Playout(FORMAT).read)
    for _ in range(50):
        recorder.caller(noise(0.02, 4))
        read(FRAME)
    assert recorder.finish(notice_heard=False) is None
    assert recorder.written.is_set()
    assert not list(settings.directory().glob("*")) and not (tmp_path / "c.db").exists()
