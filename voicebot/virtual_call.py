"""A call without telephony: a 20 ms media clock feeds caller audio to a session and drains its playout.

`speed` 1.0 paces the clock in real time (latencies are real); 0 runs as fast as possible, pausing the
clock while the session processes a turn, so results are deterministic but latencies are not real.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from voicebot.audio import AudioChunk, AudioFormat, frames
from voicebot.ports import Handoff
from voicebot.session import CallSession

FRAME_MS = 20


@dataclass
class RecordingControl:
    """CallControl for simulations: remembers what the bot asked the channel to do."""

    transfers: list[Handoff] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)

    def transfer(self, handoff: Handoff) -> None:
        self.transfers.append(handoff)

    def hangup(self, reason: str) -> None:
        self.hangups.append(reason)


class VirtualCall:
    def __init__(self, session: CallSession, channel: AudioFormat, speed: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible, 1 = real time)")
        self.session = session
        self.channel = channel
        self.speed = speed
        self.caller_track = bytearray()
        self.bot_track = bytearray()
        self._frame_bytes = channel.bytes_for_ms(FRAME_MS)
        self._next_tick: float | None = None

    @property
    def elapsed_s(self) -> float:
        return len(self.caller_track) / (self.channel.rate * self.channel.width)

    async def play(self, audio: AudioChunk) -> None:
        """The caller says `audio` (already in the channel format)."""
        if audio.format != self.channel:
            raise ValueError(f"caller audio must be {self.channel}, got {audio.format}")
        for frame in frames(audio, FRAME_MS):
            if self.session.ended:
                return
            await self._tick(frame.audio)

    async def press(self, keys: str, gap_s: float = 0.12) -> None:
        """The caller types keys on the phone, one every `gap_s` (silence on the line meanwhile)."""
        for key in keys:
            self.session.dtmf(key)
            await self.play(AudioChunk.silence(gap_s, self.channel.rate))

    async def wait_until_quiet(self, quiet_s: float = 0.3, max_s: float = 60.0) -> None:
        """Caller stays silent until the bot has nothing left to process or say (or the call ended)."""
        quiet_needed = int(quiet_s * 1000 / FRAME_MS)
        quiet = 0
        silence = bytes(self._frame_bytes)
        for _ in range(int(max_s * 1000 / FRAME_MS)):
            if self.session.ended and not self.session.playout.is_playing:
                return
            busy = self.session.busy or self.session.in_utterance
            quiet = 0 if busy else quiet + 1
            if quiet >= quiet_needed:
                return
            await self._tick(silence)

    async def _tick(self, caller_frame: bytes) -> None:
        self.session.feed(AudioChunk(caller_frame, self.channel.rate))
        self.caller_track += caller_frame
        self.bot_track += self.session.playout.read(self._frame_bytes)
        if self.speed > 0:
            await self._pace()
        else:
            await asyncio.sleep(0)
            await self.session.settle()

    async def _pace(self) -> None:
        now = time.perf_counter()
        self._next_tick = (self._next_tick or now) + FRAME_MS / 1000 / self.speed
        delay = self._next_tick - now
        await asyncio.sleep(max(0.0, delay))

    def stereo(self) -> AudioChunk:
        """Caller on the left, bot on the right."""
        caller = np.frombuffer(bytes(self.caller_track), dtype="<i2")
        bot = np.frombuffer(bytes(self.bot_track), dtype="<i2")
        return AudioChunk.from_samples(np.stack([caller, bot], axis=1), self.channel.rate)
