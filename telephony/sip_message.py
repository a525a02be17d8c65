"""SIP messages (RFC 3261) as frozen values: parse a datagram, build and encode requests and responses.

Only what a test caller needs: headers in order with compact forms expanded, bodies sized by Content-Length,
name-addr and URI parameters, and URI headers (`?Replaces=...` in a Refer-To).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Self
from urllib.parse import unquote

SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
_SPECIAL_CASE = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate", "rack": "RAck"}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_LIST_HEADERS = {"Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require"}


class SipParseError(ValueError):
    """A datagram that is not a SIP message we can use."""


def canonical_name(name: str) -> str:
    stripped = name.strip()
    lowered = stripped.lower()
    if lowered in _COMPACT:
        return _COMPACT[lowered]
    if lowered in _SPECIAL_CASE:
        return _SPECIAL_CASE[lowered]
    return "-".join(part.capitalize() for part in lowered.split("-"))


@dataclass(frozen=True)
class _Message:
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (the first entry for list headers like Via)."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = canonical_name(name)
        values = [value for key, value in self.headers if key == wanted]
        if wanted in _LIST_HEADERS:
            return [entry for value in values for entry in split_list(value)]
        return values

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("CSeq") or "0 ?").partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError as exc:
            raise SipParseError(f"bad CSeq {self.header('CSeq')!r}") from exc

    @property
    def branch(self) -> str:
        return header_param(self.header("Via") or "", "branch") or ""

    def with_headers(self, *headers: tuple[str, str]) -> Self:
        return replace(self, headers=self.headers + tuple((canonical_name(k), v) for k, v in headers))

    def _encode(self, first_line: str) -> bytes:
        lines = [first_line]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class SipRequest(_Message):
    method: str = ""
    uri: str = ""

    def encode(self) -> bytes:
        return self._encode(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass(frozen=True)
class SipResponse(_Message):
    status: int = 0
    reason: str = ""

    def encode(self) -> bytes:
        return self._encode(f"{SIP_VERSION} {self.status} {self.reason}")


def request(method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b"") -> SipRequest:
    return SipRequest(tuple((canonical_name(k), v) for k, v in headers), body, method.upper(), uri)


def response_to(
    req: SipRequest, status: int, reason: str, *, to_tag: str = "", headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response copying Via, From, To (adding `to_tag` when To has none), Call-ID and CSeq from `req`."""
    copied = [("Via", via) for via in req.header_values("Via")]
    to = req.header("To") or ""
    if to_tag and header_param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    copied += [("From", req.header("From") or ""), ("To", to), ("Call-ID", req.call_id)]
    copied.append(("CSeq", req.header("CSeq") or ""))
    all_headers = tuple((canonical_name(k), v) for k, v in copied + (headers or []))
    return SipResponse(all_headers, body, status, reason)


def parse_message(data: bytes) -> SipRequest | SipResponse:
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, rest = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("SIP head is not UTF-8") from exc
    lines = _unfold(text.replace("\r\n", "\n").split("\n"))
    if not lines or not lines[0].strip():
        raise SipParseError("empty message")
    headers = tuple(_parse_header_line(line) for line in lines[1:] if line.strip())
    length = _content_length(headers, len(rest))
    first = lines[0].strip()
    if first.startswith(SIP_VERSION + " "):
        _, code, reason = [*first.split(" ", 2), ""][:3]
        if not code.isdigit() or len(code) != 3:
            raise SipParseError(f"bad status line {first!r}")
        return SipResponse(headers, rest[:length], int(code), reason)
    parts = first.split(" ")
    if len(parts) != 3 or parts[2] != SIP_VERSION:
        raise SipParseError(f"bad request line {first!r}")
    return SipRequest(headers, rest[:length], parts[0].upper(), parts[1])


def _unfold(lines: list[str]) -> list[str]:
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    return unfolded


def _parse_header_line(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not name.strip():
        raise SipParseError(f"bad header line {line!r}")
    return canonical_name(name), value.strip()


def _content_length(headers: tuple[tuple[str, str], ...], available: int) -> int:
    for name, value in headers:
        if name == "Content-Length":
            if not value.isdigit():
                raise SipParseError(f"bad Content-Length {value!r}")
            return min(int(value), available)
    return available


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    entries: list[str] = []
    current: list[str] = []
    quoted = angled = False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angled = True
        elif char == ">" and not quoted:
            angled = False
        if char == "," and not quoted and not angled:
            entries.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    entries.append("".join(current).strip())
    return [entry for entry in entries if entry]


def header_param(value: str, name: str) -> str | None:
    """A `;name=value` parameter of a header value, outside its <URI>; "" for a flag parameter."""
    params = value.rsplit(">", 1)[1] if ">" in value else value
    for param in params.split(";")[1:]:
        key, _, param_value = param.partition("=")
        if key.strip().lower() == name.lower():
            return param_value.strip()
    return None


def name_addr_uri(value: str) -> str:
    """The URI of a name-addr (`"Bot" <sip:bot@host>;tag=x`) or addr-spec (`sip:bot@host;tag=x`)."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()


@dataclass(frozen=True)
class SipUri:
    host: str
    port: int | None = None
    user: str = ""
    scheme: str = "sip"
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port or 5060

    def without_headers(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params)
        return f"{self.scheme}:{user}{self.host}{port}{params}"


def parse_uri(text: str) -> SipUri:
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme.lower() not in ("sip", "sips") or not rest:
        raise SipParseError(f"not a SIP URI: {text!r} (expected sip:user@host[:port])")
    rest, _, header_part = rest.partition("?")
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    hostport, *param_parts = hostport.split(";")
    host, port = _split_hostport(hostport, text)
    params = tuple((k, v) for k, _, v in (p.partition("=") for p in param_parts if p))
    headers = tuple((k, unquote(v)) for k, _, v in (h.partition("=") for h in header_part.split("&") if h))
    return SipUri(host, port, unquote(user), scheme.lower(), params, headers)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise SipParseError(f"bad host or port in SIP URI {text!r}")
    return host, int(port_text) if port_text else None


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"
