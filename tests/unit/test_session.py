"""CallSession behaviour with fake engines (the real-engine tests live in tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from voicebot import events as ev
from voicebot.audio import AudioChunk, AudioFormat, concat
from voicebot.ports import DialogueError, DialogueReply, EngineError, Handoff, Transcription
from voicebot.prompts import PromptCache, PromptTexts
from voicebot.segmenter import EndpointConfig
from voicebot.session import CallSession
from voicebot.session_types import SessionEngines, SessionOptions
from voicebot.sinks import MemorySink
from voicebot.virtual_call import RecordingControl, VirtualCall

RATE = 16000
CHANNEL = AudioFormat(RATE)


def tone(seconds: float, amplitude: float = 0.3) -> AudioChunk:
    t = np.arange(int(seconds * RATE)) / RATE
    return AudioChunk.from_samples(amplitude * np.sin(2 * np.pi * 220 * t), RATE)


def silence(seconds: float) -> AudioChunk:
    return AudioChunk.silence(seconds, RATE)


class EnergyVad:
    rate = RATE
    frame_ms = 20

    def is_speech(self, frame: bytes) -> bool:
        return float(np.abs(np.frombuffer(frame, "<i2")).mean()) > 500

    def reset(self) -> None:
        pass


class ScriptedStt:
    multilingual = False

    def __init__(self, texts: list[str] | Exception) -> None:
        self.texts = texts
        self.calls = 0

    def transcribe(self, audio: AudioChunk, language: str | None = None) -> Transcription:
        self.calls += 1
        if isinstance(self.texts, Exception):
            raise self.texts
        text = self.texts.pop(0) if self.texts else ""
        return Transcription(text, "en", 1.0, rejected_because=None if text else "no speech")


class ToneVoice:
    language = "en"
    rate = 22050

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        if self.fail and "apolog" not in text.lower() and "wrong" not in text.lower():
            raise EngineError("voice model crashed")
        for sentence in text.split(". "):
            yield AudioChunk.from_samples(np.full(int(0.05 * len(sentence) * 22050), 3000, np.int16), 22050)


class Voices:
    def __init__(self, voice: ToneVoice) -> None:
        self.voice = voice

    def voice_for(self, language: str) -> ToneVoice:
        return self.voice


class ScriptedDialogue:
    def __init__(self, replies: list[DialogueReply | Exception]) -> None:
        self.replies = replies
        self.received: list[str] = []

    async def send(self, text, context):  # type: ignore[no-untyped-def]
        self.received.append(text)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


PROMPTS = PromptTexts(
    1,
    {
        "en": {
            name: f"{name} prompt."
            for name in (
                "disclosure",
                "greeting",
                "apology",
                "not_understood",
                "hold",
                "goodbye",
                "still_there",
                "no_response",
            )
        }
    },
)


def make_call(stt, dialogue, voice=None, welcome=(), **options):  # type: ignore[no-untyped-def]
    voices = Voices(voice or ToneVoice())
    prompts = PromptCache(PROMPTS, voices, RATE, None)  # type: ignore[arg-type]
    executor = ThreadPoolExecutor(1)
    engines = SessionEngines(EnergyVad(), stt, voices, dialogue, prompts, executor, executor)  # type: ignore[arg-type]
    options = SessionOptions(EndpointConfig.from_ms(20, end_silence_ms=300), welcome_prompts=welcome, **options)
    sink = MemorySink()
    control = RecordingControl()
    session = CallSession("c1", engines, options, CHANNEL, control, sink)
    return session, VirtualCall(session, CHANNEL), sink, control


async def test_a_turn_goes_from_speech_to_reply_with_timings():
    stt = ScriptedStt(["what are your opening hours"])
    dialogue = ScriptedDialogue([DialogueReply(("We open at nine.",), intent="ask_opening_hours")])
    session, call, sink, _ = make_call(stt, dialogue, welcome=("greeting",))
    await session.start()
    await call.wait_until_quiet()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert dialogue.received == ["what are your opening hours"]
    assert [e.intent for e in sink.of(ev.DialogueReplied)] == ["ask_opening_hours"]
    timings = sink.of(ev.TurnTimings)[0]
    assert timings.endpointing_ms == 300
    assert timings.end_of_speech_to_first_audio_ms >= timings.endpointing_ms
    assert [e.prompt for e in sink.of(ev.BotSpeechStarted)] == ["greeting", None]
    assert all(not e.interrupted for e in sink.of(ev.BotSpeechEnded))
    bot = np.frombuffer(bytes(call.bot_track), "<i2")
    assert np.abs(bot).max() > 0, "the reply must actually be heard"


async def test_barge_in_stops_bot_audio_on_the_next_frame_and_marks_the_reply_interrupted():
    long_reply = DialogueReply(("A very long answer that goes on and on about opening hours and holidays.",))
    stt = ScriptedStt(["hello", "stop"])
    dialogue = ScriptedDialogue([long_reply, DialogueReply(("Okay.",))])
    session, call, sink, _ = make_call(stt, dialogue)
    await session.start()
    await call.play(concat([tone(1.0), silence(0.6)], CHANNEL))
    assert session.playout.is_playing
    before = len(call.bot_track)
    await call.play(tone(0.2))
    barge = sink.of(ev.BargeIn)
    assert len(barge) == 1
    started = next(e for e in sink.of(ev.SpeechStarted) if e.during_bot_speech)
    assert started.t <= barge[0].t
    # frames after the start of caller speech (3 frames to detect + 1) carry no bot audio
    after = np.frombuffer(bytes(call.bot_track[before + 4 * CHANNEL.bytes_for_ms(20) :]), "<i2")
    assert np.all(after == 0)
    assert any(e.interrupted for e in sink.of(ev.BotSpeechEnded))


async def test_speech_resuming_discards_the_speculative_transcript():
    stt = ScriptedStt(["first half", "the whole sentence"])
    dialogue = ScriptedDialogue([DialogueReply(("Fine.",))])
    session, call, sink, _ = make_call(stt, dialogue)
    await session.start()
    await call.play(concat([tone(0.6), silence(0.15), tone(0.6), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert len(sink.of(ev.SpeechPaused)) == 2 and len(sink.of(ev.SpeechResumed)) == 1
    assert [e.text for e in sink.of(ev.Transcript)] == ["the whole sentence"]
    assert dialogue.received == ["the whole sentence"]


@pytest.mark.parametrize(
    ("stage", "stt", "dialogue", "voice"),
    [
        ("asr", ScriptedStt(EngineError("model gone")), [DialogueReply(("x",))], ToneVoice()),
        ("dialogue", ScriptedStt(["hi"]), [DialogueError("Rasa is not reachable")], ToneVoice()),
        ("tts", ScriptedStt(["hi"]), [DialogueReply(("Hello there.",))], ToneVoice(fail=True)),
    ],
)
async def test_a_failing_stage_becomes_call_error_apology_and_transfer(stage, stt, dialogue, voice):  # type: ignore[no-untyped-def]
    session, call, sink, control = make_call(stt, ScriptedDialogue(list(dialogue)), voice)
    await session.start()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert [e.stage for e in sink.of(ev.CallError)] == [stage]
    assert sink.of(ev.TransferRequested)[0].reason == f"{stage}_error"
    assert "apology" in [e.prompt for e in sink.of(ev.BotSpeechStarted)]
    assert len(control.transfers) == 1
    assert session.ended and session.outcome is not None and session.outcome.result() == "transferred"
    assert np.abs(np.frombuffer(bytes(call.bot_track), "<i2")).max() > 0, "the apology must be audible"


async def test_handoff_transfers_after_the_reply_and_hangup_hangs_up():
    handoff = Handoff(queue="general", reason="caller_request")
    session, call, sink, control = make_call(
        ScriptedStt(["a person please"]), ScriptedDialogue([DialogueReply(("Putting you through.",), handoff=handoff)])
    )
    await session.start()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert [t.queue for t in control.transfers] == ["general"]
    assert sink.of(ev.TransferRequested)[0].language == "en"

    session, call, sink, control = make_call(
        ScriptedStt(["bye"]), ScriptedDialogue([DialogueReply(("Goodbye.",), hangup=True)])
    )
    await session.start()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert control.hangups == ["dialogue"]
    assert session.outcome is not None and session.outcome.result() == "hangup-by-bot"


async def test_repeated_unintelligible_turns_get_a_not_understood_prompt():
    session, call, sink, _ = make_call(ScriptedStt(["", ""]), ScriptedDialogue([]))
    await session.start()
    for _ in range(2):
        await call.play(concat([tone(0.8), silence(0.5)], CHANNEL))
        await call.wait_until_quiet()
    assert [e.accepted for e in sink.of(ev.Transcript)] == [False, False]
    assert [e.prompt for e in sink.of(ev.BotSpeechStarted)] == ["not_understood"]


async def test_caller_hangup_ends_the_call():
    session, _, sink, _ = make_call(ScriptedStt([]), ScriptedDialogue([]), welcome=("greeting",))
    await session.start()
    assert await session.close() == "hangup-by-caller"
    assert sink.of(ev.CallEnded)[0].outcome == "hangup-by-caller"


async def test_an_empty_dialogue_reply_is_never_dead_air():
    session, call, sink, _ = make_call(ScriptedStt(["hmm"]), ScriptedDialogue([DialogueReply()]))
    await session.start()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert [e.prompt for e in sink.of(ev.BotSpeechStarted)] == ["not_understood"]
    assert np.abs(np.frombuffer(bytes(call.bot_track), "<i2")).max() > 0


async def test_dtmf_keys_reach_the_dialogue_and_interrupt_the_bot():
    replies = [DialogueReply(("Please type your case number, then the hash key.",)), DialogueReply(("Thank you.",))]
    dialogue = ScriptedDialogue(replies)
    session, call, sink, _ = make_call(ScriptedStt([]), dialogue, welcome=("greeting",))
    await session.start()
    session.dtmf("0")  # "0" alone is immediate
    await call.wait_until_quiet()
    assert dialogue.received == ['/dtmf{"digits": "0"}']
    assert any(e.interrupted for e in sink.of(ev.BotSpeechEnded)), "the key press interrupts the greeting"
    for key in "12345":
        session.dtmf(key)
    await call.play(silence(0.5))
    assert len(dialogue.received) == 1, "an entry without '#' waits for the inter-digit timeout"
    await call.play(silence(1.2))
    await call.wait_until_quiet()
    assert dialogue.received[1] == '/dtmf{"digits": "12345"}'
    assert [e.digit for e in sink.of(ev.DtmfReceived)] == list("012345")


async def test_a_language_chosen_in_the_dialogue_is_kept():
    dialogue = ScriptedDialogue([DialogueReply(("D'accord.",), language="fr"), DialogueReply(("Bien.",))])
    session, call, _, _ = make_call(ScriptedStt(["français", "bonjour"]), dialogue)
    await session.start()
    for _ in range(2):
        await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
        await call.wait_until_quiet()
    assert session.language.current == "fr" and session.language.for_asr() == "en"  # tiny.en-like fake stays English


async def test_a_silent_caller_is_asked_twice_then_the_bot_says_goodbye_and_hangs_up():
    session, call, sink, control = make_call(
        ScriptedStt([]), ScriptedDialogue([]), welcome=("greeting",), silence_reprompt_ms=2000, silence_reprompts=2
    )
    await session.start()
    await call.play(silence(1.9))
    assert sink.of(ev.CallerSilent) == [], "no reprompt while the greeting plays or before the timeout"
    await call.play(silence(12.0))
    assert [e.reprompt for e in sink.of(ev.CallerSilent)] == [1, 2, 3]
    assert [e.prompt for e in sink.of(ev.BotSpeechStarted)] == ["greeting", "still_there", "still_there", "no_response"]
    assert control.hangups == ["no-response"]
    assert session.outcome is not None and session.outcome.result() == "hangup-by-bot"


async def test_speaking_again_resets_the_silence_count():
    stt = ScriptedStt(["hello"])
    dialogue = ScriptedDialogue([DialogueReply(("Hi.",))])
    session, call, sink, control = make_call(stt, dialogue, silence_reprompt_ms=2000, silence_reprompts=1)
    await session.start()
    await call.play(silence(2.1))
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    await call.play(silence(2.1))
    assert [e.reprompt for e in sink.of(ev.CallerSilent)] == [1, 1]
    assert control.hangups == []


async def test_later_sentences_are_synthesized_just_in_time_not_all_at_once():
    stt = ScriptedStt(["tell me everything"])
    texts = ("First sentence is quite long here. Second one is long too. Third one is also long. Fourth and last one.",)
    dialogue = ScriptedDialogue([DialogueReply(texts)])
    voice = ToneVoice()
    played_when_synthesized: list[float] = []
    session, call, _, _ = make_call(stt, dialogue, voice=voice)
    original = voice.synthesize

    def recording_synthesize(text: str):  # type: ignore[no-untyped-def]
        played_when_synthesized.append(len(call.bot_track) / (RATE * 2))
        return original(text)

    voice.synthesize = recording_synthesize  # type: ignore[method-assign]
    await session.start()
    await call.play(concat([tone(1.0), silence(0.5)], CHANNEL))
    await call.wait_until_quiet()
    assert len(played_when_synthesized) == 4
    # Each sentence is ~1.7 s of audio; with 1.5 s of look-ahead the last one is rendered well into the reply.
    assert played_when_synthesized[-1] - played_when_synthesized[0] > 2.0, played_when_synthesized


async def test_the_disclosure_is_logged_as_heard_to_end_or_cut_off():
    session, call, sink, _ = make_call(ScriptedStt([]), ScriptedDialogue([]), welcome=("disclosure", "greeting"))
    await session.start()
    await call.wait_until_quiet()
    (heard,) = sink.of(ev.DisclosurePlayed)
    assert (heard.notice, heard.prompt_version, heard.heard_to_end) == ("ai", "1", True)

    session, call, sink, _ = make_call(ScriptedStt([]), ScriptedDialogue([]), welcome=("disclosure", "greeting"))
    await session.start()
    await session.close("hangup-by-caller")
    await asyncio.sleep(0.05)  # the flushed prompt's future resolves on the next loop iterations
    (cut,) = sink.of(ev.DisclosurePlayed)
    assert cut.heard_to_end is False
    assert [e.kind for e in sink.events][-2:] == ["DisclosurePlayed", "CallEnded"]  # logged before the end


async def test_a_ticket_number_and_a_rating_in_the_slots_are_recorded_once():
    stt = ScriptedStt(["the street light is broken", "four", "thanks"])
    replies = [
        DialogueReply(("Filed as T-000123.",), slots={"ticket_number": "T-000123", "request_category": "street_light"}),
        DialogueReply(("Thank you.",), slots={"ticket_number": "T-000123", "rating": 4}),
        DialogueReply(("Goodbye.",), slots={"ticket_number": "T-000123", "rating": 4}),
    ]
    session, call, sink, _ = make_call(stt, ScriptedDialogue(replies))
    await session.start()
    for _ in range(3):
        await call.play(concat([tone(1.0), silence(0.6)], CHANNEL))
        await call.wait_until_quiet()
    assert [(e.ticket, e.category) for e in sink.of(ev.TicketFiled)] == [("T-000123", "street_light")]
    assert [e.rating for e in sink.of(ev.RatingGiven)] == [4]
