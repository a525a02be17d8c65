"""Options and shared pieces of the test caller's calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telephony.rtp_stream import MediaClock
from telephony.sip_endpoint import TRANSACTION_TIMEOUT_S, SipEndpoint
from telephony.sip_message import SipResponse

if TYPE_CHECKING:
    from telephony.uac_call import Call


class CallEndedError(RuntimeError):
    """Media or DTMF asked of a call that is not (or no longer) answered."""


@dataclass(frozen=True)
class CallOptions:
    codecs: tuple[str, ...] = ("pcmu", "pcma")  # offered in this order
    follow_refer: bool = False  # True: INVITE the Refer-To target and NOTIFY its outcome; False: NOTIFY 603
    send_silence: bool = True  # silence packets when nothing is queued (False: no packets, like VAD/DTX)
    answer_timeout_s: float = TRANSACTION_TIMEOUT_S


PlaceCall = Callable[[str, list[tuple[str, str]]], Awaitable["Call"]]


@dataclass(frozen=True)
class CallContext:
    """What a call shares with the caller that placed it."""

    endpoint: SipEndpoint
    clock: MediaClock
    rtp_host: str
    options: CallOptions
    place_call: PlaceCall  # used to follow a REFER
    on_end: Callable[[Call], None]


def describe_response(response: SipResponse | None) -> str:
    return "no response" if response is None else f"{response.status} {response.reason}"
