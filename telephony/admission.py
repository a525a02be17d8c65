"""Who may start a call: a CIDR allow-list, an INVITE rate limit per source, and a cap on calls.

Checked in `onIncomingCall`, before anything is answered, so a refused INVITE never holds a call slot.
Pure Python and clock-injected: unit-tested without pjsua2.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from voicebot.ports import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


FORBIDDEN = Refusal(403, "Forbidden")
RATE_LIMITED = Refusal(503, "Service Unavailable")
BUSY = Refusal(486, "Busy Here")


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"sip.allow: {cidr!r} is not an address or CIDR network ({exc})") from None
    return tuple(networks)


def source_host(src_address: str) -> str:
    """pjsua2 gives "1.2.3.4:5060" or "[::1]:5060"."""
    if src_address.startswith("["):
        return src_address[1 : src_address.index("]")]
    return src_address.rsplit(":", 1)[0] if src_address.count(":") == 1 else src_address


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class AdmissionGuard:
    allow: tuple[Network, ...]
    invites_per_s: float
    max_calls: int
    clock: Callable[[], float]
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def burst(self) -> float:
        return max(1.0, 2 * self.invites_per_s)

    def check(self, src_address: str, active_calls: int) -> Refusal | None:
        host = source_host(src_address)
        if not self._allowed(host):
            return FORBIDDEN
        if not self._take_token(host):
            return RATE_LIMITED
        if active_calls >= self.max_calls:
            return BUSY
        return None

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.allow)

    def _take_token(self, host: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(host) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.invites_per_s)
        bucket.updated = now
        self._buckets[host] = bucket
        if len(self._buckets) > 10_000:  # a spoofed-source flood must not grow memory without bound
            self._buckets = {host: bucket}
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
