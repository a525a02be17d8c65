"""The caller's side of one SIP dialog: identifiers, CSeq, route set, and the requests built from them."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.sip_message import (
    SipRequest,
    SipResponse,
    header_param,
    name_addr_uri,
    new_branch,
    parse_uri,
    request,
)

USER_AGENT = "voicebot-uac"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"
Address = tuple[str, int]


@dataclass
class Dialog:
    call_id: str
    local_uri: str  # our address of record, in From
    local_tag: str
    remote_uri: str  # the called address, in To
    contact: str  # our Contact URI
    via_sent_by: str  # host:port
    remote_tag: str = ""
    remote_target: str = ""  # Request-URI of in-dialog requests (the far end's Contact)
    route_set: tuple[str, ...] = ()
    next_cseq: int = 1

    @property
    def from_header(self) -> str:
        return f"<{self.local_uri}>;tag={self.local_tag}"

    @property
    def to_header(self) -> str:
        return f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")

    def next_hop(self) -> Address:
        """Where in-dialog requests go: the first (loose-routing) route, else the remote target."""
        first = self.route_set[0] if self.route_set else self.remote_target or self.remote_uri
        return parse_uri(name_addr_uri(first)).address

    def build(
        self, method: str, uri: str, cseq: int, *, branch: str = "", headers: list[tuple[str, str]] | None = None,
        body: bytes = b"", routes: bool = True,
    ) -> SipRequest:
        base = [
            ("Via", f"SIP/2.0/UDP {self.via_sent_by};branch={branch or new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", self.to_header),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if routes:
            base += [("Route", route) for route in self.route_set]
        if method not in ("ACK", "CANCEL", "BYE"):
            base.append(("Contact", f"<{self.contact}>"))
        base.append(("User-Agent", USER_AGENT))
        return request(method, uri, base + (headers or []), body)

    def in_dialog(self, method: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipRequest:
        cseq = self.next_cseq
        self.next_cseq += 1
        return self.build(method, self.remote_target or self.remote_uri, cseq, headers=headers, body=body)

    def confirm(self, response: SipResponse) -> None:
        """Takes the remote tag, target and route set from the 2xx that established the dialog."""
        self.remote_tag = header_param(response.header("To") or "", "tag") or ""
        contact = response.header("Contact")
        if contact:
            self.remote_target = name_addr_uri(contact)
        self.route_set = tuple(reversed(response.header_values("Record-Route")))

    def update_target(self, req: SipRequest) -> None:
        contact = req.header("Contact")
        if contact:
            self.remote_target = name_addr_uri(contact)

    def ack_for_2xx(self, invite_cseq: int) -> SipRequest:
        return self.build("ACK", self.remote_target or self.remote_uri, invite_cseq)

    def ack_for_failure(self, invite: SipRequest, response: SipResponse) -> SipRequest:
        return ack_for_failure(invite, response)

    def cancel(self, invite: SipRequest) -> SipRequest:
        headers = [
            ("Via", invite.header("Via") or ""),
            ("Max-Forwards", "70"),
            ("From", invite.header("From") or ""),
            ("To", invite.header("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq[0]} CANCEL"),
        ]
        return request("CANCEL", invite.uri, headers)


def ack_for_failure(invite: SipRequest, response: SipResponse) -> SipRequest:
    """ACK of a non-2xx final response: same branch and Request-URI as the INVITE, the response's To."""
    headers = [
        ("Via", invite.header("Via") or ""),
        ("Max-Forwards", "70"),
        ("From", invite.header("From") or ""),
        ("To", response.header("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq[0]} ACK"),
    ]
    return request("ACK", invite.uri, headers)
