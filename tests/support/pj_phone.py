"""A pjsua2 phone for end-to-end tests, run as its own process (pjsua2 allows one library per process).

    call URI --play WAV --play-at S --record OUT --dtmf "S:DIGITS,..." --hangup-at S
    answer --record OUT [--play WAV]          (a test "agent": answers, records what it hears)

It prints one JSON object per line on stdout (state changes, DTMF, transfers). A REFER from the bot is
followed (the new call plays the same WAV and records to OUT with a .transferred suffix).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import pjsua2 as pj

STATES = {
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic(), 3), **fields}), flush=True)


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[PhoneCall] = []
        self.players: list[Any] = []
        self.recorders: list[Any] = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.logConfig.level = 1
        config.logConfig.consoleLevel = 1
        config.medConfig.clockRate = 16000
        config.medConfig.sndClockRate = 16000
        self.ep.libInit(config)
        self.ep.audDevManager().setNullDev()
        transport = pj.TransportConfig()
        transport.port = args.port
        transport.boundAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.ep.libStart()
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, 0)
        self.ep.codecSetPriority("PCMU/8000", 255)
        self.account = PhoneAccount(self)
        account = pj.AccountConfig()
        account.idUri = f"sip:{args.name}@127.0.0.1:{args.port}"
        account.mediaConfig.transportConfig.port = args.rtp_port
        account.mediaConfig.transportConfig.portRange = 100
        self.account.create(account)

    def new_call(self, call_id: int = pj.PJSUA_INVALID_ID) -> PhoneCall:
        call = PhoneCall(self, call_id)
        self.calls.append(call)
        return call

    def media_up(self, call: PhoneCall, media: Any) -> None:
        leg = self.calls.index(call)
        if self.args.record:
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(
                self.args.record if leg == 0 else self.args.record.replace(".wav", f".leg{leg}.wav")
            )
            media.startTransmit(recorder)
            self.recorders.append(recorder)
        call.play_file = self.args.play if leg == 0 else self.args.transfer_play
        call.media = media
        # A phone sends RTP all the time; pjmedia sends (and so sends DTMF) only while something feeds the call.
        self.ep.audDevManager().getCaptureDevMedia().startTransmit(media)
        if call.play_file:
            call.play_due = time.monotonic() + (self.args.play_at if leg == 0 else 0.5)

    def start_playing(self, call: PhoneCall) -> None:
        player = pj.AudioMediaPlayer()
        player.createPlayer(call.play_file, pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(call.media)
        self.players.append(player)
        say("playing", file=call.play_file, leg=self.calls.index(call))


class PhoneAccount(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: Any) -> None:
        call = self.phone.new_call(prm.callId)
        op = pj.CallOpParam()
        op.statusCode = 180 if self.phone.args.ring_only else 200  # an agent away from the desk never picks up
        call.answer(op)
        say("incoming", source=str(prm.rdata.srcAddress))


class PhoneCall(pj.Call):
    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.play_due: float | None = None
        self.play_file: str | None = None
        self.media: Any = None
        self.confirmed_at: float | None = None

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed_at = time.monotonic()
        say("state", state=STATES.get(info.state, str(info.state)), status=info.lastStatusCode, call=info.id)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.media is None:
                    self.phone.media_up(self, self.getAudioMedia(index))
                say("media", call=info.id)

    def onDtmfDigit(self, prm: Any) -> None:
        say("dtmf", digit=str(prm.digit))

    def onCallTransferRequest(self, prm: Any) -> None:
        say("transfer-request", target=str(prm.dstUri))
        prm.newCall = self.phone.new_call()

    def onCallReplaceRequest(self, prm: Any) -> None:
        say("replace-request")

    def onCallReplaced(self, prm: Any) -> None:
        say("replaced", new_call=int(prm.newCallId))
        prm.newCall = self.phone.new_call(prm.newCallId)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["call", "answer"])
    parser.add_argument("uri", nargs="?")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, default=30000)
    parser.add_argument("--name", default="caller")
    parser.add_argument("--play")
    parser.add_argument("--play-at", type=float, default=0.0, help="seconds after the media starts")
    parser.add_argument("--transfer-play", help="play this on the call a transfer creates (what the agent hears)")
    parser.add_argument("--record")
    parser.add_argument("--dtmf", default="", help="comma-separated S:DIGITS, S seconds after the call is confirmed")
    parser.add_argument("--hangup-at", type=float, default=0.0, help="seconds after confirmation (0 = never)")
    parser.add_argument("--max-s", type=float, default=60.0)
    parser.add_argument("--ring-only", action="store_true", help="answer mode: let calls ring, never pick up")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    phone = Phone(args)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    if args.mode == "call":
        call = phone.new_call()
        call.makeCall(args.uri, pj.CallOpParam(True))
    say("ready", port=args.port)
    dtmf = [(float(at), digits) for at, digits in (item.split(":") for item in args.dtmf.split(",") if item)]
    deadline = time.monotonic() + args.max_s
    idle_since: float | None = None
    while not stop["now"] and time.monotonic() < deadline:
        phone.ep.libHandleEvents(10)
        now = time.monotonic()
        for call in list(phone.calls):
            if call.play_due is not None and now >= call.play_due:
                call.play_due = None
                phone.start_playing(call)
        first = phone.calls[0] if phone.calls else None
        if args.mode == "call" and first is not None and first.confirmed_at is not None:
            since = now - first.confirmed_at
            while dtmf and since >= dtmf[0][0]:
                digits = dtmf.pop(0)[1]
                try:
                    first.dialDtmf(digits)
                    say("dtmf-sent", digits=digits)
                except pj.Error as exc:
                    say("dtmf-failed", digits=digits, error=exc.info())
            if args.hangup_at and since >= args.hangup_at:
                phone.ep.hangupAllCalls()
                args.hangup_at = 0.0
                deadline = min(deadline, now + 1.0)
        if args.mode == "call" and first is not None and first.confirmed_at is not None:
            active = any(c.isActive() for c in phone.calls)
            idle_since = None if active else (idle_since or now)
            if idle_since is not None and now - idle_since > 2.0:
                break  # every call ended (hung up by the bot, or transferred and over)
    phone.ep.hangupAllCalls()
    for _ in range(30):
        phone.ep.libHandleEvents(10)
    say("done")
    phone.players.clear()
    phone.recorders.clear()
    phone.calls.clear()
    for _ in range(10):
        phone.ep.libHandleEvents(10)
    phone.ep.libDestroy()
    os._exit(0)


if __name__ == "__main__":
    run(parse(sys.argv[1:]))
