"""One scripted bench call for bench/sip.py: hear the greeting, ask a recorded question, time the answers.

Times are `time.monotonic()` seconds; the caller's receive times are kernel timestamps (telephony/rtp_socket.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from telephony.rtp import SAMPLES_PER_PACKET
from telephony.uac import SipCaller
from telephony.uac_call import Call
from telephony.uac_result import DEFAULT_THRESHOLD_DBFS, CallResult, audio_level_dbfs
from telephony.uac_types import CallEndedError
from voicebot.audio import AudioChunk, read_wav

PACKET_S = SAMPLES_PER_PACKET / 8000
# This much silence after bot audio = the bot finished speaking. Pauses inside a reply are shorter on an idle
# machine (~0.3 s between sentences) but grow when synthesis of the next clause falls behind its playout; a
# longer stall ends the answer for the caller, whose next question then barges in (counted by the session).
BOT_DONE_QUIET_S = 3.0
GREETING_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 15.0
SPEECH_TIMEOUT_S = 40.0  # the longest a greeting or an answer may last


@dataclass(frozen=True)
class Question:
    """What each caller says at every turn: 8 kHz audio and the silence after its last voiced packet."""

    audio: AudioChunk
    trailing_silence_s: float

    @property
    def speech_s(self) -> float:
        return self.audio.duration_s - self.trailing_silence_s


def load_question(path: Path, span: tuple[float, float] | None) -> Question:
    """The recording (or its `span` in seconds) at 8 kHz; trailing silence measured per 20 ms packet."""
    audio = read_wav(path).to_mono().resample(8000)
    if span is not None:
        start, end = (int(t * 8000) * audio.width for t in span)
        audio = AudioChunk(audio.audio[start:end], 8000)
    samples = audio.samples().astype(np.float64)
    packets = np.pad(samples, (0, -samples.size % SAMPLES_PER_PACKET)).reshape(-1, SAMPLES_PER_PACKET)
    rms = np.sqrt(np.mean(packets**2, axis=1))
    voiced = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-3) / 32768) >= DEFAULT_THRESHOLD_DBFS)
    if voiced.size == 0:
        raise ValueError(f"{path}: no speech above {DEFAULT_THRESHOLD_DBFS:.0f} dBFS in the question")
    return Question(audio, (len(packets) - 1 - int(voiced[-1])) * PACKET_S)


@dataclass
class CallMeasure:
    """What one bench call measured; `result` is the full SIP/RTP record."""

    result: CallResult | None = None
    greeting_ms: float | None = None
    turn_ms: list[float] = field(default_factory=list)  # end of caller speech -> first bot audio, per turn
    answer_pause_ms: list[float] = field(default_factory=list)  # longest silence inside each answer
    errors: list[str] = field(default_factory=list)

    def gaps_ms(self) -> np.ndarray:
        return self.result.rtp.gaps_ms() if self.result is not None else np.empty(0)


async def bench_call(
    caller: SipCaller, target: str, question: Question, turns: int, delay_s: float, quiet_s: float = BOT_DONE_QUIET_S
) -> CallMeasure:
    """After `delay_s`: call, wait out the greeting, then `turns` times ask the question and wait out the answer
    (until the bot is quiet for `quiet_s`)."""
    await asyncio.sleep(delay_s)
    measure = CallMeasure()
    try:
        call = await caller.call(target)
    except OSError as exc:
        measure.errors.append(f"not placed: {exc}")
        return measure
    if not call.answered:
        measure.errors.append(f"{call.status} {call.reason}")
        measure.result = call.result()
        return measure
    try:
        await _converse(call, question, turns, quiet_s, measure)
    except CallEndedError as exc:
        measure.errors.append(f"ended early: {exc}")
    await call.hangup()
    measure.result = call.result()
    measure.greeting_ms = _ms(measure.result.invite_sent_at, measure.result.first_audio_after(call.invite_sent_at))
    return measure


async def _converse(call: Call, question: Question, turns: int, quiet_s: float, measure: CallMeasure) -> None:
    greeting_at = await call.wait_for_audio(call.invite_sent_at, GREETING_TIMEOUT_S)
    if greeting_at is None or await wait_spoken(call, greeting_at, quiet_s) is None:
        measure.errors.append("no greeting" if greeting_at is None else "greeting did not end")
        return
    for turn in range(1, turns + 1):
        played = await call.play(question.audio)
        speech_ended_at = played.ended_at - question.trailing_silence_s
        answer_at = await call.wait_for_audio(speech_ended_at, ANSWER_TIMEOUT_S)
        if answer_at is None:
            measure.errors.append(f"turn {turn}: no answer within {ANSWER_TIMEOUT_S:.0f} s")
            return
        measure.turn_ms.append((answer_at - speech_ended_at) * 1000)
        spoken = await wait_spoken(call, answer_at, quiet_s)
        if spoken is None:
            measure.errors.append(f"turn {turn}: the answer did not end")
            return
        measure.answer_pause_ms.append(spoken[1] * 1000)


async def wait_spoken(call: Call, after: float, quiet_s: float = BOT_DONE_QUIET_S) -> tuple[float, float] | None:
    """Waits until the bot, speaking from `after` on, is quiet for `quiet_s`: (arrival of its last loud packet,
    longest pause between loud packets before it); None when the call ends or SPEECH_TIMEOUT_S passes first."""
    deadline = time.monotonic() + SPEECH_TIMEOUT_S
    last_loud, longest_pause, index = after, 0.0, 0
    while not call.ended.is_set() and time.monotonic() < deadline:
        received = call.stream.received
        for arrival, datagram in received[index:]:
            level = audio_level_dbfs(datagram) if arrival >= after else None
            if level is None:
                continue
            if level >= DEFAULT_THRESHOLD_DBFS:
                longest_pause = max(longest_pause, arrival - last_loud)
                last_loud = arrival
            elif arrival - last_loud >= quiet_s:
                return last_loud, longest_pause
        index = len(received)
        await asyncio.sleep(0.05)
    return None


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else (end - start) * 1000
