"""The whole pipeline through the real engines (webrtcvad/Silero, Whisper, Piper) and the real Rasa server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from dialogue.rasa_client import RasaRestClient
from dialogue.rasa_service import RasaService
from voicebot import events as ev
from voicebot.audio import AudioChunk, concat, read_wav
from voicebot.compose import Runtime, build_runtime
from voicebot.config import Settings, load_settings
from voicebot.recordings import load_recordings
from voicebot.simulate import ChannelSpec, simulate_call
from voicebot.wer import corpus_wer

pytestmark = pytest.mark.rasa


def settings_for(service: RasaService, **speech: object) -> Settings:
    settings = load_settings().replace("dialogue", rasa_url=service.url, auth_token=service.auth_token)
    return settings.replace("speech", **speech) if speech else settings


@pytest_asyncio.fixture(scope="session")
async def runtime(rasa_service: RasaService) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings_for(rasa_service))
    yield runtime
    await runtime.aclose()


def accepted_text(events: list[ev.CallEvent]) -> str:
    return " ".join(e.text for e in events if isinstance(e, ev.Transcript) and e.accepted)


def bot_energy(stereo: AudioChunk) -> float:
    return float(np.abs(stereo.samples()[:, 1].astype(np.int32)).mean())


@pytest.mark.parametrize(
    "channel",
    [ChannelSpec(16000), ChannelSpec(8000, "pcmu"), ChannelSpec(8000, "pcma")],
    ids=["16k", "8k-pcmu", "8k-pcma"],
)
async def test_real_recordings_are_transcribed_and_answered(runtime: Runtime, channel: ChannelSpec) -> None:
    pairs = []
    for recording in load_recordings():
        result = await simulate_call(runtime, read_wav(recording.path), channel, language="en", welcome=False)
        heard = accepted_text(result.events)
        assert heard, f"{recording.name}: nothing accepted"
        replies = [e for e in result.events if isinstance(e, ev.DialogueReplied)]
        assert replies and all(r.texts for r in replies), f"{recording.name}: Rasa gave no answer"
        assert not [e for e in result.events if isinstance(e, ev.CallError)]
        assert bot_energy(result.stereo) > 10, f"{recording.name}: the reply was not audible"
        pairs.append((recording.transcript, heard))
    assert len(pairs) == 12
    assert corpus_wer(pairs) <= 0.08, pairs


async def test_sample_call_greets_answers_the_faq_and_hangs_up(runtime: Runtime) -> None:
    from voicebot.simulate import DEFAULT_CALLER

    result = await simulate_call(runtime, read_wav(DEFAULT_CALLER), ChannelSpec(8000, "pcmu"))
    intents = [e.intent for e in result.events if isinstance(e, ev.DialogueReplied)]
    assert intents == ["greet", "faq", "goodbye", "inform"]
    prompts = [e.prompt for e in result.events if isinstance(e, ev.BotSpeechStarted) and e.prompt]
    assert prompts[:2] == ["disclosure", "greeting"]
    assert result.outcome == "hangup-by-bot"
    timings = [e for e in result.events if isinstance(e, ev.TurnTimings)]
    assert len(timings) == 4
    assert all(t.asr_ms > 0 and t.dialogue_ms > 0 and t.tts_first_audio_ms > 0 for t in timings)


async def test_barge_in_with_real_speech_stops_the_bot(runtime: Runtime) -> None:
    recordings = {r.name: r for r in load_recordings()}
    first = read_wav(recordings["arctic-a0007"].path)
    cards = read_wav(recordings["cards-005"].path)
    # The second clip starts 0.8 s after the first ends: the bot is still speaking its fallback answer.
    caller = concat([first, AudioChunk.silence(0.8, 16000), cards, AudioChunk.silence(3.0, 16000)], first.format)
    result = await simulate_call(runtime, caller, ChannelSpec(16000), language="en", welcome=False)
    barge = [e for e in result.events if isinstance(e, ev.BargeIn)]
    assert [e.turn for e in barge] == [1]
    interrupted = [e for e in result.events if isinstance(e, ev.BotSpeechEnded) and e.interrupted]
    assert [e.turn for e in interrupted] == [1]
    assert [e.turn for e in result.events if isinstance(e, ev.BotSpeechStarted)] == [1, 2], "turn 2 answered"
    texts = [e.text for e in result.events if isinstance(e, ev.Transcript) and e.accepted]
    assert any("spades" in t.lower() for t in texts), texts


async def test_silero_turn_taking_works_on_a_phone_line(rasa_service: RasaService) -> None:
    runtime = build_runtime(settings_for(rasa_service, vad="silero"))
    try:
        recordings = {r.name: r for r in load_recordings()}
        result = await simulate_call(
            runtime, read_wav(recordings["jfk"].path), ChannelSpec(8000, "pcmu"), language="en", welcome=False
        )
    finally:
        await runtime.aclose()
    heard = accepted_text(result.events)
    assert corpus_wer([(recordings["jfk"].transcript, heard)]) <= 0.15, heard


async def test_rasa_outage_mid_call_becomes_apology_and_transfer(rasa_service: RasaService) -> None:
    dead = RasaRestClient("http://127.0.0.1:9", "x", timeout_s=2.0)
    runtime = build_runtime(settings_for(rasa_service), dialogue=dead)
    try:
        recordings = {r.name: r for r in load_recordings()}
        result = await simulate_call(runtime, read_wav(recordings["jfk"].path), ChannelSpec(16000), welcome=False)
    finally:
        await runtime.aclose()
    errors = [e for e in result.events if isinstance(e, ev.CallError)]
    assert [e.stage for e in errors] == ["dialogue"]
    assert "127.0.0.1:9" in errors[0].error
    transfers = [e for e in result.events if isinstance(e, ev.TransferRequested)]
    assert [(t.queue, t.reason) for t in transfers] == [("general", "dialogue_error")]
    assert result.outcome == "transferred"
    assert bot_energy(result.stereo) > 10, "the caller must hear the apology"
