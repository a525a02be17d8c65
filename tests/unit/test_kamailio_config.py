"""The generated Kamailio config (Kamailio itself checks and runs it in tests/integration/test_kamailio.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from telephony import kamailio
from telephony.kamailio import FrontDoorConfig, SipAddress, find_kamailio, front_door_config, render_config
from voicebot.ports import ConfigError
from voicebot.sip_settings import SipSettings

FRONT = SipAddress("192.0.2.10", 5060)
WORKERS = (SipAddress("127.0.0.1", 5070), SipAddress("127.0.0.1", 5071))
LIST = Path("/run/voicebot/dispatcher.list")


def rendered(**options: object) -> str:
    values: dict = {"front": FRONT, "workers": WORKERS, "allow": ("10.0.0.0/8",), **options}
    return render_config(FrontDoorConfig(**values), LIST)[0]


def define(cfg: str, name: str) -> str:
    match = re.search(rf"^#!define {name} (.*)$", cfg, re.MULTILINE)
    assert match, f"no #!define {name}"
    return match.group(1)


def test_listens_on_the_front_address_over_udp_and_tcp() -> None:
    cfg = rendered()
    assert re.findall(r"^listen=.*$", cfg, re.MULTILINE) == ["listen=udp:192.0.2.10:5060", "listen=tcp:192.0.2.10:5060"]
    assert "disable_tcp=yes" not in cfg


def test_udp_only_ipv6_and_an_advertised_address() -> None:
    cfg = rendered(front=SipAddress("2001:db8::5", 5060), tcp=False, advertise_host="2001:db8::99")
    assert re.findall(r"^listen=.*$", cfg, re.MULTILINE) == [
        "listen=udp:[2001:db8::5]:5060 advertise [2001:db8::99]:5060"
    ]
    assert "\ndisable_tcp=yes\n" in cfg


def test_runs_without_database_control_socket_or_daemon_settings() -> None:
    cfg = rendered()
    modules = re.findall(r'^loadmodule "(\w+)\.so"$', cfg, re.MULTILINE)
    assert not [m for m in modules if m.startswith("db_") or m in ("ctl", "jsonrpcs", "usrloc", "registrar")]
    assert "log_stderror=yes" in cfg
    assert not re.search(r"^\s*(user|group|mpath|chroot)\s*=", cfg, re.MULTILINE)


def test_dispatcher_list_has_one_line_per_worker_in_one_set() -> None:
    cfg, dispatcher_list = render_config(FrontDoorConfig(FRONT, WORKERS, ("10.0.0.0/8",)), LIST)
    assert dispatcher_list == "1 sip:127.0.0.1:5070 0 0\n1 sip:127.0.0.1:5071 0 0\n"
    assert define(cfg, "DISPATCHER_LIST") == f'"{LIST}"'
    assert 'ds_select_dst(WORKER_SET, "4")' in cfg  # round robin over set 1


def test_allow_list_is_normalised_into_one_subnet_list() -> None:
    cfg = rendered(allow=("10.1.2.3/8", "192.0.2.7", "2001:db8::/32"))
    assert define(cfg, "ALLOWED_SOURCES") == '"10.0.0.0/8,192.0.2.7/32,2001:db8::/32"'


@pytest.mark.parametrize(
    ("rate", "window"), [(5.0, (1, 5)), (2.5, (1, 3)), (1.0, (1, 1)), (0.5, (2, 1)), (0.2, (5, 1)), (30.0, (1, 30))]
)
def test_invite_rate_becomes_a_whole_second_window(rate: float, window: tuple[int, int]) -> None:
    cfg = rendered(invite_rate_per_s=rate)
    assert (int(define(cfg, "INVITE_WINDOW_S")), int(define(cfg, "INVITES_PER_WINDOW"))) == window


def test_timers_and_limits_reach_the_config() -> None:
    cfg = rendered(worker_timeout_ms=1500, ping_interval_s=2, retry_after_s=9, flood_requests_per_s=40)
    assert define(cfg, "WORKER_TIMEOUT_MS") == "1500"
    assert define(cfg, "PING_INTERVAL_S") == "2"
    assert define(cfg, "RETRY_AFTER") == '"Retry-After: 9\\r\\n"'
    assert define(cfg, "FLOOD_PER_2S") == "80"


def test_defines_are_not_used_inside_quoted_strings() -> None:
    # the Kamailio preprocessor only replaces bare tokens: a define inside quotes stays its own name
    cfg = rendered()
    names = re.findall(r"^#!define (\w+) ", cfg, re.MULTILINE)
    body = cfg.split("\nserver_header=", 1)[1]
    strings = re.findall(r'"(?:[^"\\\n]|\\.)*"', body)
    assert '"4"' in strings and '"NEXT_WORKER"' in strings
    assert not [(name, text) for text in strings for name in names if re.search(rf"\b{name}\b", text)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": ()}, "no workers"),
        ({"allow": ()}, "sip.allow is empty"),
        ({"allow": ("10.0.0.0/33",)}, "'10.0.0.0/33' is not an address or CIDR"),
        ({"allow": ("city-hall.example",)}, "is not an address or CIDR"),
        ({"front": SipAddress("0.0.0.0", 5060)}, "give the IP callers reach"),
        ({"front": SipAddress("127.0.0.1", 5070)}, "also a worker address"),
        ({"invite_rate_per_s": 0}, "must be positive"),
        ({"advertise_host": "pbx.example"}, "'pbx.example' is not an IP address"),
    ],
)
def test_bad_settings_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        rendered(**options)


def test_sip_addresses_are_ip_literals_with_a_valid_port() -> None:
    with pytest.raises(ConfigError, match="'localhost' is not an IP address"):
        SipAddress("localhost", 5060)
    with pytest.raises(ConfigError, match="out of range"):
        SipAddress("127.0.0.1", 70000)


def test_front_door_from_the_sip_settings() -> None:
    sip = SipSettings(
        host="192.0.2.10", port=5060, workers=3, worker_base_port=5070, allow=("10.0.0.0/8",), transports=("udp",)
    )
    config = front_door_config(sip)
    assert config.front == SipAddress("192.0.2.10", 5060)
    assert config.workers == tuple(SipAddress("127.0.0.1", 5070 + i) for i in range(3))
    assert (config.allow, config.invite_rate_per_s, config.tcp) == (("10.0.0.0/8",), sip.invite_rate_per_s, False)


def test_a_missing_kamailio_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(kamailio, "KAMAILIO_PATHS", (str(tmp_path / "kamailio"),))
    with pytest.raises(ConfigError, match="apt-get install kamailio"):
        find_kamailio()
    with pytest.raises(ConfigError, match="not found or not executable"):
        find_kamailio(tmp_path / "nowhere" / "kamailio")


def test_front_door_for_the_workers_serve_started() -> None:
    config = front_door_config(SipSettings(host="127.0.0.1", port=5060), [("127.0.0.1", 6001), ("127.0.0.1", 6002)])
    assert config.workers == (SipAddress("127.0.0.1", 6001), SipAddress("127.0.0.1", 6002))
