"""One call's RTP socket: paced G.711 packets out (audio, silence, RFC 4733 events), raw packets in.

Pacing is shared: one MediaClock per caller ticks every 20 ms for all its streams, so a hundred calls cost
fifty timer wake-ups a second, not five thousand. A stream's packet n is due n ticks after it started.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from telephony.rtp import PTIME_MS, SAMPLES_PER_PACKET, DtmfEvent, RtpPacket, dtmf_payloads
from telephony.rtp_socket import RtpSocket
from voicebot.audio import AudioChunk
from voicebot.g711 import alaw_encode, ulaw_encode

PTIME_S = PTIME_MS / 1000
# After a stall, late packets go out in one burst (as a network would deliver them), up to 200 ms worth;
# older slots are skipped and counted in slots_skipped: the generator itself was overloaded.
MAX_CATCH_UP = 10
SILENCE_BYTE = {0: 0xFF, 8: 0xD5}  # the code of sample 0 in µ-law / A-law
ENCODERS = {0: ulaw_encode, 8: alaw_encode}

Address = tuple[str, int]


@dataclass(frozen=True)
class PlayedAudio:
    """Caller audio that went out: first and last packet send times (monotonic s)."""

    started_at: float
    ended_at: float
    duration_s: float
    completed: bool  # False when the call ended before the last packet


class MediaClock:
    def __init__(self) -> None:
        self._streams: set[RtpStream] = set()
        self._origin = 0.0
        self._task: asyncio.Task[None] | None = None

    def current_tick(self) -> int:
        return int((time.monotonic() - self._origin) / PTIME_S) if self._task else 0

    def add(self, stream: RtpStream) -> int:
        """Registers a stream; returns the tick of its first packet (the next one)."""
        if self._task is None:
            self._origin = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._streams.add(stream)
        return self.current_tick() + 1

    def discard(self, stream: RtpStream) -> None:
        self._streams.discard(stream)

    async def _run(self) -> None:
        try:
            tick = 0
            while self._streams:
                tick += 1
                await asyncio.sleep(max(0.0, self._origin + tick * PTIME_S - time.monotonic()))
                now = time.monotonic()
                tick = max(tick, int((now - self._origin) / PTIME_S))
                for stream in list(self._streams):
                    stream.tick(tick, now)
        finally:
            self._task = None


class RtpStream:
    def __init__(self, ssrc: int, send_silence: bool = True) -> None:
        self.ssrc = ssrc
        self.send_silence = send_silence
        self.socket: RtpSocket | None = None
        self.remote: Address | None = None
        self.payload_type = 0
        self.event_payload_type: int | None = None
        self.packets_sent = 0
        self.slots_skipped = 0
        self.played: list[PlayedAudio] = []
        self._clock: MediaClock | None = None
        self._first_tick = 0
        self._next_slot = 0
        self._sequence = ssrc & 0x7FFF
        self._timestamp_base = (ssrc * 7) & 0xFFFFFFFF
        self._audio: deque[_Queued] = deque()
        self._events: deque[tuple[list[DtmfEvent], asyncio.Future[float]]] = deque()
        self._event_timestamp = 0
        self._event_started = False

    # --- socket ---------------------------------------------------------------------------------

    def bind(self, host: str, port: int) -> None:
        """Opens the RTP socket (port 0: any free one); OSError when the port is taken."""
        self.socket = RtpSocket(host, port)

    @property
    def local_port(self) -> int:
        assert self.socket is not None
        return self.socket.port

    @property
    def received(self) -> list[tuple[float, bytes]]:
        """(arrival in monotonic s, datagram) of every packet received, parsed after the call."""
        return self.socket.received if self.socket is not None else []

    # --- sending --------------------------------------------------------------------------------

    def start(self, clock: MediaClock, remote: Address, payload_type: int, event_payload_type: int | None) -> None:
        self.remote, self.payload_type, self.event_payload_type = remote, payload_type, event_payload_type
        if self._clock is None:
            self._clock = clock
            self._first_tick = clock.add(self)

    def stop(self) -> None:
        now = time.monotonic()
        if self._clock is not None:
            self._clock.discard(self)
        while self._audio:
            self._finish_audio(self._audio.popleft(), now, completed=False)
        while self._events:
            _, done = self._events.popleft()
            if not done.done():
                done.set_result(now)
        if self.socket is not None:
            self.socket.close()

    @property
    def sending(self) -> bool:
        return self._clock is not None and self.remote is not None

    def queue_audio(self, chunk: AudioChunk) -> asyncio.Future[PlayedAudio]:
        """Queues caller audio (any rate, mono or not); the future resolves when its last packet went out."""
        encoded = _line_audio(chunk, self.payload_type)
        done: asyncio.Future[PlayedAudio] = asyncio.get_running_loop().create_future()
        self._audio.append(_Queued(encoded, done, chunk.duration_s))
        return done

    def queue_dtmf(self, key: str, duration_ms: int) -> asyncio.Future[float]:
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._events.append((dtmf_payloads(key, duration_ms), done))
        return done

    def tick(self, tick: int, now: float) -> None:
        due = tick - self._first_tick
        if due - self._next_slot >= MAX_CATCH_UP:
            skip_to = due - MAX_CATCH_UP + 1
            self.slots_skipped += skip_to - self._next_slot
            self._next_slot = skip_to
        while self._next_slot <= due:
            self._send_slot(self._timestamp_base + self._next_slot * SAMPLES_PER_PACKET, now)
            self._next_slot += 1

    def _send_slot(self, timestamp: int, now: float) -> None:
        if self._events and self.event_payload_type is not None:
            self._send_event_packets(timestamp, now)
            return
        payload = self._next_audio(now)
        if payload is None and not self.send_silence:
            return
        self._send(RtpPacket(self.payload_type, self._sequence, timestamp, self.ssrc, payload or self._silence()))

    def _send_event_packets(self, timestamp: int, now: float) -> None:
        payloads, done = self._events[0]
        first = not self._event_started
        if first:
            self._event_started, self._event_timestamp = True, timestamp
        event = payloads.pop(0)
        batch = [event] + ([payloads.pop(0) for _ in range(len(payloads))] if event.end else [])
        assert self.event_payload_type is not None
        for i, item in enumerate(batch):
            marker = first and i == 0
            self._send(RtpPacket(self.event_payload_type, self._sequence, self._event_timestamp, self.ssrc,
                                 item.pack(), marker))
        if event.end:
            self._events.popleft()
            self._event_started = False
            if not done.done():
                done.set_result(now)

    def _next_audio(self, now: float) -> bytes | None:
        if not self._audio:
            return None
        head = self._audio[0]
        if head.started_at is None:
            head.started_at = now
        payload = head.data[head.offset : head.offset + SAMPLES_PER_PACKET]
        head.offset += SAMPLES_PER_PACKET
        if head.offset >= len(head.data):
            self._finish_audio(self._audio.popleft(), now, completed=True)
        return payload

    def _finish_audio(self, queued: _Queued, now: float, completed: bool) -> None:
        started = queued.started_at if queued.started_at is not None else now
        played = PlayedAudio(started, now, queued.duration_s, completed)
        self.played.append(played)
        if not queued.done.done():
            queued.done.set_result(played)

    def _silence(self) -> bytes:
        return bytes([SILENCE_BYTE.get(self.payload_type, 0xFF)]) * SAMPLES_PER_PACKET

    def _send(self, packet: RtpPacket) -> None:
        if self.socket is None or self.remote is None:
            return
        self.socket.sendto(packet.pack(), self.remote)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.packets_sent += 1


_ENCODED: dict[tuple[int, int], tuple[AudioChunk, bytes]] = {}  # a load test plays one chunk on many calls


def _line_audio(chunk: AudioChunk, payload_type: int) -> bytes:
    """8 kHz G.711 of a chunk, padded to whole packets; the last few chunks' encodings are reused."""
    key = (id(chunk), payload_type)
    cached = _ENCODED.get(key)
    if cached is not None and cached[0] is chunk:
        return cached[1]
    encoded = ENCODERS[payload_type](chunk.to_mono().resample(8000).samples())
    encoded += bytes([SILENCE_BYTE[payload_type]]) * (-len(encoded) % SAMPLES_PER_PACKET)
    if len(_ENCODED) >= 8:
        _ENCODED.pop(next(iter(_ENCODED)))
    _ENCODED[key] = (chunk, encoded)
    return encoded


class _Queued:
    __slots__ = ("data", "done", "duration_s", "offset", "started_at")

    def __init__(self, data: bytes, done: asyncio.Future[PlayedAudio], duration_s: float) -> None:
        self.data, self.done, self.duration_s = data, done, duration_s
        self.offset = 0
        self.started_at: float | None = None


class RtcpSink(asyncio.DatagramProtocol):
    """Binds the RTCP port next to the RTP one so the far end's reports land somewhere; they are ignored."""
