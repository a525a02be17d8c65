"""The pjsua2 library, set up for a bot: no sound device, explicit codecs, callbacks on one thread.

Everything here runs on the thread that created the Endpoint (the "pj thread"): with `threadCnt=0` and
`mainThreadOnly`, pjsua2 defers its callbacks to that thread's `libHandleEvents` loop. The media clock
(frame callbacks of `BridgePort`) runs on pjmedia's own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pjsua2 as pj

from telephony.frames import read_vector, write_vector
from voicebot.ports import ConfigError
from voicebot.sip_settings import SipSettings

log = logging.getLogger(__name__)

CLOCK_RATE = 16000
FRAME_US = 20000
CODEC_PRIORITY = ("PCMU/8000", "PCMA/8000", "G722/16000")
TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}


class CallEvents(Protocol):
    """What the worker wants to hear about one call (called on the pj thread)."""

    def on_state(self, call: BotCall) -> None: ...
    def on_media(self, call: BotCall) -> None: ...
    def on_dtmf(self, call: BotCall, digit: str) -> None: ...
    def on_transfer_status(self, call: BotCall, status: int, final: bool) -> None: ...


class BotCall(pj.Call):
    def __init__(self, account: pj.Account, events: CallEvents, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.events = events

    def onCallState(self, prm: Any) -> None:
        self.events.on_state(self)

    def onCallMediaState(self, prm: Any) -> None:
        self.events.on_media(self)

    def onDtmfDigit(self, prm: Any) -> None:
        self.events.on_dtmf(self, str(prm.digit))

    def onCallTransferStatus(self, prm: Any) -> None:
        self.events.on_transfer_status(self, int(prm.statusCode), bool(prm.finalNotify))

    def onCallTransferRequest(self, prm: Any) -> None:
        prm.statusCode = 603  # a caller must not make the bot dial out (toll fraud through the trunk)

    def onCallReplaceRequest(self, prm: Any) -> None:
        prm.statusCode = 603


class BotAccount(pj.Account):
    def __init__(self, on_incoming: Callable[[int, str, str], None]) -> None:
        super().__init__()
        self._on_incoming = on_incoming

    def onIncomingCall(self, prm: Any) -> None:
        self._on_incoming(int(prm.callId), str(prm.rdata.srcAddress), str(prm.rdata.wholeMsg))


class BotEndpoint(pj.Endpoint):
    """Reports the calls pjsua refuses by itself (before onIncomingCall), e.g. 486 when all its slots are taken."""

    def __init__(self, on_rejected: Callable[[int, str], None]) -> None:
        super().__init__()
        self._on_rejected = on_rejected

    def onRejectedIncomingCall(self, prm: Any) -> None:
        self._on_rejected(int(prm.statusCode), str(prm.remoteInfo))


class BridgePort(pj.AudioMediaPort):
    """A conference-bridge port between one call and its session; reused, never destroyed (see FACTS)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_US, 16)
        self.createPort(name, fmt)
        self.frame_bytes = CLOCK_RATE * FRAME_US // 1_000_000 * 2
        self._on_audio: Callable[[bytes], None] | None = None
        self._fill: Callable[[int], bytes] | None = None

    def attach(self, on_audio: Callable[[bytes], None], fill: Callable[[int], bytes]) -> None:
        self._on_audio, self._fill = on_audio, fill

    def detach(self) -> None:
        self._on_audio = self._fill = None

    def onFrameReceived(self, frame: Any) -> None:
        on_audio = self._on_audio
        if on_audio is not None and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            on_audio(read_vector(frame.buf))

    def onFrameRequested(self, frame: Any) -> None:
        fill = self._fill
        data = fill(self.frame_bytes) if fill is not None else bytes(self.frame_bytes)
        write_vector(frame.buf, data)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO


class PortPool:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._free: list[BridgePort] = []
        self._all: list[BridgePort] = []

    def acquire(self) -> BridgePort:
        if self._free:
            return self._free.pop()
        port = BridgePort(f"{self._prefix}{len(self._all)}")
        self._all.append(port)
        return port

    def release(self, port: BridgePort) -> None:
        port.detach()
        if port not in self._free:
            self._free.append(port)

    def clear(self) -> None:
        self._free.clear()
        self._all.clear()


@dataclass
class Endpoint:
    """pjsua2's library, transports and the bot's account."""

    settings: SipSettings
    bind_host: str
    bind_port: int
    ep: Any = None
    account: BotAccount | None = None

    def start(
        self,
        on_incoming: Callable[[int, str, str], None],
        on_rejected: Callable[[int, str], None] = lambda status, remote: None,
        log_level: int = 1,
    ) -> None:
        self.ep = BotEndpoint(on_rejected)
        self.ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = 4
        config.uaConfig.userAgent = "voicebot"
        config.logConfig.level = log_level
        config.logConfig.consoleLevel = log_level
        config.medConfig.clockRate = CLOCK_RATE
        config.medConfig.sndClockRate = CLOCK_RATE
        config.medConfig.ecTailLen = 0
        config.medConfig.noVad = True
        self.ep.libInit(config)
        self.ep.audDevManager().setNullDev()
        self._create_transports()
        self.ep.libStart()
        self._set_codec_priorities()
        self.account = BotAccount(on_incoming)
        self.account.create(self._account_config())

    def _create_transports(self) -> None:
        for name in self.settings.transports:
            if name not in TRANSPORTS:
                raise ConfigError(f"sip.transports: unknown transport {name!r} (udp, tcp; TLS via sip.tls_port)")
            self.ep.transportCreate(TRANSPORTS[name], self._transport_config(self.bind_port))
        if self.settings.tls_port:
            self.ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, self._tls_config())

    def _transport_config(self, port: int) -> Any:
        config = pj.TransportConfig()
        config.port = port
        config.boundAddress = self.bind_host
        if self.settings.public_address:
            config.publicAddress = self.settings.public_address
        return config

    def _tls_config(self) -> Any:
        cert, key = self.settings.tls_cert, self.settings.tls_key
        if cert is None or key is None or not cert.is_file() or not key.is_file():
            raise ConfigError(f"sip.tls_port is set: sip.tls_cert and sip.tls_key must name files (got {cert}, {key})")
        config = self._transport_config(self.settings.tls_port)
        config.tlsConfig.certFile = str(cert)
        config.tlsConfig.privKeyFile = str(key)
        config.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        config.tlsConfig.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2
        return config

    def _set_codec_priorities(self) -> None:
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, 0)  # only the codecs below are offered/accepted
        for rank, name in enumerate(CODEC_PRIORITY):
            self.ep.codecSetPriority(name, 255 - rank)

    def _account_config(self) -> Any:
        config = pj.AccountConfig()
        host = self.settings.public_address or self.bind_host
        config.idUri = f"sip:voicebot@{host}:{self.bind_port}"
        config.mediaConfig.transportConfig.port = self.settings.rtp_port
        config.mediaConfig.transportConfig.portRange = 1000
        config.mediaConfig.transportConfig.boundAddress = self.bind_host
        return config

    def handle_events(self, timeout_ms: int) -> None:
        self.ep.libHandleEvents(timeout_ms)

    def register_thread(self, name: str) -> None:
        if not self.ep.libIsThreadRegistered():
            self.ep.libRegisterThread(name)
