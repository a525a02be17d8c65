"""The `sip` section of the settings: where the bot answers calls, who may call, and where transfers go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SipSettings:
    host: str = "127.0.0.1"
    port: int = 5060  # the address callers dial (Kamailio's when workers > 1, else the worker's)
    transports: tuple[str, ...] = ("udp", "tcp")
    tls_port: int = 0  # 0 = no TLS; TLS is restricted to 1.2 (pjsua2's bundled OpenSSL is 1.0.2)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_address: str = ""  # advertised in SDP/Contact when behind NAT; empty = host
    workers: int = 1
    worker_base_port: int = 5070  # workers behind Kamailio listen on 127.0.0.1:base+i
    max_calls: int = 4  # per worker; pjsua2 cannot take more than 4
    allow: tuple[str, ...] = ("127.0.0.0/8",)  # CIDR allow-list of SIP sources
    invite_rate_per_s: float = 5.0  # per source address, with a burst of twice that
    max_call_s: float = 900.0
    rtp_timeout_s: float = 30.0  # no RTP for this long: the line is dead, hang up
    rtp_port: int = 40000
    # blind (REFER to the queue's URI), attended (the bot briefs the agent first) or queue (the agent queue picks the
    # agent: callers wait with announcements, the chosen agent is briefed, the next one tried if it does not answer)
    transfer_mode: str = "queue"
    attended_queues: tuple[str, ...] = ()  # queues always transferred attended, whatever transfer_mode says
    agent_answer_timeout_s: float = 20.0
    transfer_targets: dict[str, str] = field(default_factory=lambda: {"default": "sip:agents@127.0.0.1:5090"})

    def mode_for(self, queue: str) -> str:
        return "attended" if queue in self.attended_queues else self.transfer_mode

    def target_for(self, queue: str) -> str:
        return self.transfer_targets.get(queue) or self.transfer_targets["default"]
