"""SipCaller's SIP behaviour against a far end scripted by each test (real UDP sockets on loopback).

Retransmission checks use the real RFC 3261 timers (T1 = 500 ms), so a few tests take a second or two.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import cast

import pytest_asyncio

from telephony.sdp import build_sdp, parse_sdp
from telephony.sip_message import (
    SipRequest,
    SipResponse,
    header_param,
    new_branch,
    parse_message,
    request,
    response_to,
)
from telephony.uac import CallOptions, SipCaller

HOST = "127.0.0.1"
PORTS = itertools.count(15100, 2)  # SIP ports of these tests: 15100-15199
Address = tuple[str, int]


class Peer(asyncio.DatagramProtocol):
    """The far end: every SIP message it receives is queued for the test to read and answer."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[SipRequest | SipResponse, Address]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.inbox.put_nowait((parse_message(data), addr))

    async def next(self, timeout_s: float = 2.0) -> tuple[SipRequest | SipResponse, Address]:
        return await asyncio.wait_for(self.inbox.get(), timeout_s)

    async def next_request(self, method: str, timeout_s: float = 2.0) -> tuple[SipRequest, Address]:
        message, addr = await self.next(timeout_s)
        assert isinstance(message, SipRequest) and message.method == method, message
        return message, addr

    async def next_response(self, timeout_s: float = 2.0) -> SipResponse:
        message, _ = await self.next(timeout_s)
        assert isinstance(message, SipResponse), message
        return message

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await self.next(seconds)
        except TimeoutError:
            return True
        return False

    def send(self, message: SipRequest | SipResponse, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(message.encode(), addr)

    def uri(self, user: str = "bot") -> str:
        return f"sip:{user}@{HOST}:{self.port}"


async def open_peer() -> Peer:
    peer = Peer()
    peer.port = next(PORTS)
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: peer, local_addr=(HOST, peer.port))
    return peer


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Peer]:
    far_end = await open_peer()
    yield far_end
    assert far_end.transport is not None
    far_end.transport.close()


def answer(
    invite: SipRequest, peer: Peer, tag: str = "peer1", headers: list[tuple[str, str]] | None = None
) -> SipResponse:
    sdp = build_sdp(HOST, 16990, (0,), session_id=9, event_payload_type=101)
    extra = [("Contact", f"<{peer.uri()}>"), ("Content-Type", "application/sdp"), *(headers or [])]
    return response_to(invite, 200, "OK", to_tag=tag, headers=extra, body=sdp)


def in_dialog(method: str, ok: SipResponse, invite: SipRequest, cseq: int, body: bytes = b"",
              headers: list[tuple[str, str]] | None = None) -> SipRequest:
    """A request from the far end inside the dialog the 200 OK made (its From is our To)."""
    base = [
        ("Via", f"SIP/2.0/UDP {HOST}:1;branch={new_branch()}"),
        ("From", ok.header("To") or ""),
        ("To", invite.header("From") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", ok.header("Contact") or ""),
    ]
    our_contact = invite.header("Contact") or ""
    return request(method, our_contact.strip("<>"), base + (headers or []), body)


async def answered_call(caller: SipCaller, peer: Peer) -> tuple[SipRequest, SipResponse, Address]:
    placing = asyncio.get_running_loop().create_task(caller.call(peer.uri()))
    invite, addr = await peer.next_request("INVITE")
    ok = answer(invite, peer)
    peer.send(ok, addr)
    await peer.next_request("ACK")
    call = await placing
    assert call.status == 200 and call.codec == "pcmu"
    return invite, ok, addr


async def test_invite_is_retransmitted_until_a_provisional_then_acked_and_reacked(peer: Peer) -> None:
    async with SipCaller(sip_port=next(PORTS), rtp_ports=(16800, 16899)) as caller:
        placing = asyncio.get_running_loop().create_task(caller.call(peer.uri()))
        invite, addr = await peer.next_request("INVITE")
        again, _ = await peer.next_request("INVITE", timeout_s=0.8)
        assert again.branch == invite.branch and again.cseq == invite.cseq
        offer = parse_sdp(invite.body)
        assert offer.payload_types == (0, 8, 101) and offer.port % 2 == 0
        peer.send(response_to(invite, 100, "Trying"), addr)
        assert await peer.nothing_for(1.2)  # no retransmission once something answered
        ok = answer(invite, peer)
        peer.send(ok, addr)
        ack, _ = await peer.next_request("ACK")
        call = await placing
        assert ack.uri == peer.uri() and ack.branch != invite.branch
        assert ack.cseq == (invite.cseq[0], "ACK") and header_param(ack.header("To") or "", "tag") == "peer1"
        peer.send(ok, addr)  # our ACK was "lost": the 200 comes again
        reack, _ = await peer.next_request("ACK")
        assert reack.encode() == ack.encode()
        assert call.provisional == [100] and call.answered_at is not None
        hanging_up = asyncio.get_running_loop().create_task(call.hangup())
        bye, _ = await peer.next_request("BYE")
        assert bye.cseq[1] == "BYE" and bye.cseq[0] > invite.cseq[0]
        peer.send(response_to(bye, 200, "OK"), addr)
        await hanging_up
    assert call.result().errors == () and not call.result().bye_from_remote


async def test_final_failure_is_acked_on_the_invite_branch(peer: Peer) -> None:
    async with SipCaller(sip_port=next(PORTS)) as caller:
        placing = asyncio.get_running_loop().create_task(caller.call(peer.uri()))
        invite, addr = await peer.next_request("INVITE")
        peer.send(response_to(invite, 486, "Busy Here", to_tag="b1"), addr)
        ack, _ = await peer.next_request("ACK")
        call = await placing
    assert (ack.branch, ack.uri, ack.cseq) == (invite.branch, invite.uri, (invite.cseq[0], "ACK"))
    result = call.result()
    assert (result.status, result.reason, result.answered) == (486, "Busy Here", False)
    assert result.errors == () and call.ended.is_set()


async def test_no_response_gives_408_and_a_ringing_call_is_cancelled(peer: Peer) -> None:
    options = CallOptions(answer_timeout_s=0.3)
    async with SipCaller(sip_port=next(PORTS), options=options) as caller:
        silent = await caller.call(f"sip:nobody@{HOST}:{next(PORTS)}")
        assert (silent.status, silent.answered) == (408, False)
        placing = asyncio.get_running_loop().create_task(caller.call(peer.uri()))
        invite, addr = await peer.next_request("INVITE")
        peer.send(response_to(invite, 180, "Ringing", to_tag="r1"), addr)
        cancel, _ = await peer.next_request("CANCEL")
        assert (cancel.branch, cancel.cseq) == (invite.branch, (invite.cseq[0], "CANCEL"))
        peer.send(response_to(cancel, 200, "OK", to_tag="r1"), addr)
        peer.send(response_to(invite, 487, "Request Terminated", to_tag="r1"), addr)
        await peer.next_request("ACK")
        call = await placing
    assert (call.status, call.provisional) == (487, [180])


async def test_far_end_requests_in_the_dialog(peer: Peer) -> None:
    async with SipCaller(sip_port=next(PORTS)) as caller:
        invite, ok, addr = await answered_call(caller, peer)
        call = caller.calls[0]
        peer.send(in_dialog("OPTIONS", ok, invite, 1), addr)
        assert (await peer.next_response()).status == 200

        hold = build_sdp(HOST, 16992, (0,), session_id=9, version=2, direction="sendonly")
        reinvite = in_dialog("INVITE", ok, invite, 2, hold, [("Content-Type", "application/sdp")])
        peer.send(reinvite, addr)
        first = await peer.next_response()
        again = await peer.next_response(timeout_s=0.8)  # 2xx to an INVITE is retransmitted until the ACK
        assert first.status == again.status == 200 and first.body == again.body
        answer_sdp = parse_sdp(first.body)
        assert answer_sdp.direction == "recvonly" and answer_sdp.port == parse_sdp(invite.body).port
        assert call.stream.remote == (HOST, 16992)
        ack = in_dialog("ACK", ok, invite, 2)
        peer.send(ack, addr)
        assert await peer.nothing_for(1.2)

        peer.send(in_dialog("UPDATE", ok, invite, 3), addr)  # a session refresh without an offer
        update_ok = await peer.next_response()
        assert update_ok.status == 200 and parse_sdp(update_ok.body).direction == "sendrecv"

        refer = in_dialog("REFER", ok, invite, 4, headers=[("Refer-To", "<sip:agent@127.0.0.1:15999>")])
        peer.send(refer, addr)
        assert (await peer.next_response()).status == 202
        notify, _ = await peer.next_request("NOTIFY")
        assert notify.body.startswith(b"SIP/2.0 603") and notify.header("Event") == "refer"
        assert (notify.header("Subscription-State") or "").startswith("terminated")
        peer.send(response_to(notify, 200, "OK"), addr)

        bye = in_dialog("BYE", ok, invite, 5)
        peer.send(bye, addr)
        assert (await peer.next_response()).status == 200
        peer.send(bye, addr)  # retransmitted BYE: the same 200 again
        assert (await peer.next_response()).status == 200
        assert await call.wait_ended(1.0)
    result = call.result()
    assert result.bye_from_remote and result.refer_to == "<sip:agent@127.0.0.1:15999>" and result.errors == ()


async def test_requests_outside_a_dialog(peer: Peer) -> None:
    async with SipCaller(sip_port=next(PORTS)) as caller:
        target = caller.sip_address
        base = [("Via", f"SIP/2.0/UDP {HOST}:{peer.port};branch={new_branch()}"), ("From", "<sip:x@h>;tag=1"),
                ("To", "<sip:uac@h>"), ("Call-ID", "unknown@h")]
        peer.send(request("OPTIONS", "sip:uac@h", [*base, ("CSeq", "1 OPTIONS")]), target)
        assert (await peer.next_response()).status == 200
        peer.send(request("BYE", "sip:uac@h", [*base, ("CSeq", "2 BYE")]), target)
        assert (await peer.next_response()).status == 481
        assert caller.calls == []


async def test_followed_refer_invites_the_target_with_replaces_and_notifies_the_outcome(peer: Peer) -> None:
    agent = await open_peer()
    replaces = "abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2"
    async with SipCaller(sip_port=next(PORTS), options=CallOptions(follow_refer=True)) as caller:
        invite, ok, addr = await answered_call(caller, peer)
        refer_to = f"<{agent.uri('agent')}?Replaces={replaces}>"
        peer.send(in_dialog("REFER", ok, invite, 1, headers=[("Refer-To", refer_to)]), addr)
        assert (await peer.next_response()).status == 202
        trying, _ = await peer.next_request("NOTIFY")
        assert trying.body.startswith(b"SIP/2.0 100")
        peer.send(response_to(trying, 200, "OK"), addr)
        agent_invite, agent_addr = await agent.next_request("INVITE")
        assert agent_invite.uri == agent.uri("agent") and agent_invite.header("Replaces") == "abc@h;to-tag=1;from-tag=2"
        agent.send(answer(agent_invite, agent, tag="agent1"), agent_addr)
        await agent.next_request("ACK")
        done, _ = await peer.next_request("NOTIFY")
        assert done.body.startswith(b"SIP/2.0 200") and "terminated" in (done.header("Subscription-State") or "")
        peer.send(response_to(done, 200, "OK"), addr)
        call = caller.calls[0]
        assert call.transfer is not None and call.transfer.answered
        hanging_up = asyncio.get_running_loop().create_task(call.hangup())  # both legs get a BYE
        agent_bye, _ = await agent.next_request("BYE")
        agent.send(response_to(agent_bye, 200, "OK"), agent_addr)
        bye, _ = await peer.next_request("BYE")
        peer.send(response_to(bye, 200, "OK"), addr)
        await hanging_up
    result = call.result()
    assert result.transfer is not None and result.transfer.status == 200
    assert agent.transport is not None
    agent.transport.close()
