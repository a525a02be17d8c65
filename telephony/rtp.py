"""RTP packets (RFC 3550) and telephone-events (RFC 4733 DTMF), packed and unpacked as frozen values."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
_DTMF = struct.Struct("!BBH")
DTMF_KEYS = "0123456789*#ABCD"  # event codes 0..15, in order
G711_RATE = 8000
PTIME_MS = 20
SAMPLES_PER_PACKET = G711_RATE * PTIME_MS // 1000


class RtpError(ValueError):
    """A datagram that is not an RTP packet."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def pack(self) -> bytes:
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        header = _HEADER.pack(RTP_VERSION << 6, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        return header + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> RtpPacket:
        if len(data) < _HEADER.size:
            raise RtpError(f"RTP packet too short ({len(data)} bytes)")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}, expected 2")
        start = _HEADER.size + 4 * (first & 0x0F)  # CSRC list
        if first & 0x10:  # header extension: 4-byte header whose second half counts 32-bit words
            if len(data) < start + 4:
                raise RtpError("RTP header extension truncated")
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data)
        if first & 0x20:  # padding: the last byte says how many bytes to drop
            end -= data[-1] if data else 0
        if start > end:
            raise RtpError("RTP header longer than the packet")
        return cls(second & 0x7F, sequence, timestamp, ssrc, bytes(data[start:end]), bool(second & 0x80))


@dataclass(frozen=True)
class DtmfEvent:
    """One RFC 4733 telephone-event payload: which key, for how long so far, and whether it ended."""

    event: int
    duration: int  # in timestamp units (8 kHz samples)
    end: bool = False
    volume: int = 10  # -dBm0

    @property
    def key(self) -> str:
        return DTMF_KEYS[self.event] if self.event < len(DTMF_KEYS) else "?"

    def pack(self) -> bytes:
        return _DTMF.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), min(self.duration, 0xFFFF))

    @classmethod
    def unpack(cls, payload: bytes) -> DtmfEvent:
        if len(payload) < _DTMF.size:
            raise RtpError(f"telephone-event payload too short ({len(payload)} bytes)")
        event, flags, duration = _DTMF.unpack_from(payload)
        return cls(event, duration, bool(flags & 0x80), flags & 0x3F)


def dtmf_event_code(key: str) -> int:
    code = DTMF_KEYS.find(key.upper())
    if len(key) != 1 or code < 0:
        raise ValueError(f"not a DTMF key: {key!r} (use 0-9, *, #, A-D)")
    return code


def dtmf_payloads(key: str, duration_ms: int, end_repeats: int = 3) -> list[DtmfEvent]:
    """The payloads of one key press, one per 20 ms packet, all sharing the event's start timestamp.

    The duration grows packet by packet; the final one carries the end bit and is sent `end_repeats` times
    (RFC 4733 §2.5.1.4), so a lost packet cannot leave the key pressed.
    """
    code = dtmf_event_code(key)
    steps = max(1, duration_ms // PTIME_MS)
    ongoing = [DtmfEvent(code, SAMPLES_PER_PACKET * i) for i in range(1, steps)]
    final = DtmfEvent(code, SAMPLES_PER_PACKET * steps, end=True)
    return [*ongoing, *([final] * end_repeats)]
