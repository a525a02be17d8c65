"""A SIP worker: one process owning pjsua2 (at most 4 calls), answering calls into CallSessions.

The process's main thread owns pj: it pumps `libHandleEvents`, runs the commands other threads post,
and checks call timers. Sessions run on the CallHost's event-loop thread; engines in its executors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

import pjsua2 as pj

from telephony.admission import AdmissionGuard, Refusal, parse_networks
from telephony.call_host import CallHost, CallLink, SipControl
from telephony.invite_headers import caller_uri, header
from telephony.pjsip import CLOCK_RATE, BotCall, Endpoint, PortPool
from telephony.queue_hold import QueueHold, recover_after_restart
from telephony.transfer import Transfers
from voicebot.ports import Handoff
from voicebot.sip_settings import SipSettings

if TYPE_CHECKING:
    from dialogue.acd import Acd

log = logging.getLogger(__name__)

TIMER_PERIOD_S = 0.5
# pjsua2 hands onIncomingCall at most 4000 bytes of the message: a copy that long means an INVITE of 4 kB or
# more, which is an attack or a broken client (a caller's INVITE with SDP is 1-3 kB).
MAX_MESSAGE_BYTES = 3999
TOO_LARGE = Refusal(513, "Message Too Large")
SHUTTING_DOWN = Refusal(503, "Shutting Down")
ACK_RETRY_S = 1.0
ACK_GIVE_UP_S = 40.0  # pjsip gives up on the ACK at the first 2xx retransmission after 64 x T1 = 32 s (~35.5 s)


class SipWorker:
    def __init__(
        self,
        settings: SipSettings,
        host: CallHost,
        bind_host: str,
        bind_port: int,
        name: str = "w0",
        behind_front_door: bool = False,
        acd: Acd | None = None,
    ) -> None:
        self.settings = settings
        self.acd = acd
        self.host = host
        self.name = name
        self.behind_front_door = behind_front_door
        self.endpoint = Endpoint(settings, bind_host, bind_port)
        max_calls = min(settings.max_calls, 4)
        if settings.transfer_mode == "queue":  # one pjsua slot stays free for the bot's call to the chosen agent
            max_calls = min(max_calls, 3)
        if behind_front_door:  # Kamailio checked source and rate; every INVITE comes from its address
            self.guard = AdmissionGuard(parse_networks(["0.0.0.0/0", "::/0"]), 1e9, max_calls, time.monotonic)
        else:
            self.guard = AdmissionGuard(
                parse_networks(settings.allow), settings.invite_rate_per_s, max_calls, time.monotonic
            )
        self.pool = PortPool(f"{name}-port")
        self.links: dict[int, CallLink] = {}  # pj call id -> link, answered calls only
        self.calls: dict[int, BotCall] = {}  # every pj call we hold a reference to (refused ones too)
        self.transfers = Transfers(self)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._later: list[tuple[float, Callable[[], None]]] = []
        self._next_timer = 0.0
        self._serial = 0
        self.draining = False
        self.restart_requested = False
        self._retired: list[BotCall] = []

    # --- main loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.acd is not None:
            recover_after_restart(self.acd, self.name)
        self.endpoint.start(self._on_incoming, self._on_rejected_by_pjsua)
        log.info("SIP worker %s listening on %s:%d", self.name, self.endpoint.bind_host, self.endpoint.bind_port)

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop() and not (self.restart_requested and not self.calls):
            self.step()
        self.drain()

    def step(self, timeout_ms: int = 10) -> None:
        self.endpoint.handle_events(timeout_ms)
        self._run_commands()
        now = time.monotonic()
        if now >= self._next_timer:
            self._next_timer = now + TIMER_PERIOD_S
            self._check_calls(now)

    def post(self, command: Callable[[], None]) -> None:
        """Thread-safe: run `command` on the pj thread."""
        self._commands.put(command)

    def later(self, delay_s: float, command: Callable[[], None]) -> None:
        """pj thread only."""
        self._later.append((time.monotonic() + delay_s, command))

    def _run_commands(self) -> None:
        due = [c for c in self._later if c[0] <= time.monotonic()]
        if due:
            self._later = [c for c in self._later if c[0] > time.monotonic()]
        commands = [c for _, c in due]
        while not self._commands.empty():
            commands.append(self._commands.get_nowait())
        for command in commands:
            try:
                command()
            except Exception:
                log.exception("worker %s: command failed", self.name)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Stop taking calls, let the current ones end (or hang them up at the deadline)."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self.calls and time.monotonic() < deadline:
            self.step()
        if self.calls:
            log.warning("worker %s: hanging up %d calls at shutdown", self.name, len(self.calls))
            self.endpoint.ep.hangupAllCalls()
            for _ in range(50):
                self.step()

    # --- incoming calls --------------------------------------------------------------------------

    def _on_incoming(self, call_id: int, source: str, message: str) -> None:
        call = BotCall(self.endpoint.account, self, call_id)
        if self.behind_front_door:
            source = header(message, "X-Voicebot-Source") or source
        self.hold_call(call_id, call)
        refusal = self.guard.check(source, self._slots_in_use())
        if len(message) > MAX_MESSAGE_BYTES:
            refusal = TOO_LARGE
        if self.draining:
            refusal = refusal or SHUTTING_DOWN
        if refusal is not None:
            log.warning("worker %s: refused a call from %s: %d %s (%d calls held)", self.name, source, refusal.status,
                        refusal.reason, len(self.calls) - 1)  # fmt: skip
            if refusal is TOO_LARGE:  # refusing inside the callback crashes pjsip on a big (cloned) INVITE
                self.later(0.0, lambda: self._refuse(call, TOO_LARGE))
            else:
                self._answer(call, refusal.status, refusal.reason)
            return
        self._serial += 1
        call_name = f"{self.name}-{self._serial}-{secrets.token_hex(4)}"  # unique across workers and restarts
        link = CallLink(call_name, caller_uri(message) or source, CLOCK_RATE, pj_call=call)
        link.pj_state.update(started=time.monotonic(), rx_packets=-1, rx_changed=time.monotonic())
        self.links[call_id] = link
        log.info("worker %s: call %s from %s", self.name, link.call_id, source)
        if not self._answer(call, 200, "OK"):
            self.links.pop(call_id, None)

    def _on_rejected_by_pjsua(self, status: int, remote: str) -> None:
        # Calls known to use a pjsua slot: answered ones and the bot's own calls to agents. (self.calls may
        # still hold a call that has just ended: its reference is dropped on the next loop turn.)
        held = len(self.links) + self.transfers.consult_calls()
        if status == 486 and held < min(self.settings.max_calls, 4) and not self.draining:
            # pjsua 2.15 can keep the slot of a call whose 200 OK was never ACKed. Nothing frees it but a new
            # process: stop taking calls, let the current ones end, exit for the supervisor to restart us.
            log.error("worker %s: pjsua refused %s as busy while %d of its slots are in use: it leaked a call "
                      "slot; draining, then exiting for a restart", self.name, remote, held)  # fmt: skip
            self.draining = self.restart_requested = True
        else:
            log.warning("worker %s: pjsua refused a call from %s: %d", self.name, remote, status)

    def forget_call(self, pj_id: int, call: BotCall) -> None:
        """Drop our reference on the next loop turn: never destroy a Call inside its own callback. pjsua reuses
        call ids at once, so only this call object is dropped, not a new call that took its id meanwhile."""
        self.later(0.0, lambda: self._drop(pj_id, call))

    def _drop(self, pj_id: int, call: BotCall) -> None:
        if self.calls.get(pj_id) is call:
            del self.calls[pj_id]
            self._retired.append(call)

    def hold_call(self, pj_id: int, call: BotCall) -> None:
        """Keep a reference to every live Call. A Call's destructor hangs up whatever call now has its id,
        and pjsua reuses ids at once: a finished Call is destroyed only once its id is free again."""
        previous = self.calls.get(pj_id)
        if previous is not None and previous is not call:
            self._retired.append(previous)
        self.calls[pj_id] = call

    def _destroy_retired(self) -> None:
        self._retired = [c for c in self._retired if c.getId() in self.calls or c.isActive()]

    def _slots_in_use(self) -> int:
        return len(self.calls) - 1  # the call being decided is already held

    def _refuse(self, call: BotCall, refusal: Refusal) -> None:
        self._answer(call, refusal.status, refusal.reason)

    def _answer(self, call: BotCall, status: int, reason: str) -> bool:
        op = pj.CallOpParam()
        op.statusCode = status
        op.reason = reason
        try:
            call.answer(op)
            return True
        except pj.Error as exc:
            log.warning("worker %s: answering %d failed: %s", self.name, status, exc.info())
            self._hangup_quietly(call, 488)
            return False

    # --- call callbacks (pj thread) --------------------------------------------------------------

    def on_state(self, call: BotCall) -> None:
        info = call.getInfo()
        if info.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        call_id = info.id
        link = self.links.pop(call_id, None)
        if link is not None:
            log.info("worker %s: call %s ended (%d %s)", self.name, link.call_id, info.lastStatusCode, info.lastReason)
            link.ended = True  # before the port goes back to the pool: the session thread checks it
            self._disconnect_port(link)
            link.pj_call = None  # the link lives on in the session's thread: it must not own pj objects
            self.host.caller_hung_up(link)
            self.transfers.call_ended(link)
        self.forget_call(call_id, call)

    def on_media(self, call: BotCall) -> None:
        link = self.links.get(call.getId())
        if link is None or link.port is not None:
            return
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self._connect_port(link, call, index)
                self.host.open_call(link, self._control(link))
                return

    def on_dtmf(self, call: BotCall, digit: str) -> None:
        link = self.links.get(call.getId())
        if link is not None:
            self.host.dtmf(link, digit)

    def on_transfer_status(self, call: BotCall, status: int, final: bool) -> None:
        link = self.links.get(call.getId())
        if link is not None:
            self.transfers.status(link, status, final)

    # --- media -----------------------------------------------------------------------------------

    def _connect_port(self, link: CallLink, call: BotCall, index: int) -> None:
        port = self.pool.acquire()
        media = call.getAudioMedia(index)
        media.startTransmit(port)
        port.startTransmit(media)
        link.port, link.media = port, media
        link.pj_state["media_index"] = index

    def _disconnect_port(self, link: CallLink) -> None:
        port, media = link.port, link.media
        if port is None:
            return
        port.detach()
        for source, sink in ((media, port), (port, media)):
            with contextlib.suppress(pj.Error):  # the call's conference slot may already be gone
                source.stopTransmit(sink)
        link.media = link.port = None
        self.pool.release(port)

    # --- session commands (pj thread) ------------------------------------------------------------

    def _control(self, link: CallLink) -> SipControl:
        return SipControl(link, self.post, self.transfers.start, self.hangup)

    def hangup(self, link: CallLink, reason: str) -> None:
        if link.ended or link.pj_call is None or link.pj_state.get("hanging_up"):
            return
        link.pj_state["hanging_up"] = True
        self._hangup_once_acked(link, reason)

    def _hangup_once_acked(self, link: CallLink, reason: str) -> None:
        if link.ended or link.pj_call is None:
            return
        if self._awaiting_ack(link):
            # pjsua 2.15 leaks the call slot for good when a call is hung up while its 200 OK still waits for
            # the ACK; once the ACK arrives, or pjsip gives up on it (~32 s), the hang-up is clean.
            self.later(ACK_RETRY_S, lambda: self._hangup_once_acked(link, reason))
            return
        log.info("worker %s: call %s hung up by the bot (%s)", self.name, link.call_id, reason)
        self._hangup_quietly(link.pj_call, 200)

    def _awaiting_ack(self, link: CallLink) -> bool:
        if link.pj_call is None or time.monotonic() - link.pj_state["started"] > ACK_GIVE_UP_S:
            return False
        try:
            return bool(link.pj_call.getInfo().state == pj.PJSIP_INV_STATE_CONNECTING)
        except pj.Error:
            return False

    def _hangup_quietly(self, call: BotCall, status: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = status
        try:
            call.hangup(op)
        except pj.Error as exc:
            log.debug("hang-up: %s", exc.info())

    def queue_caller(self, link: CallLink, handoff: Handoff) -> None:
        """transfer_mode "queue": the caller waits for the agent the ACD picks (pj thread)."""
        if self.acd is None:
            log.error("worker %s: transfer_mode is queue but no agent queue is configured", self.name)
            self._queue_failed(link, handoff)
            return
        hang_up = lambda: self.post(lambda: self.hangup(link, "callback-offer-over"))  # noqa: E731
        hold = QueueHold(link, handoff, self.acd, self._ring_agent, self._stop_ringing, hang_up, sink=self.host.sink)
        waiting = self.host.submit(hold.run())

        def after(done: Future[None]) -> None:
            if done.exception() is not None:
                self.post(lambda: self._queue_failed(link, handoff))

        waiting.add_done_callback(after)

    def _queue_failed(self, link: CallLink, handoff: Handoff) -> None:
        """The queue broke (its database, a bug): an apology, then the queue's fixed fallback line, never silence."""
        if link.ended:
            return
        fallback = dataclasses.replace(handoff, fixed_number=self.settings.target_for(handoff.queue))
        self.host.say_then(link, "apology", lambda: self.transfers.start(link, fallback), self.post)

    def _ring_agent(self, link: CallLink, handoff: Handoff, uri: str, timeout_s: float,
                    on_result: Callable[[bool], None]) -> None:  # fmt: skip
        self.post(lambda: self.transfers.ring_agent(link, handoff, uri, timeout_s, on_result))

    def _stop_ringing(self, link: CallLink, why: str) -> None:
        self.post(lambda: self.transfers.stop_ringing(link, why))

    def say_then_hangup(self, link: CallLink, prompt: str) -> None:
        self.host.say_then(link, prompt, lambda: self.hangup(link, prompt), self.post)

    # --- timers ----------------------------------------------------------------------------------

    def _check_calls(self, now: float) -> None:
        self._destroy_retired()
        for link in list(self.links.values()):
            state = link.pj_state
            if now - state["started"] > self.settings.max_call_s and not state.get("over_time"):
                state["over_time"] = True
                log.warning("worker %s: call %s reached the maximum duration", self.name, link.call_id)
                self.say_then_hangup(link, "time_limit")
            elif self._rtp_silent_for(link, now) > self.settings.rtp_timeout_s and not state.get("hanging_up"):
                log.warning("worker %s: call %s: no RTP for %.0f s, hanging up", self.name, link.call_id,
                            self.settings.rtp_timeout_s)  # fmt: skip
                self.hangup(link, "rtp-timeout")
        self.transfers.check(now)

    def _rtp_silent_for(self, link: CallLink, now: float) -> float:
        state = link.pj_state
        if "media_index" not in state or link.pj_call is None:
            return now - state["started"]
        try:
            packets = link.pj_call.getStreamStat(state["media_index"]).rtcp.rxStat.pkt
        except pj.Error:
            return 0.0
        if packets != state["rx_packets"]:
            state["rx_packets"], state["rx_changed"] = packets, now
        return now - state["rx_changed"]

    def shutdown(self) -> None:
        """Drop every pj object, then destroy the library (no SWIG destructor may run after it)."""
        self.links.clear()
        self.calls.clear()
        self._retired.clear()
        self.transfers.clear()
        self.pool.clear()
        self.endpoint.account = None
        self.endpoint.ep.libDestroy()

