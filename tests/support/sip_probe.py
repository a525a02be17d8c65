"""Hostile SIP and RTP for worker tests: raw INVITEs with any SDP or headers, garbage datagrams, RTP noise.

SipProbe is one asyncio UDP socket that sends bytes as they are and collects the responses that come back.
It behaves like a careless attacker, not like a phone: it ACKs failure responses (so the far end's
transaction ends as it would with any caller) but never a 2xx, so an INVITE the far end should not have
answered stays half-open, as it would in a real attack.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from typing import cast

from telephony.rtp import RtpPacket
from telephony.sip_dialog import ack_for_failure
from telephony.sip_message import (
    SipParseError,
    SipRequest,
    SipResponse,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    request,
)

Address = tuple[str, int]


def sdp_body(host: str, port: int, media: str, attributes: list[str]) -> bytes:
    """An SDP offer with one m-line `media` (e.g. "audio 30000 RTP/AVP 3") and its a= lines."""
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0", f"m={media}"]
    lines += [f"a={attribute}" for attribute in attributes]
    return ("\r\n".join(lines) + "\r\n").encode()


def pcmu_offer(host: str, port: int = 30000) -> bytes:
    return sdp_body(host, port, f"audio {port} RTP/AVP 0", ["rtpmap:0 PCMU/8000", "sendrecv"])


def garbage_datagrams(rng: random.Random, count: int) -> list[bytes]:
    """Random bytes of many sizes, binary zeros, and text that starts like SIP but is not."""
    datagrams = [rng.randbytes(rng.randint(1, 1400)) for _ in range(count)]
    datagrams += [b"\x00" * 1024, b"\xff" * 300, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"]
    datagrams += [b"INVITE sip:x SIP/2.0\r\nVia: \x00\x01\r\nContent-Length: 99999\r\n\r\n" + rng.randbytes(200)]
    return datagrams


class SipProbe(asyncio.DatagramProtocol):
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.transport: asyncio.DatagramTransport | None = None
        self.responses: list[SipResponse] = []
        self.requests: list[SipRequest] = []  # recorded, never answered
        self._finals: dict[str, asyncio.Future[SipResponse]] = {}

    async def start(self) -> SipProbe:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, 0))
        return self

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send_raw(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return
        if isinstance(message, SipRequest):
            self.requests.append(message)
            return
        self.responses.append(message)
        waiting = self._finals.get(message.call_id)
        if message.status >= 200 and waiting is not None and not waiting.done():
            waiting.set_result(message)

    def invite(
        self, to: Address, body: bytes, *, extra_vias: int = 0, headers: list[tuple[str, str]] | None = None
    ) -> SipRequest:
        """An INVITE from this socket; `extra_vias` fake proxies below our own Via (responses still come here)."""
        uri = f"sip:voicebot@{to[0]}:{to[1]}"
        vias = [("Via", f"SIP/2.0/UDP {self.host}:{self.port};branch={new_branch()};rport")]
        vias += [("Via", f"SIP/2.0/UDP 10.{i // 250}.0.{i % 250 + 1}:5060;branch={new_branch()}")
                 for i in range(extra_vias)]  # fmt: skip
        base = [
            *vias,
            ("Max-Forwards", "70"),
            ("From", f"<sip:probe@{self.host}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", new_call_id(self.host)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:probe@{self.host}:{self.port}>"),
            ("Content-Type", "application/sdp"),
        ]
        return request("INVITE", uri, base + (headers or []), body)

    async def offer(self, invite: SipRequest, to: Address, wait_s: float = 5.0) -> SipResponse | None:
        """Sends the INVITE once; returns its final response (None: none in time). ACKs a failure, never a 2xx."""
        final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._finals[invite.call_id] = final
        self.send_raw(invite.encode(), to)
        try:
            response = await asyncio.wait_for(final, wait_s)
        except TimeoutError:
            return None
        finally:
            del self._finals[invite.call_id]
        if response.status >= 300:
            self.send_raw(ack_for_failure(invite, response).encode(), to)
        return response


async def spray_rtp_garbage(targets: list[Address], duration_s: float, per_second: int = 400, seed: int = 7) -> int:
    """Sends noise to each target (an RTP and its RTCP port) from a socket of its own for `duration_s`: random
    bytes, and packets that look like RTP (version 2) with random payload types, SSRCs, sequence numbers and
    lengths. Returns how many datagrams went out."""
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline:
            for _ in range(per_second // 50):
                for to in targets:
                    sock.sendto(_noise_packet(rng), to)
                    sent += 1
            await asyncio.sleep(0.02)
    finally:
        sock.close()
    return sent


def _noise_packet(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(1, 1500))
    packet = RtpPacket(rng.randrange(128), rng.randrange(1 << 16), rng.randrange(1 << 32), rng.randrange(1 << 32),
                       rng.randbytes(rng.choice((0, 1, 3, 160, 161, 1200))))  # fmt: skip
    return packet.pack()


def udp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- what the worker's log says about its calls ---------------------------------------------------

_ANSWERED = re.compile(r"worker \S+: call (\S+) from ")
_ENDED = re.compile(r"worker \S+: call (\S+) ended ")


def calls_still_up(log: str) -> set[str]:
    """Calls the worker answered (its `call X from` line) without an `ended` line yet."""
    return set(_ANSWERED.findall(log)) - set(_ENDED.findall(log))
