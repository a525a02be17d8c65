"""`voicebot test`: runs YAML dialogues through the real pipeline and checks every caller turn."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot import events as ev
from voicebot.audio import AudioChunk, concat, read_wav
from voicebot.compose import Runtime
from voicebot.convtest_spec import DialogueSpec, Expectation, TurnSpec
from voicebot.degrade import degrade
from voicebot.ports import ConfigError
from voicebot.recordings import load_recordings
from voicebot.simulate import ChannelSpec
from voicebot.sinks import FanOut, LogSink, MemorySink
from voicebot.virtual_call import RecordingControl, VirtualCall
from voicebot.wer import word_error_rate


@dataclass
class TurnOutcome:
    spec: TurnSpec
    heard: str = ""
    accepted: bool = False
    language: str | None = None
    language_probability: float | None = None
    intent: str | None = None
    confidence: float | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    transfer: str | None = None
    handoff_reason: str | None = None
    hangup: bool = False
    errors: list[str] = field(default_factory=list)
    wer: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class DialogueOutcome:
    spec: DialogueSpec
    turns: list[TurnOutcome] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.passed for t in self.turns)


def prepare_audio(runtime: Runtime, spec: DialogueSpec) -> list[AudioChunk | None]:
    """Every caller turn's audio (None for key presses), before any call starts: a bad file or voice fails fast."""
    return [None if turn.dtmf is not None else _turn_audio(runtime, spec, turn) for turn in spec.turns]


async def run_dialogue(
    runtime: Runtime, spec: DialogueSpec, speed: float = 0.0, clips: list[AudioChunk | None] | None = None
) -> DialogueOutcome:
    outcome = DialogueOutcome(spec)
    if clips is None:
        try:
            clips = prepare_audio(runtime, spec)
        except ConfigError as exc:
            outcome.error = str(exc)
            return outcome
    channel = ChannelSpec(spec.rate, spec.codec)
    memory = MemorySink()
    session = runtime.session(
        f"test-{uuid.uuid4().hex[:8]}",
        channel.format,
        RecordingControl(),
        FanOut([memory, LogSink()]),
        caller="conversation-test",
        language=spec.language,
    )
    call = VirtualCall(session, channel.format, speed)
    await session.start()
    await call.wait_until_quiet()
    for turn, clip in zip(spec.turns, clips, strict=True):
        if session.ended:
            outcome.turns.append(_check(TurnOutcome(turn, errors=["the call had already ended"])))
            continue
        start = len(memory.events)
        if clip is None:
            await call.press(turn.dtmf or "")
        else:
            await call.play(channel.line(clip))
        await call.wait_until_quiet(quiet_s=0.4)
        outcome.turns.append(_check(_observe(turn, memory.events[start:])))
    await session.close()
    outcome.seconds = call.elapsed_s
    return outcome


def _turn_audio(runtime: Runtime, spec: DialogueSpec, turn: TurnSpec) -> AudioChunk:
    if turn.say is not None:
        voice = (
            runtime.voices.voice_by_name(turn.voice) if turn.voice else runtime.voices.voice_for(spec.language or "en")
        )
        chunks = [c.to_mono() for c in voice.synthesize(turn.say)]
        if not chunks:
            raise ConfigError(f"{spec.path}: nothing to synthesize for {turn.label}")
        pause = AudioChunk.silence(0.25, chunks[0].rate)
        audio = concat([x for c in chunks for x in (c, pause)][:-1], chunks[0].format)
    elif turn.recording is not None:
        recordings = {r.name: r for r in load_recordings()}
        if turn.recording not in recordings:
            raise ConfigError(
                f"{spec.path}: unknown recording {turn.recording!r} (known: {', '.join(sorted(recordings))})"
            )
        audio = read_wav(recordings[turn.recording].path)
    else:
        assert turn.audio is not None
        audio = read_wav(turn.audio)
    audio = audio.to_mono()
    if turn.noise_snr_db is not None or turn.codec is not None:
        audio = degrade(audio, turn.codec, turn.noise_snr_db)
    if turn.pause_s:
        audio = concat([AudioChunk.silence(turn.pause_s, audio.rate), audio], audio.format)
    return audio


def _observe(turn: TurnSpec, events: list[ev.CallEvent]) -> TurnOutcome:
    out = TurnOutcome(turn)
    heard: list[str] = []
    for event in events:
        if isinstance(event, ev.Transcript):
            if event.accepted:
                heard.append(event.text)
                out.accepted = True
            if event.language:
                out.language, out.language_probability = event.language, event.language_probability
        elif isinstance(event, ev.DialogueReplied):
            out.intent = event.intent
            out.confidence = event.confidence
            out.slots.update(event.slots)
            out.replies.extend(event.texts)
        elif isinstance(event, ev.TransferRequested):
            out.transfer = event.queue
            out.handoff_reason = event.reason or None
        elif isinstance(event, ev.HangupRequested):
            out.hangup = True
        elif isinstance(event, ev.CallError):
            out.errors.append(f"{event.stage}: {event.error}")
    out.heard = " ".join(heard).strip()
    return out


def _check(out: TurnOutcome) -> TurnOutcome:
    expect: Expectation = out.spec.expect
    fail = out.failures.append
    out.failures.extend(f"call error in {e}" for e in out.errors)
    if expect.transcript is not None:
        out.wer = word_error_rate(expect.transcript, out.heard) if out.heard else 1.0
        if out.wer > (expect.max_wer or 0.0):
            fail(f"WER {out.wer:.2f} > {expect.max_wer} (heard {out.heard!r})")
    if expect.accepted is not None and out.accepted != expect.accepted:
        fail(f"transcript accepted={out.accepted}, expected {expect.accepted}")
    if expect.intent is not None and out.intent != expect.intent:
        fail(f"intent {out.intent!r}, expected {expect.intent!r}")
    for name, value in expect.slots.items():
        if out.slots.get(name) != value:
            fail(f"slot {name}={out.slots.get(name)!r}, expected {value!r}")
    reply = " ".join(out.replies).lower()
    for needle in expect.reply_contains:
        if needle.lower() not in reply:
            fail(f"reply lacks {needle!r} (replied {' '.join(out.replies)!r})")
    if expect.language is not None and out.language != expect.language:
        fail(f"language {out.language!r}, expected {expect.language!r}")
    _check_transfer(out, expect)
    if expect.hangup is not None and out.hangup != expect.hangup:
        fail(f"hang-up={out.hangup}, expected {expect.hangup}")
    return out


def _check_transfer(out: TurnOutcome, expect: Expectation) -> None:
    if expect.transfer is None:
        return
    if expect.transfer is False:
        if out.transfer is not None:
            out.failures.append(f"transferred to {out.transfer!r}, expected no transfer")
    elif out.transfer != expect.transfer:
        out.failures.append(f"transfer to {out.transfer!r}, expected {expect.transfer!r}")


def load_all(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")))
        else:
            files.append(path)
    return files
