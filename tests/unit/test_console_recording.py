"""Playing a call's recording from the console: supervisors and admins get the decrypted stereo WAV (audited),
agents get 403, and a recording that fails authentication or lacks its key is an error page, never a partial file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from voicebot.audio import AudioFormat
from voicebot.audit import Audit
from voicebot.call_recorder import CallRecorder
from voicebot.config import Settings
from voicebot.console.app import create_app
from voicebot.console.settings import ConsoleSettings
from voicebot.recording_crypto import add_key, load_keyring

from .test_call_recorder import record_call
from .test_console_auth import db_path, log_in

__all__ = ["db_path"]  # the fixture, shared with the auth tests

RATE = 16000
FRAME = AudioFormat(RATE).bytes_for_ms(20)


def pcm(seconds: float, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(-9000, 9000, int(seconds * RATE), dtype="<i2").tobytes()


@pytest.fixture
def recorded(db_path: Path) -> tuple[Settings, CallRecorder, bytes, bytes]:
    """Call c-rec recorded for real (into calls.db beside the operations database): 1 s of caller and bot audio."""
    state = db_path.parent
    add_key(state / "keys.yaml", "k1")
    settings = Settings().replace("recording", enabled=True, keyring=state / "keys.yaml", dir=state / "recordings")
    recorder = CallRecorder("c-rec", AudioFormat(RATE), load_keyring(state / "keys.yaml"), state / "recordings",
                            state / "calls.db")  # fmt: skip
    caller, bot = pcm(1.0, 1), pcm(1.0, 2)
    record_call(recorder, caller, bot)
    return settings, recorder, caller, bot


def console(db_path: Path, settings: Settings, user: str) -> TestClient:
    client = TestClient(create_app(ConsoleSettings(), db_path, app_settings=settings))
    assert log_in(client, user)[0] == 303
    return client


def plays(db_path: Path) -> list[tuple[str, str]]:
    return [(e.actor, e.target) for e in Audit(db_path).entries() if e.action == "recording_play"]


@pytest.mark.parametrize("user", ["sam", "root"])
def test_supervisors_and_admins_hear_the_decrypted_recording(
    db_path: Path, recorded: tuple[Settings, CallRecorder, bytes, bytes], user: str
) -> None:
    settings, recorder, caller, bot = recorded
    response = console(db_path, settings, user).get("/calls/c-rec/recording")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav" and response.headers["cache-control"] == "no-store"
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16", always_2d=True)
    assert rate == RATE and samples[:, 0].tobytes() == caller and samples[:, 1].tobytes() == bot
    assert plays(db_path) == [(user, "call:c-rec")]
    entry = Audit(db_path).entries(limit=1)[0]
    assert entry.after == {"file": recorder.path.name, "key_id": "k1", "bytes": len(response.content)}


def test_an_agent_is_refused_and_nothing_is_audited(
    db_path: Path, recorded: tuple[Settings, CallRecorder, bytes, bytes]
) -> None:
    response = console(db_path, recorded[0], "alice").get("/calls/c-rec/recording")
    assert response.status_code == 403 and "A agent cannot open /calls/c-rec/recording" in response.text
    assert "RIFF" not in response.text and plays(db_path) == []


def test_logged_out_visitors_are_sent_to_the_login(
    db_path: Path, recorded: tuple[Settings, CallRecorder, bytes, bytes]
) -> None:
    client = TestClient(create_app(ConsoleSettings(), db_path, app_settings=recorded[0]))
    response = client.get("/calls/c-rec/recording", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_no_recording_tampering_or_a_lost_key_is_an_error_page(
    db_path: Path, recorded: tuple[Settings, CallRecorder, bytes, bytes]
) -> None:
    settings, recorder, _, _ = recorded
    client = console(db_path, settings, "sam")
    missing = client.get("/calls/c-other/recording")
    assert missing.status_code == 404 and "has no recording" in missing.text

    data = bytearray(recorder.path.read_bytes())
    data[len(data) // 2] ^= 0x40
    recorder.path.write_bytes(bytes(data))
    tampered = client.get("/calls/c-rec/recording")
    assert tampered.status_code == 409 and "fails authentication (tampered or corrupt)" in tampered.text
    assert tampered.headers["content-type"].startswith("text/html")

    add_key(db_path.parent / "other-keys.yaml", "k2")
    no_key = console(db_path, settings.replace("recording", keyring=db_path.parent / "other-keys.yaml"), "sam")
    lost = no_key.get("/calls/c-rec/recording")
    assert lost.status_code == 409 and "has no key &#39;k1&#39;" in lost.text
    assert plays(db_path) == []
