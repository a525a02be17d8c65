"""Kamailio as the front door over fake SIP workers (tests/support/fake_uas.py), all on loopback.

127.0.0.2 is the source outside the allow-list (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from telephony.kamailio import (
    FrontDoorConfig,
    KamailioProcess,
    SipAddress,
    answers_sip,
    check_config,
    find_kamailio,
    render_config,
    start_front_door,
)
from telephony.sip_message import SipResponse, name_addr_uri, new_call_id, new_tag, parse_message, request
from tests.support.fake_uas import CallAttempt, FakeUas, SipCaller, sdp_offer, wait_until
from voicebot.ports import ConfigError
from voicebot.sip_settings import SipSettings

FRONT = SipAddress("127.0.0.1", 25060)
TARGET = (FRONT.host, FRONT.port)
WORKER_PORTS = (25071, 25072, 25073)
ALLOWED = ("127.0.0.1/32", "127.0.0.3/32")
WORKER_TIMEOUT_MS = 2000


@pytest_asyncio.fixture(scope="module")
async def workers() -> AsyncIterator[list[FakeUas]]:
    uas = [FakeUas("127.0.0.1") for _ in WORKER_PORTS]
    for worker, port in zip(uas, WORKER_PORTS, strict=True):
        await worker.start(port)
    yield uas
    for worker in uas:
        worker.close()


def _config(front: SipAddress, workers: list[FakeUas], **options: Any) -> FrontDoorConfig:
    addresses = tuple(SipAddress(w.host, w.port) for w in workers)
    return FrontDoorConfig(front, addresses, worker_timeout_ms=WORKER_TIMEOUT_MS, **options)


@pytest_asyncio.fixture(scope="module")
async def front_door(
    workers: list[FakeUas], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KamailioProcess]:
    config = _config(FRONT, workers, allow=ALLOWED, invite_rate_per_s=100.0)
    kamailio = KamailioProcess(config, tmp_path_factory.mktemp("kamailio"))
    await asyncio.to_thread(kamailio.start)
    yield kamailio
    assert kamailio.stop() == 0


@pytest_asyncio.fixture
async def healthy(workers: list[FakeUas], front_door: KamailioProcess) -> list[FakeUas]:
    """All workers answering, each pinged since (so Kamailio holds every one active again)."""
    for worker in workers:
        worker.reset()
    assert await wait_until(lambda: all(w.requests("OPTIONS") for w in workers), 5.0)
    await asyncio.sleep(0.2)  # the ping's 200 reaches Kamailio
    for worker in workers:
        worker.received.clear()
    return workers


@pytest_asyncio.fixture
async def caller() -> AsyncIterator[SipCaller]:
    endpoint = SipCaller("127.0.0.1")
    await endpoint.start()
    yield endpoint
    endpoint.close()


def answered_by(workers: list[FakeUas], attempt: CallAttempt) -> int | None:
    return next((i for i, w in enumerate(workers) if attempt.invite.call_id in w.answered), None)


def invited(worker: FakeUas) -> set[str]:
    return {invite.call_id for invite in worker.invites}


async def hang_up(caller: SipCaller, attempts: list[CallAttempt]) -> None:
    for attempt in attempts:
        if attempt.dialog is not None:
            await caller.bye(attempt.dialog)


# --- dispatching and failover ------------------------------------------------------------------------------------


async def test_calls_are_spread_round_robin_over_the_workers(healthy: list[FakeUas], caller: SipCaller) -> None:
    attempts = [await caller.call(TARGET) for _ in range(6)]
    assert [a.status for a in attempts] == [200] * 6
    assert [len(w.answered) for w in healthy] == [2, 2, 2]
    await hang_up(caller, attempts)


async def test_a_busy_worker_fails_over_to_the_next(healthy: list[FakeUas], caller: SipCaller) -> None:
    healthy[0].capacity = 0
    attempts = [await caller.call(TARGET) for _ in range(3)]
    assert [a.status for a in attempts] == [200] * 3
    assert invited(healthy[0]), "round robin never offered a call to the busy worker"
    assert healthy[0].answered == []
    for call_id in invited(healthy[0]):
        assert any(call_id in w.answered for w in healthy[1:])
    await hang_up(caller, attempts)


async def test_all_workers_busy_gets_503(healthy: list[FakeUas], caller: SipCaller) -> None:
    for worker in healthy:
        worker.capacity = 0
    attempt = await caller.call(TARGET)
    assert attempt.final is not None
    assert (attempt.status, attempt.final.reason) == (503, "All Agents Busy")
    assert attempt.final.header("Retry-After") == "5"
    assert all(invited(w) == {attempt.invite.call_id} for w in healthy)


async def test_a_dead_worker_is_skipped_once_its_ping_fails(healthy: list[FakeUas], caller: SipCaller) -> None:
    dead = healthy[1]
    dead.mode = "mute"
    assert await wait_until(lambda: bool(dead.requests("OPTIONS")), 3.0)
    await asyncio.sleep(WORKER_TIMEOUT_MS / 1000 + 1.0)  # that ping times out: the worker is marked inactive
    attempts = [await caller.call(TARGET) for _ in range(4)]
    assert [a.status for a in attempts] == [200] * 4
    assert dead.invites == []
    assert {answered_by(healthy, a) for a in attempts} == {0, 2}
    await hang_up(caller, attempts)


async def test_a_worker_that_does_not_answer_a_call_fails_over(healthy: list[FakeUas], caller: SipCaller) -> None:
    wedged = healthy[2]
    wedged.mode = "ignore_invites"  # still answers pings
    attempts: list[CallAttempt] = []
    while not wedged.invites and len(attempts) < 3:
        attempts.append(await caller.call(TARGET))
    assert [a.status for a in attempts] == [200] * len(attempts)
    (lost,) = invited(wedged)
    assert any(lost in w.answered for w in healthy[:2])
    await hang_up(caller, attempts)


# --- protection --------------------------------------------------------------------------------------------------


async def test_a_source_outside_the_allow_list_gets_403(healthy: list[FakeUas]) -> None:
    outsider = SipCaller("127.0.0.2")
    await outsider.start()
    try:
        attempt = await outsider.call(TARGET)
    finally:
        outsider.close()
    assert attempt.final is not None
    assert (attempt.status, attempt.final.reason) == (403, "Forbidden")
    assert all(w.invites == [] for w in healthy)


async def test_malformed_sip_is_dropped_and_kamailio_keeps_serving(
    healthy: list[FakeUas], caller: SipCaller, front_door: KamailioProcess
) -> None:
    invite = caller.invite_request(TARGET).encode()
    malformed = [
        b"\x00\xff not sip at all" * 10,
        b"A" * 65000,
        invite.replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"),
        invite.replace(b"Call-ID:", b"X-Call-ID:"),
        invite.replace(b"Content-Length: 109", b"Content-Length: 5000"),
        invite.replace(b"\r\nFrom:", b"\r\nFrom: <bad>>;tag=;;\r\nX-From:"),
        invite.replace(b"SIP/2.0/UDP", b"SIP/2.0/XYZ", 1),
        invite.replace(b"\r\n\r\n", b"\r\nX-Padding: " + b"y" * 60000 + b"\r\n\r\n", 1),
        b"INVITE sip:hotline@127.0.0.1 SIP/2.0\r\n\r\n",
    ]
    for datagram in malformed:
        caller.send(datagram, TARGET)
    await asyncio.sleep(0.5)
    assert all(w.invites == [] for w in healthy)
    assert front_door.alive
    attempt = await caller.call(TARGET)
    assert attempt.status == 200
    await hang_up(caller, [attempt])


# --- in-dialog routing -------------------------------------------------------------------------------------------


async def test_ack_and_bye_from_either_side_pass_through_kamailio(healthy: list[FakeUas], caller: SipCaller) -> None:
    first, second = await caller.call(TARGET), await caller.call(TARGET)
    assert first.dialog is not None and second.dialog is not None
    assert first.dialog.route_set == [f"<sip:{FRONT.hostport};lr=on>"]

    response = await caller.bye(first.dialog)
    assert response is not None and response.status == 200
    worker = healthy[answered_by(healthy, first) or 0]
    in_dialog = [(r.request.method, r.source) for r in worker.received if r.request.call_id == first.invite.call_id]
    assert in_dialog == [("INVITE", TARGET), ("ACK", TARGET), ("BYE", TARGET)]

    other = healthy[answered_by(healthy, second) or 0]
    response = await other.bye(other.calls[second.invite.call_id].dialog)
    assert response is not None and response.status == 200
    (received,) = [r for r in caller.received if r.request.method == "BYE"]
    assert received.source == TARGET and received.request.call_id == second.invite.call_id


async def test_a_call_over_tcp_reaches_a_udp_worker_and_hangs_up(healthy: list[FakeUas]) -> None:
    reader, writer = await asyncio.open_connection(FRONT.host, FRONT.port)
    host, port = writer.get_extra_info("sockname")[:2]
    dialog = [("From", f"<sip:caller@{host}>;tag={new_tag()}"), ("Call-ID", new_call_id(host))]
    invite_headers = [*dialog, ("To", f"<sip:hotline@{FRONT.hostport}>"), ("CSeq", "1 INVITE")]
    invite_headers += [("Contact", f"<sip:caller@{host}:{port};transport=tcp>"), ("Content-Type", "application/sdp")]
    writer.write(_over_tcp("INVITE", f"sip:hotline@{FRONT.hostport};transport=tcp", host, port, invite_headers))
    ok = await _final_over_tcp(reader)
    assert ok.status == 200
    call_id = dialog[1][1]
    (worker,) = [w for w in healthy if call_id in w.answered]
    route_set = list(reversed(ok.header_values("Record-Route")))
    assert len(route_set) == 2  # Kamailio's TCP side, then its UDP side towards the worker
    bye_headers = [*(("Route", r) for r in route_set), *dialog, ("To", ok.header("To") or ""), ("CSeq", "2 BYE")]
    writer.write(_over_tcp("BYE", name_addr_uri(ok.header("Contact") or ""), host, port, bye_headers))
    assert (await _final_over_tcp(reader)).status == 200
    assert any(r.request.method == "BYE" and r.request.call_id == call_id for r in worker.received)
    writer.close()


def _over_tcp(method: str, uri: str, host: str, port: int, headers: list[tuple[str, str]]) -> bytes:
    via = ("Via", f"SIP/2.0/TCP {host}:{port};branch=z9hG4bK{new_tag()}")
    body = sdp_offer(host, 5000) if method == "INVITE" else b""
    return request(method, uri, [via, ("Max-Forwards", "70"), *headers], body).encode()


async def _final_over_tcp(reader: asyncio.StreamReader) -> SipResponse:
    while True:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        length = int(parse_message(head).header("Content-Length") or 0)
        message = parse_message(head + await reader.readexactly(length))
        if isinstance(message, SipResponse) and message.status >= 200:
            return message


# --- a second front door with tight limits --------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def limited(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[SipAddress, list[FakeUas]]]:
    workers = [FakeUas("127.0.0.1", capacity=50) for _ in range(2)]
    for worker, port in zip(workers, (25171, 25172), strict=True):
        await worker.start(port)
    front = SipAddress("127.0.0.1", 25160)
    config = _config(front, workers, allow=("127.0.0.0/29",), invite_rate_per_s=3.0, flood_requests_per_s=20)
    kamailio = KamailioProcess(config, tmp_path_factory.mktemp("kamailio-limited"))
    await asyncio.to_thread(kamailio.start)
    yield front, workers
    assert kamailio.stop() == 0
    for worker in workers:
        worker.close()


async def test_invites_over_the_rate_of_a_source_get_503(limited: tuple[SipAddress, list[FakeUas]]) -> None:
    front, _ = limited
    target = (front.host, front.port)
    burst, other = SipCaller("127.0.0.3"), SipCaller("127.0.0.4")
    await burst.start()
    await other.start()
    attempts = await asyncio.gather(*(burst.call(target) for _ in range(8)))
    statuses = sorted(a.status for a in attempts)
    # 3 per one-second window: 8 INVITEs sent at once fall in one window, or two at a second boundary
    assert statuses.count(200) <= 6 and statuses.count(503) >= 2 and set(statuses) == {200, 503}
    assert {a.final.reason for a in attempts if a.final and a.status == 503} == {"Rate Limited"}
    assert (await other.call(target)).status == 200, "the limit is per source"
    burst.close()
    other.close()


async def test_a_request_flood_from_one_source_is_dropped(limited: tuple[SipAddress, list[FakeUas]]) -> None:
    front, _ = limited
    target = (front.host, front.port)
    flooder, bystander = SipCaller("127.0.0.5"), SipCaller("127.0.0.4")
    await flooder.start()
    await bystander.start()
    pending = []
    for _ in range(30):  # 600 OPTIONS in about a second, 20 at a time so that no socket buffer overflows
        pending += [asyncio.create_task(flooder.options(target, wait_s=2.0)) for _ in range(20)]
        await asyncio.sleep(0.03)
    answered = sum(reply is not None for reply in await asyncio.gather(*pending))
    assert 0 < answered < 300
    assert await bystander.options(target) is not None
    flooder.close()
    bystander.close()


async def test_start_front_door_from_the_sip_settings(tmp_path: Path) -> None:
    worker = FakeUas("127.0.0.1")
    await worker.start(25471)
    sip = SipSettings(host="127.0.0.1", port=25460, allow=("127.0.0.1/32",))
    kamailio = await asyncio.to_thread(start_front_door, sip, [(worker.host, worker.port)], tmp_path)
    caller = SipCaller("127.0.0.1")
    await caller.start()
    try:
        assert kamailio.alive and (tmp_path / "kamailio" / "kamailio.cfg").is_file()
        attempt = await caller.call(("127.0.0.1", 25460))
        assert attempt.status == 200 and worker.answered == [attempt.invite.call_id]
    finally:
        caller.close()
        worker.close()
        assert kamailio.stop() == 0
    assert not kamailio.alive and not answers_sip(SipAddress("127.0.0.1", 25460))


# --- config check and start errors -----------------------------------------------------------------------------------


def test_rendered_variants_pass_kamailio_check(tmp_path: Path) -> None:
    workers = (SipAddress("127.0.0.1", 25271), SipAddress("127.0.0.1", 25272))
    variants = [
        FrontDoorConfig(SipAddress("127.0.0.1", 25260), workers, ("0.0.0.0/0", "::/0")),
        FrontDoorConfig(SipAddress("127.0.0.1", 25260), workers, ("10.1.2.3",), tcp=False, invite_rate_per_s=0.2),
        FrontDoorConfig(SipAddress("::1", 25260), (SipAddress("::1", 25271),), ("::1/128",)),
        FrontDoorConfig(SipAddress("127.0.0.1", 25260), workers, ("127.0.0.1",), advertise_host="203.0.113.7"),
    ]
    for i, config in enumerate(variants):
        cfg_text, list_text = render_config(config, tmp_path / f"{i}.list")
        (tmp_path / f"{i}.list").write_text(list_text)
        (tmp_path / f"{i}.cfg").write_text(cfg_text)
        check_config(find_kamailio(), tmp_path / f"{i}.cfg")


def test_an_invalid_config_is_reported_with_kamailios_message(tmp_path: Path) -> None:
    config = FrontDoorConfig(FRONT, (SipAddress("127.0.0.1", 25271),), ALLOWED)
    cfg_text, _ = render_config(config, tmp_path / "dispatcher.list")
    broken = tmp_path / "kamailio.cfg"
    broken.write_text(cfg_text.replace("route(DISPATCH);", "route(DISPATCH)"))
    with pytest.raises(ConfigError, match=r"kamailio rejected .*kamailio\.cfg: .*parse error in config file"):
        check_config(find_kamailio(), broken)


def test_a_taken_port_is_reported_with_the_address(tmp_path: Path) -> None:
    front = SipAddress("127.0.0.1", 25360)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((front.host, front.port))
        kamailio = KamailioProcess(FrontDoorConfig(front, (SipAddress("127.0.0.1", 25371),), ALLOWED), tmp_path)
        with pytest.raises(ConfigError, match=r"127\.0\.0\.1:25360: .*Address already in use"):
            kamailio.start()
    assert not kamailio.alive
