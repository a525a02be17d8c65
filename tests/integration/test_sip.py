"""Real SIP calls on loopback: a voicebot worker (pjsua2) answering pjsua2 phones in other processes.

The caller plays recordings and records what it hears; assertions transcribe that recording with
Whisper, read the worker's call events and measure the audio energy of the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialogue.rasa_service import RasaService
from tests.support.sip_harness import (
    Worker,
    baresip_call,
    phone,
    phone_events,
    recording,
    rms_windows,
    start_worker,
    stop_phone,
    write_config,
)
from voicebot.audio import AudioChunk, concat, read_wav, write_wav
from voicebot.config import REPO_ROOT
from voicebot.engines.stt import WhisperSTT
from voicebot.recordings import load_recordings

pytestmark = pytest.mark.rasa

WORKER_PORT, GENERAL_AGENT_PORT, EMERGENCY_AGENT_PORT = 5180, 5192, 5193
GREETING_S = 6.5  # disclosure + greeting last ~6 s: the caller speaks after them
SAMPLE_CALL = REPO_ROOT / "data" / "samples" / "caller-opening-hours.wav"


@pytest.fixture(scope="module")
def worker(rasa_service: RasaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("sip-worker")
    config = write_config(
        folder / "voicebot.yaml",
        {
            # Generous: the test machine also runs Rasa, Whisper and the phones on its 2 cores.
            "dialogue": {"rasa_url": rasa_service.url, "auth_token": rasa_service.auth_token, "timeout_s": 15.0},
            "sip": {
                "rtp_port": 42000,
                "agent_answer_timeout_s": 8.0,
                "transfer_mode": "blind",  # fixed agent URIs per queue (the agent queue: test_agent_queue.py)
                "attended_queues": ["emergency"],
                "transfer_targets": {
                    "default": f"sip:agent@127.0.0.1:{GENERAL_AGENT_PORT}",
                    "emergency": f"sip:duty@127.0.0.1:{EMERGENCY_AGENT_PORT}",
                },
            },
        },
    )
    started = start_worker(config, WORKER_PORT, folder)
    yield started
    assert started.stop() == 0, started.log()[-3000:]


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT("tiny.en", REPO_ROOT / ".cache" / "models")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sip-clips")
    recordings = {r.name: r for r in load_recordings()}
    sample = read_wav(SAMPLE_CALL).to_mono().resample(16000)
    question = AudioChunk(
        sample.audio[int(5.3 * 16000) * 2 : int(7.6 * 16000) * 2], 16000
    )  # "what are your opening hours"
    out = {"question": question, "cards": read_wav(recordings["cards-005"].path).resample(16000)}
    out["jfk"] = read_wav(recordings["jfk"].path).to_mono().resample(16000)
    paths = {}
    for name, audio in out.items():
        paths[name] = folder / f"{name}.wav"
        write_wav(paths[name], audio)
    return paths


def _since_start(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def _call_events(worker: Worker, call_id: str) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e["call_id"] == call_id]


def _last_call_id(worker: Worker) -> str:
    return [e for e in worker.events() if e["event"] == "CallStarted"][-1]["call_id"]


def _text(stt: WhisperSTT, audio: AudioChunk, start_s: float, end_s: float) -> str:
    piece = AudioChunk(audio.audio[int(start_s * audio.rate) * 2 : int(end_s * audio.rate) * 2], audio.rate)
    return stt.transcribe(piece, "en").text.lower()


def test_caller_hears_the_disclosure_gets_an_answer_and_barges_in(
    worker: Worker, clips: dict[str, Path], stt: WhisperSTT, tmp_path: Path
) -> None:
    question, cards = read_wav(clips["question"]), read_wav(clips["cards"])
    barge_at = GREETING_S + question.duration_s + 2.8  # the bot is ~2 s into its answer
    line = concat([AudioChunk.silence(GREETING_S, 16000), question, AudioChunk.silence(2.8, 16000), cards,
                   AudioChunk.silence(3.0, 16000)], question.format)  # fmt: skip
    write_wav(tmp_path / "caller.wav", line.resample(8000))  # what a phone sends: 8 kHz, G.711
    heard_path = tmp_path / "heard.wav"
    caller = phone("call", "--play", str(tmp_path / "caller.wav"), "--record", str(heard_path),
                   "--hangup-at", f"{line.duration_s:.1f}", port=5191, uri=worker.uri)  # fmt: skip
    phone_log = phone_events(caller)
    assert [e["state"] for e in _since_start(phone_log, "state")][-1] == "DISCONNECTED", phone_log

    heard = recording(heard_path)
    assert "automated assistant" in _text(stt, heard, 0, GREETING_S), "the AI disclosure was not heard"
    answer = _text(stt, heard, GREETING_S + question.duration_s, barge_at)
    assert "monday" in answer, answer
    energy = rms_windows(heard)
    talking = energy[int((barge_at - 1.5) * 10) : int(barge_at * 10)]
    after_barge = energy[int((barge_at + 0.5) * 10) : int((barge_at + cards.duration_s) * 10)]
    assert talking.mean() > 0.01, "the bot was not speaking before the barge-in"
    assert after_barge.max() < 0.2 * talking.max(), "bot audio did not stop when the caller spoke"

    events = _call_events(worker, _last_call_id(worker))
    kinds = [e["event"] for e in events]
    assert "BargeIn" in kinds and kinds[-1] == "CallEnded", kinds
    assert next(e["intent"] for e in events if e["event"] == "DialogueReplied") == "faq"


def test_keypad_zero_reaches_the_dialogue_and_a_blind_transfer_lands_on_the_agent(
    worker: Worker, clips: dict[str, Path], stt: WhisperSTT, tmp_path: Path
) -> None:
    agent = phone("answer", "--record", str(tmp_path / "agent.wav"), port=GENERAL_AGENT_PORT)
    caller = phone("call", "--dtmf", f"{GREETING_S}:0", "--transfer-play", str(clips["jfk"]), "--hangup-at", "30",
                   port=5194, uri=worker.uri)  # fmt: skip
    caller_log = phone_events(caller)
    agent_log = stop_phone(agent)

    events = _call_events(worker, _last_call_id(worker))
    assert [e["digit"] for e in events if e["event"] == "DtmfReceived"] == ["0"]
    transfers = [e for e in events if e["event"] == "TransferRequested"]
    assert transfers and transfers[0]["queue"] == "general", events
    refers = _since_start(caller_log, "transfer-request")
    assert refers and f":{GENERAL_AGENT_PORT}" in refers[0]["target"], caller_log
    assert _since_start(agent_log, "incoming"), agent_log
    heard_by_agent = _text(stt, recording(tmp_path / "agent.wav"), 0, 15)
    assert "country" in heard_by_agent, heard_by_agent


def test_attended_transfer_briefs_the_agent_then_connects_the_caller(
    worker: Worker, clips: dict[str, Path], stt: WhisperSTT, tmp_path: Path
) -> None:
    from voices.catalogue import Catalogue

    voice = Catalogue.from_file(REPO_ROOT / "voices" / "voices.yaml").voice_for("en")
    said = voice.synthesize("There is a gas leak in my street, it is an emergency.")
    emergency = concat([c.resample(16000) for c in said], read_wav(clips["jfk"]).format)
    write_wav(tmp_path / "emergency.wav", emergency)
    agent = phone("answer", "--record", str(tmp_path / "agent.wav"), port=EMERGENCY_AGENT_PORT)
    caller = phone("call", "--play", str(tmp_path / "emergency.wav"), "--play-at", str(GREETING_S),
                   "--transfer-play", str(clips["jfk"]), "--hangup-at", "40", port=5195, uri=worker.uri)  # fmt: skip
    caller_log = phone_events(caller)
    agent_log = stop_phone(agent)

    events = _call_events(worker, _last_call_id(worker))
    transfers = [e for e in events if e["event"] == "TransferRequested"]
    assert transfers and transfers[0]["queue"] == "emergency", events
    assert _since_start(agent_log, "replaced"), agent_log
    briefing = _text(stt, recording(tmp_path / "agent.wav"), 0, 30)
    assert "voice assistant" in briefing and "emergency" in briefing, briefing
    caller_leg = recording(tmp_path / "agent.leg1.wav")
    assert "country" in _text(stt, caller_leg, 0, 15), "the agent did not hear the caller after the transfer"
    assert _since_start(caller_log, "transfer-request"), caller_log


def test_a_third_party_softphone_baresip_gets_the_greeting_and_an_answer(
    worker: Worker, clips: dict[str, Path], stt: WhisperSTT, tmp_path: Path
) -> None:
    question = read_wav(clips["question"])
    line = concat([AudioChunk.silence(GREETING_S, 16000), question, AudioChunk.silence(6.0, 16000)], question.format)
    write_wav(tmp_path / "caller-8k.wav", line.resample(8000))
    received = recording(baresip_call(worker.uri, tmp_path / "caller-8k.wav", tmp_path, max_s=30))
    assert "automated assistant" in _text(stt, received, 0, GREETING_S)
    answer = _text(stt, received, GREETING_S + question.duration_s, received.duration_s)
    assert "monday" in answer, answer


async def test_a_fifth_concurrent_call_to_one_worker_is_busy(worker: Worker) -> None:
    from telephony.uac import run_load

    results = await run_load(worker.uri, 5, hold_s=4.0)
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 200, 200, 200, 486], [(r.status, r.errors) for r in results]
    answered = [r for r in results if r.answered]
    assert all(r.first_audio_after(r.invite_sent_at) is not None for r in answered), "every answered call is greeted"


async def test_dtmf_arrives_by_rfc4733_and_by_sip_info(worker: Worker) -> None:
    from telephony.uac import SipCaller

    async with SipCaller() as caller:
        call = await caller.call(worker.uri)
        assert call.answered
        await asyncio.sleep(1.0)  # a person presses keys once the greeting has started
        await call.send_dtmf("12", method="rfc4733")
        await call.send_dtmf("3", method="info")
        await asyncio.sleep(1.0)
        await call.hangup()
    events = [e for e in worker.events() if e["call_id"] == _last_call_id(worker)]
    assert [e["digit"] for e in events if e["event"] == "DtmfReceived"] == ["1", "2", "3"]
