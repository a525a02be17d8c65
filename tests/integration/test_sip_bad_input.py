"""Bad input to a real SIP worker (pjsua2): garbage and oversized SIP, broken or codec-less offers, a refused
source, an INVITE flood, RTP garbage during live calls, a caller who sends nothing, a caller who hangs up
mid-reply, and an agent nobody can reach.

Each test sends its bad input, checks what that input got (SIP response, log line, call events), and then
that the worker process lives and normal calls placed right after are answered and hear the greeting.
One worker for the module: SIP 5400, RTP from 45000, only 127.0.0.1 allowed (127.0.0.2 is a refused
source: Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from dialogue.rasa_service import RasaService
from telephony.sip_message import SipResponse
from telephony.uac import Call, CallOptions, SipCaller
from telephony.uac_result import analyse_rtp
from telephony.worker import ACK_GIVE_UP_S, TIMER_PERIOD_S
from telephony.worker_main import EXIT_RESTART
from tests.support.fake_uas import wait_until
from tests.support.sip_harness import Worker, start_worker, write_config
from tests.support.sip_probe import (
    SipProbe,
    calls_still_up,
    garbage_datagrams,
    pcmu_offer,
    sdp_body,
    spray_rtp_garbage,
    udp_port_free,
)
from voicebot.audio import AudioChunk
from voicebot.config import REPO_ROOT
from voicebot.engines.stt import WhisperSTT

pytestmark = pytest.mark.rasa

SIP_PORT, RTP_PORT = 5400, 45000
TARGET = ("127.0.0.1", SIP_PORT)
UNREACHABLE_AGENT_PORT = 5409  # nothing listens there
INVITE_RATE_PER_S = 4.0  # per source, burst twice that
BURST = int(2 * INVITE_RATE_PER_S)
RTP_TIMEOUT_S = 4.0
AGENT_ANSWER_TIMEOUT_S = 3.0
BLIND_TRANSFER_DEADLINE_S = AGENT_ANSWER_TIMEOUT_S + 5  # the worker's wait for the REFER's outcome
MAX_CALL_S = 45.0  # a safety net here: no test call may run on for ever
GREETING_S = 6.0  # disclosure + greeting
FIRST_AUDIO_WAIT_S = 5.0


@pytest.fixture(scope="module")
def worker(rasa_service: RasaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert udp_port_free(UNREACHABLE_AGENT_PORT), f"port {UNREACHABLE_AGENT_PORT} must stay unused (the lost agent)"
    folder = tmp_path_factory.mktemp("sip-bad-input")
    config = write_config(
        folder / "voicebot.yaml",
        {
            "dialogue": {"rasa_url": rasa_service.url, "auth_token": rasa_service.auth_token, "timeout_s": 15.0},
            "sip": {
                "rtp_port": RTP_PORT,
                "allow": ["127.0.0.1/32"],
                "invite_rate_per_s": INVITE_RATE_PER_S,
                "rtp_timeout_s": RTP_TIMEOUT_S,
                "max_call_s": MAX_CALL_S,
                "agent_answer_timeout_s": AGENT_ANSWER_TIMEOUT_S,
                "transfer_mode": "blind",
                "transfer_targets": {"default": f"sip:agent@127.0.0.1:{UNREACHABLE_AGENT_PORT}"},
            },
        },
    )
    started = start_worker(config, SIP_PORT, folder, name="bad")
    yield started
    assert started.stop() in (0, EXIT_RESTART), started.log()[-3000:]


@pytest_asyncio.fixture(autouse=True)
async def settled(worker: Worker) -> AsyncIterator[None]:
    """Each test starts with no call up on the worker and its rate bucket for 127.0.0.1 refilled."""
    await wait_until(lambda: not calls_still_up(worker.log()), 15.0)
    await asyncio.sleep(BURST / INVITE_RATE_PER_S / 2)
    yield


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT("tiny.en", REPO_ROOT / ".cache" / "models")


# --- helpers -------------------------------------------------------------------------------------


async def assert_still_serving(worker: Worker, calls: int = 1) -> None:
    """The worker process lives, and `calls` concurrent normal calls are answered and hear the greeting."""
    assert worker.process.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
    async with SipCaller() as caller:
        placed = await asyncio.gather(*(caller.call(worker.uri) for _ in range(calls)))
        statuses = [f"{call.status} {call.reason}" for call in placed]
        assert all(call.answered for call in placed), f"normal calls after the bad input got {statuses}"
        heard = await asyncio.gather(
            *(call.wait_for_audio(call.answered_at or 0.0, FIRST_AUDIO_WAIT_S) for call in placed)
        )
        assert all(at is not None for at in heard), "a normal call after the bad input heard no greeting"


def _events_of(worker: Worker, caller: SipCaller) -> list[dict[str, Any]]:
    """Events of the calls placed from this caller's SIP socket (its From URI, which CallStarted names, has it)."""
    source = "sip:{}@{}:{}".format(caller.user, *caller.sip_address)
    events = worker.events()
    call_ids = {e["call_id"] for e in events if e["event"] == "CallStarted" and e.get("caller") == source}
    return [e for e in events if e["call_id"] in call_ids]


async def _events_ended(worker: Worker, caller: SipCaller) -> list[str]:
    """The event kinds of this caller's call, once its session wrote CallEnded (or after 10 s)."""

    def kinds() -> list[str]:
        return [e["event"] for e in _events_of(worker, caller)]

    await wait_until(lambda: "CallEnded" in kinds(), 10.0)
    return kinds()


def _status(response: SipResponse | None) -> str:
    return "no response" if response is None else f"{response.status} {response.reason}"


def _transcript(stt: WhisperSTT, audio: AudioChunk) -> str:
    return stt.transcribe(audio.resample(16000), "en").text.lower()


# --- garbage and oversized SIP -------------------------------------------------------------------


async def test_garbage_datagrams_and_a_64_kb_datagram_are_dropped_without_a_call(worker: Worker) -> None:
    log_before = worker.log()
    probe = await SipProbe().start()
    try:
        rng = random.Random(4)
        for datagram in [*garbage_datagrams(rng, 200), rng.randbytes(65000), b"\x00" * 65000]:
            probe.send_raw(datagram, TARGET)
            await asyncio.sleep(0.001)
        await asyncio.sleep(1.0)
        assert probe.responses == [], "unparseable datagrams must be dropped, not answered"
    finally:
        probe.close()
    new_log = worker.log()[len(log_before) :]
    assert " call " not in new_log, f"garbage started a call:\n{new_log[-2000:]}"
    await assert_still_serving(worker)


async def test_an_invite_with_300_via_headers_is_dropped_or_refused_and_holds_no_call_slot(worker: Worker) -> None:
    log_before = worker.log()
    probe = await SipProbe().start()
    try:
        invite = probe.invite(TARGET, pcmu_offer(probe.host), extra_vias=299)
        response = await probe.offer(invite, TARGET, wait_s=3.0)
    finally:
        probe.close()
    assert response is None or response.status >= 400, f"answered {_status(response)}"
    new_log = worker.log()[len(log_before) :]
    if response is None:  # pjsip could not parse it: it must say so
        assert f"Error processing packet from 127.0.0.1:{probe.port}" in new_log, new_log[-2000:]
    await assert_still_serving(worker, calls=4)


# --- offers the worker cannot take ---------------------------------------------------------------

BROKEN_SDP = {
    "not-sdp": b"v=0\r\nthis is not a session description\r\n",
    "bad-m-line": sdp_body("127.0.0.1", 30000, "audio notaport RTP/AVP 0", []),
    "no-connection": b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n",
    "binary": b"\x00\x01\x02\xff\xfe" * 40,
}


async def test_invites_with_broken_sdp_get_a_4xx_and_hold_no_call_slot(worker: Worker) -> None:
    log_before = worker.log()
    probe = await SipProbe().start()
    try:
        statuses = {name: await probe.offer(probe.invite(TARGET, body), TARGET) for name, body in BROKEN_SDP.items()}
    finally:
        probe.close()
    got = {name: _status(r) for name, r in statuses.items()}
    assert all(r is not None and 400 <= r.status < 500 for r in statuses.values()), got
    new_log = worker.log()[len(log_before) :]
    assert new_log.count("Bad SDP") >= len(BROKEN_SDP), f"no clear log line per broken offer:\n{new_log[-2000:]}"
    await assert_still_serving(worker, calls=4)


NO_COMMON_CODEC = {
    "gsm": ("audio 30000 RTP/AVP 3", ["rtpmap:3 GSM/8000"]),
    "opus": ("audio 30000 RTP/AVP 111", ["rtpmap:111 opus/48000/2"]),
    "speex": ("audio 30000 RTP/AVP 97", ["rtpmap:97 speex/8000"]),
}


async def test_an_offer_without_a_common_codec_gets_488_and_holds_no_call_slot(worker: Worker) -> None:
    log_before = worker.log()
    probe = await SipProbe().start()
    try:
        responses = {
            name: await probe.offer(probe.invite(TARGET, sdp_body(probe.host, 30000, media, attributes)), TARGET)
            for name, (media, attributes) in NO_COMMON_CODEC.items()
        }
    finally:
        probe.close()
    got = {name: None if r is None else r.status for name, r in responses.items()}
    assert got == dict.fromkeys(NO_COMMON_CODEC, 488), got
    new_log = worker.log()[len(log_before) :]
    assert new_log.count("Not Acceptable Here") >= len(NO_COMMON_CODEC), new_log[-2000:]
    await assert_still_serving(worker, calls=4)


# --- admission ------------------------------------------------------------------------------------


async def test_a_source_outside_the_allow_list_gets_403_and_holds_no_call_slot(worker: Worker) -> None:
    async with SipCaller(local_host="127.0.0.2") as outsider:
        call = await outsider.call(worker.uri)
        source = "{}:{}".format(*outsider.sip_address)
    assert (call.status, call.reason) == (403, "Forbidden"), f"{call.status} {call.reason}"
    assert f"refused a call from {source}: 403 Forbidden" in worker.log()
    await assert_still_serving(worker, calls=4)


async def test_an_invite_flood_from_one_source_gets_503_beyond_its_rate(worker: Worker) -> None:
    """INVITEs one after another, each answered call hung up at once: the rate limit, not the call cap, must
    stop them."""
    flood = 3 * BURST
    statuses = []
    async with SipCaller() as caller:
        started = time.monotonic()
        for _ in range(flood):
            call = await caller.call(worker.uri)
            statuses.append(call.status)
            if call.answered:
                await call.hangup()
        elapsed = time.monotonic() - started
    allowed = BURST + INVITE_RATE_PER_S * elapsed
    assert flood - allowed >= 4, f"{flood} INVITEs took {elapsed:.1f} s: too slow to exceed the rate"
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= flood - allowed - 1, (
        f"{allowed:.0f} INVITEs were allowed in {elapsed:.1f} s: {statuses}"
    )
    assert "503 Service Unavailable" in worker.log()
    await asyncio.sleep(1.5 / INVITE_RATE_PER_S)
    await assert_still_serving(worker)


async def test_an_invite_storm_beyond_the_call_cap_gets_486_and_leaves_every_slot_free(worker: Worker) -> None:
    async with SipCaller() as caller:
        calls = await asyncio.gather(*(caller.call(worker.uri) for _ in range(3 * BURST)))
    statuses = sorted(call.status for call in calls)
    assert set(statuses) <= {200, 486, 503}, statuses
    assert 1 <= statuses.count(200) <= 4 and 486 in statuses, statuses
    await asyncio.sleep(4 / INVITE_RATE_PER_S)  # the storm's answered INVITEs took up to 4 tokens
    await assert_still_serving(worker, calls=4)


# --- media ----------------------------------------------------------------------------------------


async def test_rtp_garbage_leaves_that_call_up_and_other_calls_audio_untouched(worker: Worker, stt: WhisperSTT) -> None:
    async with SipCaller() as caller:
        target_call, other = await asyncio.gather(caller.call(worker.uri), caller.call(worker.uri))
        assert target_call.answered and other.answered, (target_call.status, other.status)
        assert target_call.stream.remote is not None
        host, rtp_port = target_call.stream.remote
        await asyncio.sleep(0.5)
        spray_started = time.monotonic()
        sent = await spray_rtp_garbage([(host, rtp_port), (host, rtp_port + 1)], duration_s=2.5)
        spray_ended = time.monotonic()
        await asyncio.sleep(max(0.0, GREETING_S - (spray_ended - (other.answered_at or spray_started))))
        assert target_call.active, f"the call that got {sent} garbage datagrams was hung up"
        assert other.active, "the other call was hung up"
        target_result, other_result = target_call.result(), other.result()

    assert target_result.first_audio_after(spray_ended) is not None, "the sprayed call lost its bot audio"
    arrivals = np.asarray(other_result.rtp_arrivals)
    during = arrivals[(arrivals >= spray_started) & (arrivals <= spray_ended)]
    gaps_ms = np.diff(during) * 1000
    assert during.size >= 0.9 * (spray_ended - spray_started) / 0.02, f"{during.size} packets while sprayed"
    assert float(np.percentile(gaps_ms, 99)) <= 60.0, f"other call's RTP gap p99 {np.percentile(gaps_ms, 99):.0f} ms"
    heard = _transcript(stt, other_result.received_audio)
    assert "automated assistant" in heard, f"the other call's greeting was damaged: {heard!r}"
    await assert_still_serving(worker)


async def test_a_caller_who_sends_no_rtp_is_hung_up_after_the_rtp_timeout(worker: Worker) -> None:
    async with SipCaller(options=CallOptions(send_silence=False)) as caller:
        call = await caller.call(worker.uri)
        assert call.answered, f"{call.status} {call.reason}"
        ended = await call.wait_ended(RTP_TIMEOUT_S + 6)
        kinds = await _events_ended(worker, caller)
    assert ended and call.bye_from_remote, "the worker kept a call without RTP up"
    held_s = (call.ended_at or 0.0) - (call.answered_at or 0.0)
    assert RTP_TIMEOUT_S - 0.5 <= held_s <= RTP_TIMEOUT_S + 3, f"hung up after {held_s:.1f} s"
    assert f"no RTP for {RTP_TIMEOUT_S:.0f} s, hanging up" in worker.log()
    assert kinds and kinds[-1] == "CallEnded", kinds
    await assert_still_serving(worker)


async def test_a_caller_who_hangs_up_mid_reply_ends_the_call_cleanly(worker: Worker) -> None:
    async with SipCaller() as caller:
        call = await caller.call(worker.uri)
        assert call.answered, f"{call.status} {call.reason}"
        assert await call.wait_for_audio(call.answered_at or 0.0, FIRST_AUDIO_WAIT_S) is not None
        await asyncio.sleep(1.0)  # the disclosure is playing
        await call.hangup()
        assert call.errors == [], call.errors  # the BYE was answered
        kinds = await _events_ended(worker, caller)
        events = _events_of(worker, caller)
    assert kinds and kinds[-1] == "CallEnded", kinds
    assert events[-1]["outcome"] == "hangup-by-caller", events[-1]
    assert any(e["event"] == "BotSpeechEnded" and e["interrupted"] for e in events), kinds
    await assert_still_serving(worker)


# --- an agent nobody can reach --------------------------------------------------------------------


async def _wait_refer(call: Call, timeout_s: float) -> float | None:
    return time.monotonic() if await wait_until(lambda: call.refer_to is not None, timeout_s) else None


@pytest.mark.parametrize("follow_refer", [False, True], ids=["refer-declined", "agent-never-answers"])
async def test_an_unreachable_agent_ends_in_an_apology_then_a_bye(
    worker: Worker, stt: WhisperSTT, follow_refer: bool
) -> None:
    """The caller presses 0 for a person. Declined: the phone NOTIFYs 603. Never answers: the phone calls the
    agent's URI, where nothing listens, and reports nothing before the worker's deadline."""
    options = CallOptions(follow_refer=follow_refer)
    async with SipCaller(options=options) as caller:
        call = await caller.call(worker.uri)
        assert call.answered, f"{call.status} {call.reason}"
        await asyncio.sleep(1.0)
        await call.send_dtmf("0")
        refer_at = await _wait_refer(call, 20.0)
        assert refer_at is not None, f"no REFER after DTMF 0: {_events_of(worker, caller)}"
        ended = await call.wait_ended(BLIND_TRANSFER_DEADLINE_S + 15)
        received = list(call.stream.received)
    assert f":{UNREACHABLE_AGENT_PORT}" in (call.refer_to or ""), call.refer_to
    assert ended and call.bye_from_remote, "the call did not end after the failed transfer (an endless call)"
    after_refer = analyse_rtp([(at, packet) for at, packet in received if at >= refer_at])
    first_audio = after_refer.first_audio_after(refer_at)
    assert first_audio is not None, "dead air: nothing was said after the transfer failed"
    assert first_audio - refer_at <= BLIND_TRANSFER_DEADLINE_S + 2, f"{first_audio - refer_at:.1f} s of dead air"
    apology = _transcript(stt, after_refer.audio)
    assert "colleague" in apology and "call again" in apology, apology
    assert f"transfer to sip:agent@127.0.0.1:{UNREACHABLE_AGENT_PORT} failed" in worker.log()
    await assert_still_serving(worker)


# --- INVITEs answered but never ACKed ---------------------------------------------------------------
# Last in the module: a call slot leaked here would fail every later "four calls fit" check.


async def test_an_invite_with_a_60_kb_header_is_refused_and_holds_no_call_slot(worker: Worker) -> None:
    """Sent as an attacker would: the probe never ACKs a 2xx, so an answered INVITE stays half-open."""
    probe = await SipProbe().start()
    try:
        invite = probe.invite(TARGET, pcmu_offer(probe.host), headers=[("X-Padding", "a" * 60_000)])
        response = await probe.offer(invite, TARGET, wait_s=3.0)
    finally:
        probe.close()
    assert response is not None and response.status == 513, _status(response)
    answered = response.status < 400
    assert not answered, (
        f"an INVITE of {len(invite.encode())} bytes was answered {_status(response)}: "
        "oversized SIP must not get a call slot"
    )
    await assert_still_serving(worker, calls=4)


async def test_an_answered_invite_never_acked_is_ended_and_its_leaked_slot_gets_the_worker_restarted(
    worker: Worker,
) -> None:
    """The probe takes the 200 OK, never ACKs and sends no RTP. The worker ends the call once pjsip stopped
    waiting for the ACK, but pjsua 2.15 keeps that call slot for good. The worker notices when pjsua turns a
    caller away as busy with a slot free, stops taking calls and exits 75 so that `voicebot serve` starts a
    fresh one (test_serve covers restarts). Runs last: it ends this module's worker."""
    log_before = worker.log()
    probe = await SipProbe().start()
    try:
        response = await probe.offer(probe.invite(TARGET, pcmu_offer(probe.host)), TARGET)
        assert response is not None and response.status == 200, _status(response)
        ended = await wait_until(lambda: not calls_still_up(worker.log()), ACK_GIVE_UP_S + TIMER_PERIOD_S + 4)
        assert ended, "the call never ended"
        assert "no RTP for" in worker.log()[len(log_before) :]
    finally:
        probe.close()
    async with SipCaller() as caller:
        placed = await asyncio.gather(*(caller.call(worker.uri) for _ in range(4)))
        statuses = sorted(call.status for call in placed)
        for call in placed:
            if call.answered:
                await call.hangup()
    if statuses == [200, 200, 200, 200]:
        return  # no slot leaked this time
    assert statuses == [200, 200, 200, 486], statuses
    assert worker.process.wait(30) == EXIT_RESTART, worker.log()[-3000:]
    assert "leaked a call slot" in worker.log()
