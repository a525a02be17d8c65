"""The bot's outgoing audio: filled by the asyncio session, drained by the channel's media clock.

The media clock may be a foreign thread (pjmedia), so the queue is lock-protected and reaches asyncio
only through `call_soon_threadsafe`. Barge-in flushes it between two frames.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from voicebot.audio import AudioChunk, AudioFormat


@dataclass
class _Marker:
    """Reached when everything queued before it has been played."""

    future: asyncio.Future[bool]  # result: True when played to the end, False when flushed
    loop: asyncio.AbstractEventLoop


class Playout:
    def __init__(self, fmt: AudioFormat) -> None:
        if fmt.width != 2 or fmt.channels != 1:
            raise ValueError(f"playout needs 16-bit mono, got {fmt}")
        self.format = fmt
        self._items: deque[bytes | _Marker] = deque()
        self._head = 0  # read offset into the first bytes item
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._frames_played = 0
        self._low_water: list[tuple[int, _Marker]] = []

    @property
    def is_playing(self) -> bool:
        with self._lock:
            return self._queued_bytes > 0

    @property
    def queued_s(self) -> float:
        with self._lock:
            return self._queued_bytes / (self.format.rate * 2)

    def push(self, chunk: AudioChunk) -> None:
        if chunk.format != self.format:
            raise ValueError(f"playout is {self.format}, got {chunk.format}")
        if not chunk.audio:
            return
        with self._lock:
            self._items.append(chunk.audio)
            self._queued_bytes += len(chunk.audio)

    def mark(self) -> asyncio.Future[bool]:
        """A future that resolves when the audio queued so far has been played (True) or flushed (False)."""
        loop = asyncio.get_running_loop()
        marker = _Marker(loop.create_future(), loop)
        with self._lock:
            if self._queued_bytes == 0:
                marker.future.set_result(True)
            else:
                self._items.append(marker)
        return marker.future

    def when_below(self, seconds: float) -> asyncio.Future[bool]:
        """A future that resolves when at most `seconds` of audio is left to play (True) or on a flush (False)."""
        loop = asyncio.get_running_loop()
        waiter = _Marker(loop.create_future(), loop)
        threshold = int(seconds * self.format.rate) * 2
        with self._lock:
            if self._queued_bytes <= threshold:
                waiter.future.set_result(True)
            else:
                self._low_water.append((threshold, waiter))
        return waiter.future

    def flush(self) -> float:
        """Drop everything queued (barge-in); returns the seconds of audio dropped."""
        with self._lock:
            dropped = self._queued_bytes
            markers = [item for item in self._items if isinstance(item, _Marker)]
            markers += [waiter for _, waiter in self._low_water]
            self._low_water.clear()
            self._items.clear()
            self._head = 0
            self._queued_bytes = 0
        for marker in markers:
            _resolve(marker, False)
        return dropped / (self.format.rate * 2)

    def read(self, nbytes: int) -> bytes:
        """Called by the media clock for each outgoing frame: always returns nbytes (silence-padded)."""
        out = bytearray()
        reached: list[_Marker] = []
        with self._lock:
            while self._items and len(out) < nbytes:
                item = self._items[0]
                if isinstance(item, _Marker):
                    reached.append(item)
                    self._items.popleft()
                    continue
                take = min(nbytes - len(out), len(item) - self._head)
                out += item[self._head : self._head + take]
                self._head += take
                if self._head == len(item):
                    self._items.popleft()
                    self._head = 0
            self._queued_bytes -= len(out)
            while self._items and isinstance(self._items[0], _Marker):  # markers right after the last byte
                marker = self._items.popleft()
                assert isinstance(marker, _Marker)
                reached.append(marker)
            if self._low_water:
                reached += [w for limit, w in self._low_water if self._queued_bytes <= limit]
                self._low_water = [(limit, w) for limit, w in self._low_water if self._queued_bytes > limit]
        for marker in reached:
            _resolve(marker, True)
        if len(out) < nbytes:
            out += bytes(nbytes - len(out))
        return bytes(out)


def _resolve(marker: _Marker, played: bool) -> None:
    def settle() -> None:
        if not marker.future.done():
            marker.future.set_result(played)

    if marker.loop.is_closed():
        return
    marker.loop.call_soon_threadsafe(settle)
