from __future__ import annotations

import pytest

from telephony.admission import BUSY, FORBIDDEN, RATE_LIMITED, AdmissionGuard, parse_networks, source_host
from voicebot.ports import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, rate: float = 1.0, max_calls: int = 4) -> AdmissionGuard:
    return AdmissionGuard(parse_networks(["127.0.0.0/8", "10.1.0.0/16", "::1"]), rate, max_calls, clock)


@pytest.mark.parametrize(
    ("address", "host"),
    [("127.0.0.1:5060", "127.0.0.1"), ("[::1]:5060", "::1"), ("10.1.2.3", "10.1.2.3"), ("::1", "::1")],
)
def test_source_host_strips_the_port(address: str, host: str) -> None:
    assert source_host(address) == host


def test_sources_outside_the_allow_list_are_forbidden() -> None:
    g = guard(Clock())
    assert g.check("127.0.0.2:5060", 0) is None
    assert g.check("10.1.200.7:5060", 0) is None
    assert g.check("[::1]:5070", 0) is None
    assert g.check("192.168.1.5:5060", 0) == FORBIDDEN
    assert g.check("garbage", 0) == FORBIDDEN


def test_invite_rate_is_limited_per_source_and_refills_with_time() -> None:
    clock = Clock()
    g = guard(clock, rate=1.0)
    results = [g.check("127.0.0.1:5060", 0) for _ in range(3)]
    assert results == [None, None, RATE_LIMITED]  # burst of two at 1 INVITE/s
    assert g.check("127.0.0.9:5060", 0) is None, "another source has its own budget"
    clock.now = 1.0
    assert g.check("127.0.0.1:5060", 0) is None


def test_a_full_worker_answers_busy() -> None:
    g = guard(Clock(), rate=100, max_calls=2)
    assert g.check("127.0.0.1:1", 1) is None
    assert g.check("127.0.0.1:1", 2) == BUSY


def test_a_bad_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"sip\.allow"):
        parse_networks(["10.0.0.0/33"])
