"""A pjsua2 auto-answer UAS for the telephony.uac tests, run as its own process (one pjsua2 library each).

    pjsua_echo.py --port 15070 --rtp-port 17000 [--play WAV] [--transfer-to URI] [--hangup-after-s S]

What a call does depends on the user part of the Request-URI:
  echo      sends the caller's audio back (through the conference bridge)
  play      plays --play (looped)
  hangup    echoes, and hangs up (BYE) --hangup-after-s after the call is confirmed
  transfer  echoes, then blind-transfers (REFER) to --transfer-to; hangs up on a final 2xx NOTIFY
  reinvite  echoes, and sends a re-INVITE 0.5 s after the call is confirmed
Anything else is echo. pjsua2 itself answers 486 to a 5th concurrent call (4-call limit).

It prints one line per fact on stdout: READY, INCOMING, CONFIRMED, MEDIA, DTMF, XFER, DISCONNECTED,
each with the SIP Call-ID. SIGTERM shuts it down in the order that never crashed pjsua2 2.15.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

import pjsua2 as pj

CODEC_PRIORITIES = {"PCMU/8000": 255, "PCMA/8000": 254}


def say(*fields: object) -> None:
    print(" ".join(str(field) for field in fields), flush=True)


class Uas:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[UasCall] = []  # every Call ever created: pjsua2 must never see one destroyed early
        self.players: list[Any] = []
        self.timers: list[tuple[float, UasCall, str]] = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = 4
        config.logConfig.level = 1
        config.logConfig.consoleLevel = 1
        config.medConfig.noVad = True
        self.ep.libInit(config)
        transport = pj.TransportConfig()
        transport.port = args.port
        transport.boundAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId.rsplit("/", 1)[0], 0))
        self.account = UasAccount(self)
        account = pj.AccountConfig()
        account.idUri = f"sip:echo@127.0.0.1:{args.port}"
        account.mediaConfig.transportConfig.port = args.rtp_port
        account.mediaConfig.transportConfig.portRange = 998
        self.account.create(account, True)

    def after(self, delay_s: float, call: UasCall, action: str) -> None:
        self.timers.append((time.monotonic() + delay_s, call, action))

    def run_due_timers(self) -> None:
        now = time.monotonic()
        due = [timer for timer in self.timers if timer[0] <= now]
        self.timers = [timer for timer in self.timers if timer[0] > now]
        for _, call, action in due:
            if call.isActive():
                call.perform(action)

    def shutdown(self) -> None:
        self.ep.hangupAllCalls()
        for _ in range(50):
            self.ep.libHandleEvents(10)
        say("DONE")
        self.timers.clear()
        self.players.clear()
        self.calls.clear()
        del self.account
        for _ in range(10):
            self.ep.libHandleEvents(10)
        self.ep.libDestroy()
        os._exit(0)


class UasAccount(pj.Account):
    def __init__(self, uas: Uas) -> None:
        super().__init__()
        self.uas = uas

    def onIncomingCall(self, prm: Any) -> None:
        request_line = str(prm.rdata.wholeMsg).split("\r\n", 1)[0]
        user = request_line.split(" ")[1].split(":", 1)[1].split("@", 1)[0] if "@" in request_line else "echo"
        call = UasCall(self.uas, self, prm.callId, user)
        self.uas.calls.append(call)
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)
        say("INCOMING", call.sip_call_id, user, prm.rdata.srcAddress)


class UasCall(pj.Call):
    def __init__(self, uas: Uas, account: UasAccount, call_id: int, user: str) -> None:
        super().__init__(account, call_id)
        self.uas = uas
        self.user = user
        self.media: Any = None
        self.sip_call_id = self.getInfo().callIdString

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            say("CONFIRMED", self.sip_call_id)
            if self.user == "hangup":
                self.uas.after(self.uas.args.hangup_after_s, self, "hangup")
            elif self.user == "transfer":
                self.uas.after(0.5, self, "transfer")
            elif self.user == "reinvite":
                self.uas.after(0.5, self, "reinvite")
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            say("DISCONNECTED", self.sip_call_id, info.lastStatusCode)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            codec = self.getStreamInfo(index).codecName
            say("MEDIA", self.sip_call_id, codec)
            if self.media is None:
                self.media = self.getAudioMedia(index)
                self.connect_audio()

    def connect_audio(self) -> None:
        if self.user == "play" and self.uas.args.play:
            player = pj.AudioMediaPlayer()
            player.createPlayer(self.uas.args.play, 0)  # 0: loop
            player.startTransmit(self.media)
            self.uas.players.append(player)
        else:
            self.media.startTransmit(self.media)

    def onDtmfDigit(self, prm: Any) -> None:
        say("DTMF", self.sip_call_id, prm.digit, prm.method)

    def onCallTransferStatus(self, prm: Any) -> None:
        say("XFER", self.sip_call_id, prm.statusCode, int(prm.finalNotify))
        if prm.finalNotify:
            prm.cont = False
            if 200 <= prm.statusCode < 300:
                self.uas.after(0.0, self, "hangup")

    def perform(self, action: str) -> None:
        if action == "hangup":
            self.hangup(pj.CallOpParam())
        elif action == "transfer":
            self.xfer(self.uas.args.transfer_to, pj.CallOpParam(True))
        elif action == "reinvite":
            op = pj.CallOpParam(True)
            op.opt.flag = pj.PJSUA_CALL_UNHOLD
            self.reinvite(op)
            say("REINVITE", self.sip_call_id)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--play", help="WAV file the 'play' user hears (16-bit PCM)")
    parser.add_argument("--transfer-to", default="", help="REFER target of the 'transfer' user")
    parser.add_argument("--hangup-after-s", type=float, default=1.0)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    uas = Uas(parse(argv))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    say("READY", uas.args.port)
    while not stop["now"]:
        uas.ep.libHandleEvents(10)
        uas.run_due_timers()
    uas.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
