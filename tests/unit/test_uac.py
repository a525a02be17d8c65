"""The test caller's building blocks: SIP messages, SDP, RTP and RFC 4733 packets, paced sending, reception."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time

import numpy as np
import pytest

from telephony.rtp import DtmfEvent, RtpError, RtpPacket, dtmf_payloads
from telephony.rtp_socket import RtpSocket
from telephony.rtp_stream import MediaClock, RtpStream
from telephony.sdp import SdpError, answer_direction, build_sdp, parse_sdp
from telephony.sip_message import (
    SipParseError,
    SipRequest,
    SipResponse,
    header_param,
    name_addr_uri,
    parse_message,
    parse_uri,
    request,
    response_to,
    split_list,
)
from telephony.uac_result import analyse_rtp
from voicebot.audio import AudioChunk
from voicebot.g711 import ulaw_decode, ulaw_encode

INVITE = (
    b"INVITE sip:bot@127.0.0.1:5060 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKdef\r\n"
    b"f: \"Caller, Jr\" <sip:caller@10.0.0.1>;tag=ft1\r\n"
    b"t: <sip:bot@127.0.0.1>\r\n"
    b"i: call-1@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Subject: a folded\r\n  header value\r\n"
    b"c: application/sdp\r\n"
    b"l: 5\r\n\r\nhello trailing bytes"
)


def test_parse_request_expands_compact_headers_unfolds_and_cuts_the_body_at_content_length() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri) == ("INVITE", "sip:bot@127.0.0.1:5060")
    assert message.call_id == "call-1@10.0.0.1"
    assert message.cseq == (7, "INVITE")
    assert message.branch == "z9hG4bKabc"
    assert len(message.header_values("Via")) == 2
    assert message.header("Subject") == "a folded header value"
    assert message.header("content-type") == "application/sdp"
    assert message.body == b"hello"


def test_request_round_trip_keeps_header_order_and_sets_content_length() -> None:
    via = "SIP/2.0/UDP h;branch=z9hG4bK1"
    built = request("options", "sip:bot@h", [("via", via), ("i", "x@h"), ("Content-Length", "99")], b"x")
    parsed = parse_message(built.encode())
    assert isinstance(parsed, SipRequest)
    assert (parsed.method, parsed.uri, parsed.body) == ("OPTIONS", "sip:bot@h", b"x")
    assert parsed.headers == (("Via", via), ("Call-ID", "x@h"), ("Content-Length", "1"))


def test_response_copies_vias_and_adds_a_to_tag_only_when_there_is_none() -> None:
    invite = parse_message(INVITE)
    assert isinstance(invite, SipRequest)
    ringing = response_to(invite, 180, "Ringing", to_tag="tt9", headers=[("Contact", "<sip:bot@127.0.0.1>")])
    parsed = parse_message(ringing.encode())
    assert isinstance(parsed, SipResponse)
    assert (parsed.status, parsed.reason, parsed.cseq) == (180, "Ringing", (7, "INVITE"))
    assert parsed.header_values("Via") == invite.header_values("Via")
    assert header_param(parsed.header("To") or "", "tag") == "tt9"
    bye = request("BYE", "sip:a@h", [("Via", "SIP/2.0/UDP h;branch=z9hG4bK2"), ("To", "<sip:a@h>;tag=mine")])
    assert response_to(bye, 200, "OK", to_tag="other").header("To") == "<sip:a@h>;tag=mine"


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x00\xff garbage", b"HELLO\r\n\r\n", b"SIP/2.0 OK\r\n\r\n", b"INVITE sip:a SIP/2.0\r\nnocolon\r\n\r\n",
     b"INVITE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n"],
)
def test_parse_rejects_what_is_not_sip(datagram: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(datagram)


def test_lists_params_and_name_addr() -> None:
    assert split_list('"a, b" <sip:x@h;p=1,2>;tag=1, <sip:y@h>') == ['"a, b" <sip:x@h;p=1,2>;tag=1', "<sip:y@h>"]
    assert header_param("<sip:x@h;tag=inside>;tag=outside;lr", "tag") == "outside"
    assert header_param("<sip:x@h>;lr", "lr") == ""
    assert header_param("SIP/2.0/UDP h;branch=z9hG4bKx;rport", "rport") == ""
    assert name_addr_uri('"Bot" <sip:bot@h:5070;transport=udp>;tag=1') == "sip:bot@h:5070;transport=udp"
    assert name_addr_uri("sip:bot@h;tag=1") == "sip:bot@h"


def test_parse_uri_with_port_params_and_escaped_headers() -> None:
    uri = parse_uri("sip:agent@127.0.0.1:5090;transport=udp?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2&X=y")
    assert (uri.user, uri.host, uri.port) == ("agent", "127.0.0.1", 5090)
    assert uri.headers == (("Replaces", "abc@h;to-tag=1;from-tag=2"), ("X", "y"))
    assert uri.without_headers() == "sip:agent@127.0.0.1:5090;transport=udp"
    assert parse_uri("sip:127.0.0.1;lr").address == ("127.0.0.1", 5060)
    assert parse_uri("sip:[::1]:5070").address == ("::1", 5070)
    for bad in ("http://x", "sip:", "sip:bot@host:port"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_sdp_offer_round_trip() -> None:
    offer = parse_sdp(build_sdp("127.0.0.1", 16000, (0, 8), session_id=42, direction="sendonly"))
    assert (offer.address, offer.port, offer.payload_types) == ("127.0.0.1", 16000, (0, 8, 101))
    assert offer.payload_type_for("telephone-event") == 101
    assert offer.encoding(8) == "PCMA"
    assert offer.audio_codec == 0
    assert (offer.direction, offer.ptime_ms) == ("sendonly", 20)


def test_sdp_answer_with_session_connection_and_a_stream_before_audio() -> None:
    answer = parse_sdp(
        b"v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=pjmedia\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\na=recvonly\r\n"
        b"m=video 0 RTP/AVP 96\r\nc=IN IP4 10.9.9.9\r\n"
        b"m=audio 17002 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n"
        b"m=audio 17004 RTP/AVP 0\r\n"
    )
    assert (answer.address, answer.port, answer.audio_codec) == ("10.0.0.9", 17002, 8)
    assert answer.payload_type_for("telephone-event") == 96
    assert answer.direction == "recvonly"
    with pytest.raises(SdpError):
        parse_sdp(b"v=0\r\nm=video 5000 RTP/AVP 96\r\n")
    with pytest.raises(SdpError):
        parse_sdp(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n")
    assert [answer_direction(d) for d in ("sendonly", "recvonly", "inactive")] == ["recvonly", "sendonly", "inactive"]


def test_rtp_round_trip_and_wrapping_fields() -> None:
    packet = RtpPacket(8, 0x1FFFF, 0x1_0000_0005, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    unpacked = RtpPacket.unpack(packet.pack())
    assert unpacked == RtpPacket(8, 0xFFFF, 5, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    assert packet.pack()[:2] == b"\x80\x88"


def test_rtp_unpack_skips_csrcs_extension_and_padding() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 0x02, 0x00]) + (1).to_bytes(2, "big") + bytes(8)
    csrcs = bytes(8)
    extension = b"\xbe\xde\x00\x01" + b"\x11\x22\x33\x44"
    data = header + csrcs + extension + b"abc" + b"\x00\x00\x03"
    assert RtpPacket.unpack(data).payload == b"abc"
    for bad in (b"\x80\x00", bytes([0x40]) + bytes(11), bytes([0x90]) + bytes(11)):
        with pytest.raises(RtpError):
            RtpPacket.unpack(bad)


def test_dtmf_event_matches_rfc_4733_layout() -> None:
    event = DtmfEvent(5, 800, end=True, volume=10)
    assert event.pack() == bytes([0x05, 0x8A, 0x03, 0x20])
    assert DtmfEvent.unpack(event.pack()) == event
    assert DtmfEvent(11, 160).key == "#"


def test_dtmf_payloads_grow_then_end_three_times() -> None:
    payloads = dtmf_payloads("*", 100)
    assert [p.duration for p in payloads] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.end for p in payloads] == [False] * 4 + [True] * 3
    assert {p.event for p in payloads} == {10}
    with pytest.raises(ValueError):
        dtmf_payloads("x", 100)


def datagram(ts: int, payload: bytes, ssrc: int = 1, pt: int = 0) -> bytes:
    return RtpPacket(pt, ts // 160, ts, ssrc, payload).pack()


def test_reception_places_audio_by_timestamp_and_finds_the_first_loud_packet() -> None:
    quiet, loud = ulaw_encode(np.zeros(160, np.int16)), ulaw_encode(np.full(160, 8000, np.int16))
    received = [
        (1.00, datagram(1000, quiet)),
        (1.02, datagram(1160, quiet)),
        (1.03, b"\x00garbage"),
        (1.06, datagram(1480, loud)),  # 1320 lost
        (1.07, datagram(2000, DtmfEvent(1, 800, end=True).pack(), pt=101)),
        (1.08, datagram(2000, DtmfEvent(1, 800, end=True).pack(), pt=101)),
        (1.10, datagram(900_000, loud, ssrc=2)),  # a new source (after a transfer) is appended
    ]
    reception = analyse_rtp(received)
    samples = reception.audio.samples()
    assert reception.audio.rate == 8000 and samples.size == 4 * 160 + 160
    assert not samples[320:480].any()
    assert np.all(samples[480:640] == ulaw_decode(loud))
    assert reception.arrivals == (1.00, 1.02, 1.06, 1.10)
    assert reception.invalid_packets == 1 and reception.first_packet_at == 1.00
    assert reception.dtmf_keys == "1"
    assert reception.first_audio_after(1.01) == 1.06
    assert reception.first_audio_after(1.07) == 1.10
    assert reception.first_audio_after(1.2) is None
    assert reception.levels_dbfs[0] < -60 < -15 < reception.levels_dbfs[2]
    assert list(np.round(reception.gaps_ms())) == [20, 40, 40]


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(RtpPacket.unpack(data))


async def test_stream_sends_audio_then_an_event_then_silence_on_one_timeline() -> None:
    loop = asyncio.get_running_loop()
    collector = Collector()
    sink, _ = await loop.create_datagram_endpoint(lambda: collector, local_addr=("127.0.0.1", 16902))
    stream = RtpStream(ssrc=0x1234)
    stream.bind("127.0.0.1", 16900)
    try:
        stream.start(MediaClock(), ("127.0.0.1", 16902), 0, 101)
        t = np.arange(960) / 16000
        played = await stream.queue_audio(AudioChunk.from_samples(0.5 * np.sin(2 * np.pi * 500 * t), 16000))
        await stream.queue_dtmf("7", 60)
        await asyncio.sleep(0.1)
    finally:
        stream.stop()
        sink.close()
    packets = collector.packets
    assert played.completed and played.duration_s == pytest.approx(0.06)
    assert [p.sequence for p in packets] == list(range(packets[0].sequence, packets[0].sequence + len(packets)))
    audio = [p for p in packets if p.payload_type == 0]
    events = [p for p in packets if p.payload_type == 101]
    consecutive = [(a, b) for a, b in itertools.pairwise(audio) if b.sequence == a.sequence + 1]
    assert consecutive and all(b.timestamp - a.timestamp == 160 for a, b in consecutive)
    tone_packets = [p for p in audio if np.abs(ulaw_decode(p.payload).astype(int)).max() > 4000]
    assert len(tone_packets) == 3
    decoded = [DtmfEvent.unpack(p.payload) for p in events]
    assert [(e.duration, e.end) for e in decoded] == [(160, False), (320, False)] + [(480, True)] * 3
    assert {e.key for e in decoded} == {"7"}
    assert [p.marker for p in events] == [True, False, False, False, False]
    assert len({p.timestamp for p in events}) == 1
    after = [p for p in audio if p.sequence == events[-1].sequence + 1]
    assert after and after[0].timestamp == events[0].timestamp + 3 * 160
    assert not ulaw_decode(after[0].payload).any()


def block_the_event_loop(seconds: float) -> None:
    time.sleep(seconds)


async def test_arrival_times_are_when_packets_reached_the_host_not_when_the_loop_read_them() -> None:
    rtp = RtpSocket("127.0.0.1", 16910)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send_two() -> None:
        sender.sendto(b"first", ("127.0.0.1", 16910))
        time.sleep(0.1)
        sender.sendto(b"second", ("127.0.0.1", 16910))

    before = time.monotonic()
    thread = threading.Thread(target=send_two)
    thread.start()
    block_the_event_loop(0.3)  # both packets wait in the socket; the loop reads them in one go
    thread.join()
    await asyncio.sleep(0.05)
    read_by = time.monotonic()
    rtp.close()
    sender.close()
    assert rtp.kernel_timestamps
    (first, data_1), (second, data_2) = rtp.received
    assert (data_1, data_2) == (b"first", b"second")
    assert before <= first and second - first >= 0.09 and second <= read_by
