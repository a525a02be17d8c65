"""A SIP caller for tests and the bench: asyncio, UDP, G.711, no pjsua2 and so no 4-call limit.

    python -m telephony.uac --target sip:bot@127.0.0.1:5060 --calls 12 --audio caller.wav --hold-s 20

One SipCaller owns a SIP socket and places any number of concurrent calls, each with its own RTP socket;
all its RTP streams are paced by one 20 ms media clock. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from telephony.rtp_stream import MediaClock, RtcpSink, RtpStream
from telephony.sip_dialog import ALLOW, Dialog
from telephony.sip_endpoint import Address, SipEndpoint
from telephony.sip_message import SipParseError, SipRequest, new_call_id, new_tag, parse_uri, response_to
from telephony.uac_call import Call
from telephony.uac_result import CallResult, RtpReception
from telephony.uac_types import CallContext, CallEndedError, CallOptions
from voicebot.audio import AudioChunk, AudioFileError, read_wav, write_wav

__all__ = ["Call", "CallEndedError", "CallOptions", "CallResult", "SipCaller", "main", "place_call", "run_load"]


class SipCaller:
    def __init__(
        self,
        *,
        local_host: str = "127.0.0.1",
        sip_port: int = 0,
        rtp_ports: tuple[int, int] | None = None,
        user: str = "uac",
        options: CallOptions | None = None,
    ) -> None:
        """`sip_port` 0 picks a free port; `rtp_ports` (first, last) binds even RTP ports with RTCP on the next
        one, None lets the system pick each RTP port."""
        self.local_host = local_host
        self.sip_port = sip_port
        self.rtp_ports = rtp_ports
        self.user = user
        self.options = options or CallOptions()
        self.calls: list[Call] = []
        self._active: dict[str, Call] = {}
        self._endpoint: SipEndpoint | None = None
        self._clock = MediaClock()
        self._next_rtp_port = rtp_ports[0] + rtp_ports[0] % 2 if rtp_ports else 0
        self._rtcp: dict[str, asyncio.DatagramTransport] = {}
        self._addresses: dict[tuple[str, int], Address] = {}

    async def start(self) -> SipCaller:
        self._endpoint = await SipEndpoint.open(self.local_host, self.sip_port, self._on_request)
        return self

    async def close(self) -> None:
        """Hangs up the calls still up, then closes the SIP socket."""
        await asyncio.gather(*(call.hangup() for call in list(self._active.values())))
        for call in self.calls:
            call.stream.stop()
            call.cancel_tasks()
        if self._endpoint is not None:
            self._endpoint.close()

    async def __aenter__(self) -> SipCaller:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def sip_address(self) -> Address:
        return self._require_endpoint().local_address

    async def call(self, target: str, headers: list[tuple[str, str]] | None = None) -> Call:
        """INVITEs `target` (sip:user@host[:port]); returns once the final response came (see Call.status)."""
        endpoint = self._require_endpoint()
        uri = parse_uri(target)
        destination = await self._resolve(uri.address)
        stream, rtcp = await self._open_rtp()
        host, port = self.local_host, endpoint.local_address[1]
        dialog = Dialog(
            call_id=new_call_id(host),
            local_uri=f"sip:{self.user}@{host}:{port}",  # the port tells this caller's calls apart
            local_tag=new_tag(),
            remote_uri=uri.without_headers(),
            contact=f"sip:{self.user}@{host}:{port}",
            via_sent_by=f"{host}:{port}",
        )
        context = CallContext(endpoint, self._clock, self.local_host, self.options, self._place_transfer, self._ended)
        call = Call(context, dialog, uri.without_headers(), destination, stream, headers)
        self.calls.append(call)
        self._active[dialog.call_id] = call
        if rtcp is not None:
            self._rtcp[dialog.call_id] = rtcp
        await call.start()
        return call

    async def _place_transfer(self, target: str, headers: list[tuple[str, str]]) -> Call:
        return await self.call(target, headers)

    def _ended(self, call: Call) -> None:
        self._active.pop(call.call_id, None)
        rtcp = self._rtcp.pop(call.call_id, None)
        if rtcp is not None:
            rtcp.close()

    def _on_request(self, req: SipRequest, addr: Address) -> None:
        call = self._active.get(req.call_id)
        if call is not None:
            call.handle_request(req, addr)
            return
        endpoint = self._require_endpoint()
        if req.method == "OPTIONS":
            headers = [("Allow", ALLOW), ("Accept", "application/sdp")]
            endpoint.respond(req, response_to(req, 200, "OK", to_tag=new_tag(), headers=headers), addr)
        elif req.method == "INVITE":
            endpoint.respond(req, response_to(req, 603, "Decline", to_tag=new_tag()), addr)
        elif req.method != "ACK":
            endpoint.respond(req, response_to(req, 481, "Call/Transaction Does Not Exist", to_tag=new_tag()), addr)

    async def _open_rtp(self) -> tuple[RtpStream, asyncio.DatagramTransport | None]:
        loop = asyncio.get_running_loop()
        stream = RtpStream(ssrc=secrets.randbits(32), send_silence=self.options.send_silence)
        if self.rtp_ports is None:
            stream.bind(self.local_host, 0)
            return stream, None
        first, last = self.rtp_ports
        for _ in range(max(1, (last - first + 1) // 2)):
            port = self._next_rtp_port
            self._next_rtp_port = port + 2 if port + 3 <= last else first + first % 2
            try:
                rtcp, _ = await loop.create_datagram_endpoint(RtcpSink, local_addr=(self.local_host, port + 1))
            except OSError:
                continue
            try:
                stream.bind(self.local_host, port)
            except OSError:
                rtcp.close()
                continue
            return stream, rtcp
        raise OSError(f"no free RTP port pair in {first}-{last}")

    async def _resolve(self, address: tuple[str, int]) -> Address:
        if address not in self._addresses:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(*address, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            if not infos:
                raise OSError(f"cannot resolve {address[0]}")
            host, port = infos[0][4][:2]
            self._addresses[address] = (str(host), int(port))
        return self._addresses[address]

    def _require_endpoint(self) -> SipEndpoint:
        if self._endpoint is None:
            raise RuntimeError("SipCaller not started: use `async with SipCaller(...)` or `await caller.start()`")
        return self._endpoint


async def place_call(
    target: str,
    *,
    audio: AudioChunk | None = None,
    dtmf: str = "",
    hold_s: float = 10.0,
    audio_delay_s: float = 0.0,
    caller: SipCaller | None = None,
    options: CallOptions | None = None,
) -> CallResult:
    """One call: after the answer wait `audio_delay_s`, play `audio`, send `dtmf` (RFC 4733), and hang up
    `hold_s` after the answer unless the far end hung up first (a followed transfer's leg counts as the call)."""
    if caller is None:
        async with SipCaller(options=options) as own:
            return await place_call(target, audio=audio, dtmf=dtmf, hold_s=hold_s, audio_delay_s=audio_delay_s,
                                    caller=own)
    call = await caller.call(target)
    if call.answered:
        await converse(call, audio=audio, dtmf=dtmf, hold_s=hold_s, audio_delay_s=audio_delay_s)
    return call.result()


async def converse(call: Call, *, audio: AudioChunk | None, dtmf: str, hold_s: float, audio_delay_s: float) -> None:
    deadline = (call.answered_at or time.monotonic()) + hold_s
    script = asyncio.get_running_loop().create_task(_speak(call, audio, dtmf, audio_delay_s))
    leg = call
    while await leg.wait_ended(max(0.0, deadline - time.monotonic())):
        if leg.transfer is None or not leg.transfer.active:
            break
        leg = leg.transfer
    script.cancel()
    await asyncio.gather(script, return_exceptions=True)
    await call.hangup()


async def _speak(call: Call, audio: AudioChunk | None, dtmf: str, delay_s: float) -> None:
    try:
        await asyncio.sleep(delay_s)
        if audio is not None:
            await call.play(audio)
        if dtmf:
            await call.send_dtmf(dtmf)
    except CallEndedError:
        pass  # the far end hung up first: nothing more to say


async def run_load(
    target: str,
    n_calls: int,
    audio: AudioChunk | None = None,
    *,
    hold_s: float = 20.0,
    ramp_s: float = 0.0,
    dtmf: str = "",
    audio_delay_s: float = 0.0,
    caller: SipCaller | None = None,
    options: CallOptions | None = None,
) -> list[CallResult]:
    """`n_calls` concurrent calls (started `ramp_s` apart) through one SipCaller, as place_call does each."""
    if caller is None:
        async with SipCaller(options=options) as own:
            return await run_load(target, n_calls, audio, hold_s=hold_s, ramp_s=ramp_s, dtmf=dtmf,
                                  audio_delay_s=audio_delay_s, caller=own)
    line_audio = audio.to_mono().resample(8000) if audio is not None else None  # once, not per call

    async def one(index: int) -> CallResult:
        await asyncio.sleep(index * ramp_s)
        try:
            return await place_call(target, audio=line_audio, dtmf=dtmf, hold_s=hold_s, audio_delay_s=audio_delay_s,
                                    caller=caller)
        except OSError as exc:
            return not_placed(target, f"call {index + 1} not placed: {exc}")

    return list(await asyncio.gather(*(one(i) for i in range(n_calls))))


def not_placed(target: str, error: str) -> CallResult:
    empty = RtpReception((), (), AudioChunk(b"", 8000))
    return CallResult("", target, 0, "not placed", time.monotonic(), None, None, None, empty, errors=(error,))


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        parse_uri(args.target)
        audio = read_wav(args.audio) if args.audio else None
        rtp_ports = _port_range(args.rtp_ports)
        options = CallOptions(codecs=_codecs(args.codecs), follow_refer=args.follow_refer)
    except (AudioFileError, SipParseError, ValueError) as exc:
        print(f"uac: error: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(_run_cli(args, audio, rtp_ports, options))
    print_results(results)
    if args.save_dir:
        for index, result in enumerate(results, start=1):
            write_wav(Path(args.save_dir) / f"call-{index:03d}.wav", result.received_audio)
    return 0 if any(result.answered for result in results) else 1


async def _run_cli(
    args: argparse.Namespace, audio: AudioChunk | None, rtp_ports: tuple[int, int], options: CallOptions
) -> list[CallResult]:
    async with SipCaller(local_host=args.local_host, sip_port=args.sip_port, rtp_ports=rtp_ports, options=options) as c:
        return await run_load(args.target, args.calls, audio, hold_s=args.hold_s, ramp_s=args.ramp_s, dtmf=args.dtmf,
                              audio_delay_s=args.audio_delay_s, caller=c)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m telephony.uac",
        description="SIP/G.711 test caller and load generator (UDP, no pjsua2 call limit)",
        epilog="Columns: rtp_ms = first RTP after the 200 OK; audio_ms = first non-silent RTP (>= -40 dBFS) after "
        "the INVITE; rx_pkts = G.711 packets received; gap_p99 = 99th percentile of their inter-arrival gaps (ms); "
        "bye = who hung up.",
    )
    parser.add_argument("--target", required=True, help="SIP URI to call, e.g. sip:bot@127.0.0.1:5060")
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
    parser.add_argument("--audio", help="WAV file each caller plays after the answer (any rate)")
    parser.add_argument("--hold-s", type=float, default=10.0, help="hang up this long after the answer")
    parser.add_argument("--audio-delay-s", type=float, default=0.0, help="wait this long after the answer to play")
    parser.add_argument("--ramp-s", type=float, default=0.0, help="delay between call starts")
    parser.add_argument("--dtmf", default="", help="keys sent (RFC 4733) after the audio")
    parser.add_argument("--codecs", default="pcmu,pcma", help="offered codecs in order (default pcmu,pcma)")
    parser.add_argument("--follow-refer", action="store_true", help="call the Refer-To target of a transfer")
    parser.add_argument("--local-host", default="127.0.0.1", help="address to bind and advertise")
    parser.add_argument("--sip-port", type=int, default=0, help="local SIP port (default: any free one)")
    parser.add_argument("--rtp-ports", default="16000-17999", help="local RTP port range FIRST-LAST")
    parser.add_argument("--save-dir", help="write each call's received audio as call-NNN.wav here")
    return parser


def _port_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit()) or not 0 < int(first) < int(last) < 65536:
        raise ValueError(f"bad --rtp-ports {text!r}: expected FIRST-LAST, e.g. 16000-17999")
    return int(first), int(last)


def _codecs(text: str) -> tuple[str, ...]:
    codecs = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in codecs if name not in ("pcmu", "pcma")]
    if unknown or not codecs:
        raise ValueError(f"bad --codecs {text!r}: use pcmu and/or pcma, e.g. pcmu,pcma")
    return codecs


def print_results(results: Sequence[CallResult]) -> None:
    print(f"{'call':>4}  {'status':>6}  {'reason':<24} {'rtp_ms':>7} {'audio_ms':>8} {'rx_pkts':>7} {'gap_p99':>7}"
          f"  {'bye':<6} {'refer_to':<24} errors")
    for index, result in enumerate(results, start=1):
        first_audio = result.first_audio_after(result.invite_sent_at)
        gap = result.gap_percentile_ms(99)
        print(
            f"{index:>4}  {result.status:>6}  {result.reason[:24]:<24} {_ms(result.first_rtp_after_answer_ms):>7}"
            f" {_ms(None if first_audio is None else (first_audio - result.invite_sent_at) * 1000):>8}"
            f" {len(result.rtp_arrivals):>7} {_ms(gap):>7}  {_bye_side(result):<6} {(result.refer_to or '-')[:24]:<24}"
            f" {'; '.join(result.errors) or '-'}"
        )
    answered = sum(result.answered for result in results)
    skipped = sum(result.slots_skipped for result in results)
    print(f"answered {answered}/{len(results)}; 20 ms slots this generator sent late (skipped): {skipped}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _bye_side(result: CallResult) -> str:
    if not result.answered:
        return "-"
    return "remote" if result.bye_from_remote else "us"


if __name__ == "__main__":
    sys.exit(main())
