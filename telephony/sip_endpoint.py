"""A SIP UDP socket with the transaction layer a caller needs (RFC 3261 §17).

Responses are matched to client transactions by Via branch and CSeq method. Non-INVITE requests are
retransmitted on timer E (T1 doubling up to T2) until a final response or timer F. A retransmitted request
gets the response already sent to it again instead of reaching the call twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from telephony.sip_message import SipParseError, SipRequest, SipResponse, parse_message

T1 = 0.5
T2 = 4.0
TRANSACTION_TIMEOUT_S = 64 * T1
RESPONSE_CACHE_S = TRANSACTION_TIMEOUT_S

Address = tuple[str, int]
RequestHandler = Callable[[SipRequest, Address], None]
ResponseHandler = Callable[[SipResponse], None]


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self, on_request: RequestHandler) -> None:
        self.on_request = on_request
        self.transport: asyncio.DatagramTransport | None = None
        self.invalid_datagrams = 0
        self.stray_responses = 0
        self._handlers: dict[tuple[str, str], ResponseHandler] = {}
        self._sent_responses: dict[tuple[str, str, str], tuple[bytes, float]] = {}

    @classmethod
    async def open(cls, host: str, port: int, on_request: RequestHandler) -> SipEndpoint:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(on_request), local_addr=(host, port))
        return protocol

    @property
    def local_address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            message = parse_message(data)
            if isinstance(message, SipResponse):
                self._dispatch_response(message)
            elif not self._resend_cached_response(message, addr):
                self.on_request(message, addr)
        except SipParseError:
            self.invalid_datagrams += 1

    def send(self, message: SipRequest | SipResponse, addr: Address) -> bytes:
        data = message.encode()
        self.send_bytes(data, addr)
        return data

    def send_bytes(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def respond(self, request: SipRequest, response: SipResponse, addr: Address) -> None:
        """Sends a response to the request's source (symmetric, like rport) and remembers it for retransmissions."""
        data = self.send(response, addr)
        if request.method != "INVITE" or response.status >= 300:
            now = time.monotonic()
            self._sent_responses[_server_key(request)] = (data, now + RESPONSE_CACHE_S)
            if len(self._sent_responses) > 64:
                self._sent_responses = {k: v for k, v in self._sent_responses.items() if v[1] > now}

    def expect(self, branch: str, method: str, handler: ResponseHandler) -> None:
        self._handlers[(branch, method)] = handler

    def forget(self, branch: str, method: str) -> None:
        self._handlers.pop((branch, method), None)

    async def transact(self, request: SipRequest, addr: Address) -> SipResponse | None:
        """A non-INVITE client transaction: the final response, or None after timer F."""
        final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        provisional = False

        def on_response(response: SipResponse) -> None:
            nonlocal provisional
            if response.status >= 200 and not final.done():
                final.set_result(response)
            provisional = provisional or response.status < 200

        self.expect(request.branch, request.method, on_response)
        data = self.send(request, addr)
        try:
            await retransmit_until(final, lambda: self.send_bytes(data, addr), lambda: T2 if provisional else None)
            return final.result() if final.done() else None
        finally:
            self.forget(request.branch, request.method)

    def _dispatch_response(self, response: SipResponse) -> None:
        handler = self._handlers.get((response.branch, response.cseq[1]))
        if handler is None:
            self.stray_responses += 1
            return
        handler(response)

    def _resend_cached_response(self, request: SipRequest, addr: Address) -> bool:
        cached = self._sent_responses.get(_server_key(request))
        if cached is None or cached[1] < time.monotonic() or request.method == "ACK":
            return False
        self.send_bytes(cached[0], addr)
        return True


def _server_key(request: SipRequest) -> tuple[str, str, str]:
    return request.call_id, request.branch, request.method


async def retransmit_until(
    done: asyncio.Future[SipResponse] | asyncio.Event,
    resend: Callable[[], None],
    fixed_interval: Callable[[], float | None] = lambda: None,
    timeout_s: float = TRANSACTION_TIMEOUT_S,
) -> bool:
    """Calls `resend` at T1, 2·T1, … (capped at T2, or at `fixed_interval()` when it says so) until `done`.

    Returns False when `timeout_s` passed first.
    """
    waiter = done if isinstance(done, asyncio.Future) else asyncio.ensure_future(done.wait())
    deadline = time.monotonic() + timeout_s
    interval = T1
    try:
        while not waiter.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait([waiter], timeout=min(interval, remaining))
            if not waiter.done() and time.monotonic() < deadline:
                resend()
                interval = fixed_interval() or min(interval * 2, T2)
        return True
    finally:
        if waiter is not done:
            waiter.cancel()
