"""SDP (RFC 4566) for one audio stream: build the caller's offer, read the answer (RFC 3264)."""

from __future__ import annotations

from dataclasses import dataclass, field

STATIC_CODECS = {0: "PCMU", 8: "PCMA"}
CODEC_PAYLOAD_TYPES = {"pcmu": 0, "pcma": 8}
TELEPHONE_EVENT = "telephone-event"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(ValueError):
    """An SDP body without a usable audio stream."""


@dataclass(frozen=True)
class AudioDescription:
    """The first audio m-line of a session description."""

    address: str
    port: int
    payload_types: tuple[int, ...]
    encodings: tuple[tuple[int, str, int], ...]  # (payload type, encoding name, clock rate) from rtpmap
    direction: str = "sendrecv"
    ptime_ms: int | None = None

    def encoding(self, payload_type: int) -> str:
        for pt, name, _ in self.encodings:
            if pt == payload_type:
                return name
        return STATIC_CODECS.get(payload_type, "")

    def payload_type_for(self, encoding: str) -> int | None:
        """The payload type this side uses for an encoding (telephone-event is dynamic)."""
        for pt in self.payload_types:
            if self.encoding(pt).lower() == encoding.lower():
                return pt
        return None

    @property
    def audio_codec(self) -> int | None:
        """The first G.711 payload type of the list: the one to send with after an answer."""
        return next((pt for pt in self.payload_types if pt in STATIC_CODECS), None)


def build_sdp(
    address: str,
    port: int,
    payload_types: tuple[int, ...],
    *,
    session_id: int,
    version: int = 1,
    event_payload_type: int | None = 101,
    direction: str = "sendrecv",
) -> bytes:
    pts = payload_types + ((event_payload_type,) if event_payload_type is not None else ())
    lines = [
        "v=0",
        f"o=- {session_id} {version} IN IP4 {address}",
        "s=voicebot-uac",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in pts)}",
    ]
    lines += [f"a=rtpmap:{pt} {STATIC_CODECS[pt]}/8000" for pt in payload_types]
    if event_payload_type is not None:
        lines += [f"a=rtpmap:{event_payload_type} {TELEPHONE_EVENT}/8000", f"a=fmtp:{event_payload_type} 0-16"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def answer_direction(offered: str) -> str:
    return _ANSWER_DIRECTION.get(offered, "sendrecv")


@dataclass
class _Section:
    """An m-line being read (audio or not), or the session part before any m-line (kind "session")."""

    kind: str
    port: int = 0
    payload_types: tuple[int, ...] = ()
    address: str = ""
    encodings: list[tuple[int, str, int]] = field(default_factory=list)
    direction: str = ""
    ptime_ms: int | None = None


def parse_sdp(body: bytes) -> AudioDescription:
    session = _Section("session")
    current, audio = session, None
    for raw in body.decode("utf-8", "replace").splitlines():
        kind, eq, value = raw.strip().partition("=")
        if not eq:
            continue
        if kind == "m":
            if audio is not None:
                break  # only the first audio stream matters
            current = _media_section(value)
            audio = current if current.kind == "audio" else None
        elif kind == "c":
            current.address = value.split()[-1].split("/")[0]
        elif kind == "a":
            _read_attribute(value, current)
    if audio is None:
        raise SdpError("no audio m-line in SDP")
    address = audio.address or session.address
    if not address:
        raise SdpError("no connection address (c=) for the audio stream")
    return AudioDescription(
        address=address,
        port=audio.port,
        payload_types=audio.payload_types,
        encodings=tuple(audio.encodings),
        direction=audio.direction or session.direction or "sendrecv",
        ptime_ms=audio.ptime_ms,
    )


def _media_section(value: str) -> _Section:
    parts = value.split()
    if len(parts) < 4 or parts[0] != "audio" or not parts[1].isdigit():
        return _Section("other")
    return _Section("audio", int(parts[1]), tuple(int(p) for p in parts[3:] if p.isdigit()))


def _read_attribute(value: str, section: _Section) -> None:
    if value.startswith("rtpmap:"):
        pt, _, encoding = value[len("rtpmap:") :].partition(" ")
        name, _, rate_text = encoding.partition("/")
        rate = rate_text.split("/")[0]
        if pt.isdigit():
            section.encodings.append((int(pt), name, int(rate) if rate.isdigit() else 8000))
    elif value.startswith("ptime:") and value[len("ptime:") :].strip().isdigit():
        section.ptime_ms = int(value[len("ptime:") :])
    elif value in DIRECTIONS:
        section.direction = value
