"""What a test call observed: SIP outcome, timings (monotonic seconds) and the RTP the far end sent."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from telephony.rtp import DtmfEvent, RtpError, RtpPacket
from telephony.rtp_stream import PlayedAudio
from voicebot.audio import AudioChunk
from voicebot.g711 import alaw_decode, ulaw_decode

DECODERS = {0: ulaw_decode, 8: alaw_decode}
MAX_TIMESTAMP_JUMP = 8000 * 60  # a larger jump than a minute is a new stream, appended, not a gap to fill
DEFAULT_THRESHOLD_DBFS = -40.0


@dataclass(frozen=True)
class RtpReception:
    """G.711 audio packets received, in arrival order, and the audio they carry placed by RTP timestamp."""

    arrivals: tuple[float, ...]
    levels_dbfs: tuple[float, ...]  # RMS of each packet's decoded audio, same order as arrivals
    audio: AudioChunk  # 8 kHz mono 16-bit; gaps (lost packets, silence suppression) are zeros
    dtmf_keys: str = ""  # RFC 4733 keys the far end sent
    invalid_packets: int = 0
    first_packet_at: float | None = None  # any valid RTP packet, audio or not

    def first_audio_after(self, at: float, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS) -> float | None:
        """Arrival time of the first packet at or after `at` whose level reaches `threshold_dbfs`."""
        start = bisect.bisect_left(self.arrivals, at)
        for index in range(start, len(self.arrivals)):
            if self.levels_dbfs[index] >= threshold_dbfs:
                return self.arrivals[index]
        return None

    def gaps_ms(self) -> np.ndarray:
        return np.diff(np.asarray(self.arrivals, dtype=np.float64)) * 1000.0


def analyse_rtp(received: list[tuple[float, bytes]]) -> RtpReception:
    packets: list[tuple[float, RtpPacket]] = []
    invalid = 0
    for arrival, data in received:
        try:
            packets.append((arrival, RtpPacket.unpack(data)))
        except RtpError:
            invalid += 1
    audio_packets = [(at, p) for at, p in packets if p.payload_type in DECODERS and p.payload]
    decoded = [DECODERS[p.payload_type](p.payload) for _, p in audio_packets]
    return RtpReception(
        arrivals=tuple(at for at, _ in audio_packets),
        levels_dbfs=tuple(_level_dbfs(samples) for samples in decoded),
        audio=_place_by_timestamp([p for _, p in audio_packets], decoded),
        dtmf_keys=_dtmf_keys([p for _, p in packets]),
        invalid_packets=invalid,
        first_packet_at=packets[0][0] if packets else None,
    )


def audio_level_dbfs(datagram: bytes) -> float | None:
    """RMS level of one received G.711 packet; None for anything else (events, comfort noise, garbage)."""
    try:
        packet = RtpPacket.unpack(datagram)
    except RtpError:
        return None
    if packet.payload_type not in DECODERS or not packet.payload:
        return None
    return _level_dbfs(DECODERS[packet.payload_type](packet.payload))


def _level_dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
    return 20.0 * float(np.log10(max(rms, 1e-3) / 32768.0))


def _place_by_timestamp(packets: list[RtpPacket], decoded: list[np.ndarray]) -> AudioChunk:
    """Each packet at its timestamp offset within its SSRC's run; a new SSRC or a wild jump starts at the end.

    A packet older than the start of its run (reordered before the first one) is dropped.
    """
    placed: list[tuple[int, np.ndarray]] = []
    end = 0
    segment_start, segment_ts, segment_ssrc = 0, 0, None
    for packet, samples in zip(packets, decoded, strict=True):
        offset = (packet.timestamp - segment_ts) & 0xFFFFFFFF
        if packet.ssrc == segment_ssrc and offset >= (1 << 32) - MAX_TIMESTAMP_JUMP:
            continue
        if packet.ssrc != segment_ssrc or offset > MAX_TIMESTAMP_JUMP:
            segment_start, segment_ts, segment_ssrc, offset = end, packet.timestamp, packet.ssrc, 0
        placed.append((segment_start + offset, samples))
        end = max(end, segment_start + offset + samples.size)
    out = np.zeros(end, dtype=np.int16)
    for position, samples in placed:
        out[position : position + samples.size] = samples
    return AudioChunk.from_samples(out, 8000)


def _dtmf_keys(packets: list[RtpPacket]) -> str:
    keys, seen = [], set()
    for packet in packets:
        if packet.payload_type in DECODERS or len(packet.payload) != 4:
            continue
        event = DtmfEvent.unpack(packet.payload)
        if event.end and (packet.ssrc, packet.timestamp) not in seen:
            seen.add((packet.ssrc, packet.timestamp))
            keys.append(event.key)
    return "".join(keys)


@dataclass(frozen=True)
class CallResult:
    call_id: str
    target: str
    status: int  # final SIP status; 408 when nothing answered in time
    reason: str
    invite_sent_at: float
    answered_at: float | None
    ended_at: float | None
    codec: str | None  # "pcmu" / "pcma" after an answer
    rtp: RtpReception
    played: tuple[PlayedAudio, ...] = ()
    provisional: tuple[int, ...] = ()  # 100/180/183 as they came
    dtmf_sent: str = ""
    refer_to: str | None = None  # Refer-To of the last REFER the far end sent
    transfer: CallResult | None = None  # the call placed to the Refer-To target (follow_refer)
    bye_from_remote: bool = False
    packets_sent: int = 0
    slots_skipped: int = 0  # 20 ms slots this caller failed to send in time (its event loop was late)
    errors: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def received_audio(self) -> AudioChunk:
        return self.rtp.audio

    @property
    def rtp_arrivals(self) -> tuple[float, ...]:
        return self.rtp.arrivals

    @property
    def first_rtp_at(self) -> float | None:
        return self.rtp.first_packet_at

    @property
    def first_rtp_after_answer_ms(self) -> float | None:
        return _ms_between(self.answered_at, self.first_rtp_at)

    @property
    def first_rtp_after_invite_ms(self) -> float | None:
        return _ms_between(self.invite_sent_at, self.first_rtp_at)

    def first_audio_after(self, at: float, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS) -> float | None:
        return self.rtp.first_audio_after(at, threshold_dbfs)

    def gap_percentile_ms(self, percentile: float) -> float | None:
        gaps = self.rtp.gaps_ms()
        return float(np.percentile(gaps, percentile)) if gaps.size else None


def _ms_between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000.0
