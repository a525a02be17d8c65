"""A fake SIP worker (UAS) and a tiny caller (UAC) over asyncio UDP, for the Kamailio front-door tests.

FakeUas answers INVITE 200 + SDP up to `capacity` calls, then 486 (a retransmitted INVITE gets the same
answer); it tracks ACK and BYE, answers any other request 200 and records every request it gets. `mode`
makes it "mute" (a dead worker: records, never answers) or "ignore_invites" (a wedged worker: answers pings
but not calls). SipCaller places calls through a proxy and answers in-dialog requests 200.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

from telephony.sip_dialog import ack_for_failure
from telephony.sip_message import (
    SipParseError,
    SipRequest,
    SipResponse,
    name_addr_uri,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    parse_uri,
    request,
    response_to,
)

Address = tuple[str, int]
Mode = Literal["answer", "mute", "ignore_invites"]


def sdp_offer(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


async def wait_until(condition: Callable[[], bool], wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def route_target(route_set: list[str], remote_target: str) -> Address:
    """Where an in-dialog request goes: the first Route hop, else the remote target (loose routing)."""
    return parse_uri(name_addr_uri(route_set[0] if route_set else remote_target)).address


@dataclass
class Received:
    request: SipRequest
    source: Address


class SipEndpoint(asyncio.DatagramProtocol):
    """One UDP socket; requests go to `on_request`, responses complete the waiting transaction."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[Received] = []
        self._pending: dict[str, asyncio.Future[SipResponse]] = {}
        self._cseq = itertools.count(1)

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, port))
        assert self.transport is not None
        self.port = self.transport.get_extra_info("sockname")[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, message: SipRequest | SipResponse | bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(message if isinstance(message, bytes) else message.encode(), to)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return
        if isinstance(message, SipResponse):
            waiting = self._pending.get(message.branch)
            if waiting is not None and not waiting.done() and message.status >= 200:
                waiting.set_result(message)
            return
        self.received.append(Received(message, addr))
        self.on_request(message, addr)

    def on_request(self, req: SipRequest, source: Address) -> None:
        if req.method != "ACK":
            self.send(response_to(req, 200, "OK"), source)

    def requests(self, method: str) -> list[SipRequest]:
        return [r.request for r in self.received if r.request.method == method]

    def via(self) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={new_branch()};rport"

    async def transaction(self, req: SipRequest, to: Address, wait_s: float = 5.0) -> SipResponse | None:
        """Send a request and wait for its final response (None on timeout)."""
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self._pending[req.branch] = future
        self.send(req, to)
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            return None
        finally:
            del self._pending[req.branch]

    def in_dialog(self, method: str, dialog: Dialog, cseq: int | None = None) -> SipRequest:
        number = cseq if cseq is not None else next(self._cseq) + 100
        headers = [("Via", self.via()), *(("Route", route) for route in dialog.route_set)]
        headers += [("Max-Forwards", "70"), ("From", dialog.local), ("To", dialog.remote)]
        headers += [("Call-ID", dialog.call_id), ("CSeq", f"{number} {method}")]
        return request(method, dialog.remote_target, headers)

    async def bye(self, dialog: Dialog) -> SipResponse | None:
        bye = self.in_dialog("BYE", dialog)
        return await self.transaction(bye, route_target(dialog.route_set, dialog.remote_target))


@dataclass
class Dialog:
    call_id: str
    local: str  # our From/To value with our tag
    remote: str
    remote_target: str  # the peer's Contact URI
    route_set: list[str] = field(default_factory=list)


@dataclass
class FakeCall:
    invite: SipRequest
    final: SipResponse
    dialog: Dialog
    acked: bool = False


class FakeUas(SipEndpoint):
    def __init__(self, host: str, capacity: int = 4, mode: Mode = "answer") -> None:
        super().__init__(host)
        self.capacity = capacity
        self.mode: Mode = mode
        self.calls: dict[str, FakeCall] = {}
        self.answered: list[str] = []  # Call-IDs answered 200, in order

    @property
    def active_calls(self) -> int:
        return sum(1 for call in self.calls.values() if call.final.status == 200)

    @property
    def invites(self) -> list[SipRequest]:
        return self.requests("INVITE")

    def reset(self, capacity: int = 4, mode: Mode = "answer") -> None:
        self.capacity, self.mode = capacity, mode
        self.calls.clear()
        self.answered.clear()
        self.received.clear()

    def on_request(self, req: SipRequest, source: Address) -> None:
        if self.mode == "mute" or (self.mode == "ignore_invites" and req.method == "INVITE"):
            return
        if req.method == "INVITE":
            self._on_invite(req, source)
        elif req.method == "ACK":
            if req.call_id in self.calls:
                self.calls[req.call_id].acked = True
        elif req.method == "BYE":
            self.calls.pop(req.call_id, None)
            self.send(response_to(req, 200, "OK"), source)
        else:
            self.send(response_to(req, 200, "OK"), source)

    def _on_invite(self, req: SipRequest, source: Address) -> None:
        known = self.calls.get(req.call_id)
        if known is None:
            known = self._answer(req)
            self.calls[req.call_id] = known
        self.send(known.final, source)

    def _answer(self, invite: SipRequest) -> FakeCall:
        tag = new_tag()
        record_route = [("Record-Route", value) for value in invite.header_values("Record-Route")]
        if self.active_calls >= self.capacity:
            final = response_to(invite, 486, "Busy Here", to_tag=tag)
        else:
            headers = [*record_route, ("Contact", f"<sip:bot@{self.host}:{self.port}>")]
            headers.append(("Content-Type", "application/sdp"))
            final = response_to(invite, 200, "OK", to_tag=tag, headers=headers, body=sdp_offer(self.host, 4000))
            self.answered.append(invite.call_id)
        dialog = Dialog(
            call_id=invite.call_id,
            local=final.header("To") or "",
            remote=invite.header("From") or "",
            remote_target=name_addr_uri(invite.header("Contact") or ""),
            route_set=invite.header_values("Record-Route"),
        )
        return FakeCall(invite, final, dialog)


@dataclass
class CallAttempt:
    invite: SipRequest
    final: SipResponse | None  # None: no final response in time
    dialog: Dialog | None  # set when answered 2xx

    @property
    def status(self) -> int:
        return self.final.status if self.final else 0


class SipCaller(SipEndpoint):
    """Places calls (INVITE, then ACK) to a target, answers in-dialog requests 200 and records them."""

    async def call(self, target: Address, wait_s: float = 8.0) -> CallAttempt:
        invite = self.invite_request(target)
        final = await self.transaction(invite, target, wait_s)
        if final is None:
            return CallAttempt(invite, None, None)
        if final.status >= 300:
            self.send(ack_for_failure(invite, final), target)
            return CallAttempt(invite, final, None)
        dialog = Dialog(
            call_id=invite.call_id,
            local=invite.header("From") or "",
            remote=final.header("To") or "",
            remote_target=name_addr_uri(final.header("Contact") or ""),
            route_set=list(reversed(final.header_values("Record-Route"))),
        )
        ack = self.in_dialog("ACK", dialog, cseq=invite.cseq[0])
        self.send(ack, route_target(dialog.route_set, dialog.remote_target))
        return CallAttempt(invite, final, dialog)

    async def options(self, target: Address, wait_s: float = 2.0) -> SipResponse | None:
        uri = f"sip:{target[0]}:{target[1]}"
        return await self.transaction(self._request("OPTIONS", uri), target, wait_s)

    def invite_request(self, target: Address) -> SipRequest:
        uri = f"sip:hotline@{target[0]}:{target[1]}"
        contact = ("Contact", f"<sip:caller@{self.host}:{self.port}>")
        content_type = ("Content-Type", "application/sdp")
        return self._request("INVITE", uri, [contact, content_type], sdp_offer(self.host, 5000))

    def _request(
        self, method: str, uri: str, extra: list[tuple[str, str]] | None = None, body: bytes = b""
    ) -> SipRequest:
        headers = [
            ("Via", self.via()),
            ("Max-Forwards", "70"),
            ("From", f"<sip:caller@{self.host}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", new_call_id(self.host)),
            ("CSeq", f"{next(self._cseq)} {method}"),
            *(extra or []),
        ]
        return request(method, uri, headers, body)
