"""One outgoing test call: INVITE with an SDP offer, then media, DTMF, and the far end's in-dialog requests."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from telephony.rtp import dtmf_event_code
from telephony.rtp_stream import PlayedAudio, RtpStream
from telephony.sdp import CODEC_PAYLOAD_TYPES, AudioDescription, SdpError, answer_direction, build_sdp, parse_sdp
from telephony.sip_dialog import ALLOW, Dialog
from telephony.sip_endpoint import TRANSACTION_TIMEOUT_S, Address, retransmit_until
from telephony.sip_message import SipParseError, SipRequest, SipResponse, name_addr_uri, parse_uri, response_to
from telephony.uac_result import CallResult, analyse_rtp, audio_level_dbfs
from telephony.uac_types import CallContext, CallEndedError, describe_response
from voicebot.audio import AudioChunk

CODEC_NAMES = {pt: name for name, pt in CODEC_PAYLOAD_TYPES.items()}
NOTIFY_ACTIVE = "active;expires=60"
NOTIFY_TERMINATED = "terminated;reason=noresource"


class Call:
    def __init__(
        self, context: CallContext, dialog: Dialog, target: str, destination: Address, stream: RtpStream,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.context, self.dialog, self.stream = context, dialog, stream
        self.target, self.destination = target, destination
        self.status, self.reason = 0, ""
        self.provisional: list[int] = []
        self.invite_sent_at = 0.0
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.codec: str | None = None
        self.refer_to: str | None = None
        self.transfer: Call | None = None
        self.bye_from_remote = False
        self.dtmf_sent = ""
        self.errors: list[str] = []
        self.ended = asyncio.Event()
        self.transferred = asyncio.Event()  # set once a followed REFER's call got its final response
        self._extra_headers = headers or []
        self._invite: SipRequest | None = None
        self._final: asyncio.Future[SipResponse | None] = asyncio.get_running_loop().create_future()
        self._responded = asyncio.Event()
        self._ack: tuple[bytes, Address] | None = None
        self._session_id = secrets.randbelow(1 << 31)
        self._sdp_version = 1
        self._direction = "sendrecv"
        self._reinvites: dict[int, tuple[asyncio.Event, bytes]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retransmissions: set[asyncio.Task[Any]] = set()

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def answered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def active(self) -> bool:
        return self.answered and not self.ended.is_set()

    # --- INVITE ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Sends the INVITE and returns after its final response (or the answer timeout)."""
        headers = [("Content-Type", "application/sdp"), ("Allow", ALLOW), *self._extra_headers]
        invite = self.dialog.build("INVITE", self.target, self.dialog.next_cseq, headers=headers, body=self._sdp(),
                                   routes=False)
        self.dialog.next_cseq += 1
        self._invite = invite
        self.context.endpoint.expect(invite.branch, "INVITE", self._on_invite_response)
        self.invite_sent_at = time.monotonic()
        data = self.context.endpoint.send(invite, self.destination)
        resend = partial(self.context.endpoint.send_bytes, data, self.destination)
        self._spawn(retransmit_until(self._responded, resend), self._retransmissions)
        try:
            response = await asyncio.wait_for(asyncio.shield(self._final), self.context.options.answer_timeout_s)
        except TimeoutError:
            response = await self._give_up(invite)
        self._on_final(response)

    def _on_invite_response(self, response: SipResponse) -> None:
        self._responded.set()
        if response.status < 200:
            self.provisional.append(response.status)
            return
        if self._ack is not None:  # a retransmitted final response: our ACK was lost
            self.context.endpoint.send_bytes(*self._ack)
            return
        assert self._invite is not None
        if response.status >= 300:
            ack = self.dialog.ack_for_failure(self._invite, response)
            self._ack = (self.context.endpoint.send(ack, self.destination), self.destination)
        else:
            self.answered_at = time.monotonic()
            self.dialog.confirm(response)
            hop = self._next_hop()
            self._ack = (self.context.endpoint.send(self.dialog.ack_for_2xx(self._invite.cseq[0]), hop), hop)
            if self.ended.is_set():  # answered after we gave up: free the far end's line
                self._spawn(self.context.endpoint.transact(self.dialog.in_dialog("BYE"), hop))
        if not self._final.done():
            self._final.set_result(response)
        loop = asyncio.get_running_loop()
        loop.call_later(TRANSACTION_TIMEOUT_S, self.context.endpoint.forget, self._invite.branch, "INVITE")

    async def _give_up(self, invite: SipRequest) -> SipResponse | None:
        """No final response in time: CANCEL when the far end answered provisionally, then take what comes."""
        self.errors.append(f"no final response within {self.context.options.answer_timeout_s:g} s")
        if not self.provisional:
            return None
        await self.context.endpoint.transact(self.dialog.cancel(invite), self.destination)
        try:
            return await asyncio.wait_for(asyncio.shield(self._final), TRANSACTION_TIMEOUT_S)
        except TimeoutError:
            return None

    def _on_final(self, response: SipResponse | None) -> None:
        if response is None:
            self.status, self.reason = 408, "Request Timeout (no response)"
        else:
            self.status, self.reason = response.status, response.reason
        if not self.answered or response is None:
            self._end()
            return
        try:
            self._start_media(parse_sdp(response.body))
        except SdpError as exc:
            self.errors.append(f"{self.status} {self.reason} without a usable SDP answer: {exc}")
            self._spawn(self.hangup())

    def _start_media(self, answer: AudioDescription) -> None:
        codec = answer.audio_codec
        if codec is None or CODEC_NAMES.get(codec) not in self.context.options.codecs:
            raise SdpError(f"answer has no codec we offered (payload types {answer.payload_types})")
        self.codec = CODEC_NAMES[codec]
        if answer.port:
            self.stream.start(self.context.clock, (answer.address, answer.port), codec,
                              answer.payload_type_for("telephone-event"))

    def _sdp(self, direction: str = "sendrecv") -> bytes:
        if direction != self._direction:
            self._direction, self._sdp_version = direction, self._sdp_version + 1
        payload_types = tuple(CODEC_PAYLOAD_TYPES[codec] for codec in self.context.options.codecs)
        return build_sdp(self.context.rtp_host, self.stream.local_port, payload_types, session_id=self._session_id,
                         version=self._sdp_version, direction=direction)

    # --- media and DTMF -------------------------------------------------------------------------

    async def play(self, chunk: AudioChunk) -> PlayedAudio:
        """Plays caller audio (any rate) after what is already queued; returns when its last packet went out."""
        self._require_active()
        if not self.stream.sending:
            raise CallEndedError(f"call {self.call_id} has no audio stream (the answer's port was 0)")
        return await self.stream.queue_audio(chunk)

    async def send_dtmf(self, keys: str, *, method: str = "rfc4733", duration_ms: int = 100, gap_ms: int = 100) -> None:
        """Sends keys as RFC 4733 events in the RTP stream, or as SIP INFO (method="info")."""
        for key in keys:
            dtmf_event_code(key)
        if method not in ("rfc4733", "info"):
            raise ValueError(f"unknown DTMF method {method!r}: use 'rfc4733' or 'info'")
        for key in keys:
            self._require_active()
            if method == "info":
                await self._send_info_dtmf(key, duration_ms)
            elif self.stream.event_payload_type is None:
                raise CallEndedError("the far end did not accept telephone-event: send DTMF with method='info'")
            else:
                await self.stream.queue_dtmf(key, duration_ms)
            self.dtmf_sent += key
            await asyncio.sleep(gap_ms / 1000)

    async def _send_info_dtmf(self, key: str, duration_ms: int) -> None:
        body = f"Signal={key}\r\nDuration={duration_ms}\r\n".encode()
        info = self.dialog.in_dialog("INFO", [("Content-Type", "application/dtmf-relay")], body)
        response = await self.context.endpoint.transact(info, self._next_hop())
        if response is None or response.status >= 300:
            self.errors.append(f"INFO DTMF {key}: {describe_response(response)}")

    async def wait_for_audio(
        self, after: float, timeout_s: float, threshold_dbfs: float = -40.0
    ) -> float | None:
        """Arrival time of the first received packet at or after `after` that reaches the level, while it comes."""
        deadline = time.monotonic() + timeout_s
        index = 0
        while True:
            received = self.stream.received
            for arrival, datagram in received[index:]:
                level = audio_level_dbfs(datagram) if arrival >= after else None
                if level is not None and level >= threshold_dbfs:
                    return arrival
            index = len(received)
            if time.monotonic() >= deadline or self.ended.is_set():
                return None
            await asyncio.sleep(0.02)

    def _require_active(self) -> None:
        if not self.active:
            raise CallEndedError(f"call {self.call_id} is not answered or has ended ({self.status} {self.reason})")

    # --- ending ---------------------------------------------------------------------------------

    async def hangup(self) -> None:
        """BYE (this leg and a followed transfer's leg); returns once answered or timed out."""
        if self.transfer is not None:
            await self.transfer.hangup()
        if not self.active:
            return
        self.stream.stop()
        response = await self.context.endpoint.transact(self.dialog.in_dialog("BYE"), self._next_hop())
        if (response is None or response.status >= 300) and not self.bye_from_remote:
            self.errors.append(f"BYE: {describe_response(response)}")
        self._end()

    async def wait_ended(self, timeout_s: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self.ended.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended_at = time.monotonic()
        self.stream.stop()
        for task in self._retransmissions:
            task.cancel()
        self.ended.set()
        self.context.on_end(self)

    def result(self) -> CallResult:
        return CallResult(
            call_id=self.call_id,
            target=self.target,
            status=self.status,
            reason=self.reason,
            invite_sent_at=self.invite_sent_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
            codec=self.codec,
            rtp=analyse_rtp(self.stream.received),
            played=tuple(self.stream.played),
            provisional=tuple(self.provisional),
            dtmf_sent=self.dtmf_sent,
            refer_to=self.refer_to,
            transfer=self.transfer.result() if self.transfer is not None else None,
            bye_from_remote=self.bye_from_remote,
            packets_sent=self.stream.packets_sent,
            slots_skipped=self.stream.slots_skipped,
            errors=tuple(self.errors),
        )

    # --- requests from the far end --------------------------------------------------------------

    def handle_request(self, req: SipRequest, addr: Address) -> None:
        handlers: dict[str, Callable[[SipRequest, Address], None]] = {
            "BYE": self._on_bye,
            "INVITE": self._on_reinvite,
            "UPDATE": self._on_update,
            "REFER": self._on_refer,
            "ACK": self._on_ack,
        }
        handler = handlers.get(req.method)
        if handler is not None:
            handler(req, addr)
        elif req.method in ("OPTIONS", "INFO", "NOTIFY", "MESSAGE"):
            self._respond(req, addr, 200, "OK")
        else:
            self._respond(req, addr, 501, "Not Implemented", [("Allow", ALLOW)])

    def _respond(
        self, req: SipRequest, addr: Address, status: int, reason: str, headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.context.endpoint.respond(req, response_to(req, status, reason, headers=headers, body=body), addr)

    def _on_bye(self, req: SipRequest, addr: Address) -> None:
        self._respond(req, addr, 200, "OK")
        self.bye_from_remote = True
        self._end()

    def _on_ack(self, req: SipRequest, addr: Address) -> None:
        pending = self._reinvites.get(req.cseq[0])
        if pending is not None:
            pending[0].set()

    def _on_reinvite(self, req: SipRequest, addr: Address) -> None:
        cseq = req.cseq[0]
        if cseq in self._reinvites:  # retransmitted re-INVITE: the same 200 again
            self.context.endpoint.send_bytes(self._reinvites[cseq][1], addr)
            return
        answer = self._answer_offer(req, addr)
        if answer is None:
            return
        data = self.context.endpoint.send(answer, addr)
        acked = asyncio.Event()
        self._reinvites[cseq] = (acked, data)
        resend = partial(self.context.endpoint.send_bytes, data, addr)
        self._spawn(retransmit_until(acked, resend), self._retransmissions)

    def _on_update(self, req: SipRequest, addr: Address) -> None:
        answer = self._answer_offer(req, addr)
        if answer is not None:
            self.context.endpoint.respond(req, answer, addr)

    def _answer_offer(self, req: SipRequest, addr: Address) -> SipResponse | None:
        """200 with our SDP for a re-INVITE/UPDATE (same session, direction mirrored); 488 for bad SDP."""
        direction = "sendrecv"
        if req.body:
            try:
                offer = parse_sdp(req.body)
            except SdpError as exc:
                self._respond(req, addr, 488, "Not Acceptable Here")
                self.errors.append(f"{req.method} with unusable SDP: {exc}")
                return None
            direction = answer_direction(offer.direction)
            if offer.port and self.stream.remote is not None:
                self.stream.remote = (offer.address, offer.port)
        self.dialog.update_target(req)
        headers = [("Contact", f"<{self.dialog.contact}>"), ("Content-Type", "application/sdp"), ("Allow", ALLOW)]
        return response_to(req, 200, "OK", headers=headers, body=self._sdp(direction))

    def _on_refer(self, req: SipRequest, addr: Address) -> None:
        refer_to = req.header("Refer-To")
        if not refer_to:
            self._respond(req, addr, 400, "Missing Refer-To")
            return
        self._respond(req, addr, 202, "Accepted")
        self.refer_to = refer_to
        self._spawn(self._handle_refer(refer_to))

    async def _handle_refer(self, refer_to: str) -> None:
        if not self.context.options.follow_refer:
            await self._notify("SIP/2.0 603 Declined", NOTIFY_TERMINATED)
            return
        await self._notify("SIP/2.0 100 Trying", NOTIFY_ACTIVE)
        try:
            uri = parse_uri(name_addr_uri(refer_to))
            self.transfer = await self.context.place_call(uri.without_headers(), list(uri.headers))
            outcome = f"SIP/2.0 {self.transfer.status} {self.transfer.reason}"
        except (OSError, SipParseError) as exc:
            self.errors.append(f"cannot follow REFER to {refer_to}: {exc}")
            outcome = "SIP/2.0 503 Service Unavailable"
        self.transferred.set()
        await self._notify(outcome, NOTIFY_TERMINATED)

    async def _notify(self, sipfrag: str, subscription_state: str) -> None:
        if self.ended.is_set():
            return
        headers = [
            ("Event", "refer"),
            ("Subscription-State", subscription_state),
            ("Content-Type", "message/sipfrag;version=2.0"),
        ]
        notify = self.dialog.in_dialog("NOTIFY", headers, (sipfrag + "\r\n").encode())
        response = await self.context.endpoint.transact(notify, self._next_hop())
        if (response is None or response.status >= 300) and not self.ended.is_set():
            self.errors.append(f"NOTIFY {sipfrag!r}: {describe_response(response)}")

    # --- helpers --------------------------------------------------------------------------------

    def _next_hop(self) -> Address:
        try:
            return self.dialog.next_hop()
        except SipParseError:
            return self.destination

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], group: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = self._tasks if group is None else group
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def cancel_tasks(self) -> None:
        """Stops retransmissions and REFER handling still running (the caller is closing)."""
        for task in [*self._tasks, *self._retransmissions]:
            task.cancel()
