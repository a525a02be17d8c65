"""The Kamailio config of the SIP front door, generated from voicebot's `sip` settings.

Sources outside the CIDR allow-list get 403; pike drops a source flooding requests; a source over its INVITE
rate gets 503. INVITEs are dispatched round-robin over the workers, pinged with OPTIONS every second (one
failed ping marks a worker inactive, one answered ping brings it back); a 486/503/408 or no answer fails
over to the next worker, and "503 All Agents Busy" is the answer when none is left. Record-Route keeps
in-dialog requests (ACK, BYE, REFER) going through Kamailio.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voicebot.ports import ConfigError
from voicebot.sip_settings import SipSettings

WORKER_SET = 1
WORKERS_HOST = "127.0.0.1"
SOURCE_HEADER = "X-Voicebot-Source"  # the caller's address, for workers that only see Kamailio's


@dataclass(frozen=True)
class SipAddress:
    host: str  # an IP literal: Kamailio listens on it and dispatches to it without DNS
    port: int

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise ConfigError(f"SIP address {self.host!r} is not an IP address: give the IP to use") from None
        if not 0 < self.port < 65536:
            raise ConfigError(f"SIP port {self.port} for {self.host} is out of range: use 1-65535")

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ipaddress.ip_address(self.host).version == 6 else self.host
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.hostport}"


@dataclass(frozen=True)
class FrontDoorConfig:
    front: SipAddress  # the public address callers dial
    workers: tuple[SipAddress, ...]
    allow: tuple[str, ...]  # CIDR networks that may call
    invite_rate_per_s: float = 5.0  # per source address
    flood_requests_per_s: int = 50  # per source address, all requests: above it pike drops silently
    tcp: bool = True
    advertise_host: str = ""  # public IP in Via/Record-Route when the front address is behind NAT
    ping_interval_s: int = 1
    worker_timeout_ms: int = 2000  # no reply from a worker in this time: fail over (and OPTIONS ping failure)
    retry_after_s: int = 5
    max_message_bytes: int = 16384  # larger requests get 513 (a real INVITE with SDP is 1-5 kB)
    children: int = 2  # Kamailio receiver processes per listen socket
    log_level: int = 1  # Kamailio's `debug`: 0 warnings, 1 notices, 2 info, 3 debug

    def __post_init__(self) -> None:
        if not self.workers:
            raise ConfigError("front door: no workers to dispatch to: start at least one worker")
        if ipaddress.ip_address(self.front.host).is_unspecified:
            host = self.front.host
            raise ConfigError(f"sip.host {host} behind Kamailio: give the IP callers reach (it goes in Record-Route)")
        if self.front in self.workers:
            raise ConfigError(f"front door {self.front.hostport} is also a worker address: use another port")
        if not self.allow:
            raise ConfigError("sip.allow is empty: list the CIDR networks that may call (0.0.0.0/0 for anyone)")
        for cidr in self.allow:
            _network(cidr)
        if self.invite_rate_per_s <= 0 or self.flood_requests_per_s <= 0:
            raise ConfigError("sip.invite_rate_per_s and the flood limit must be positive")
        if self.advertise_host:
            SipAddress(self.advertise_host, self.front.port)

    @property
    def invite_window(self) -> tuple[int, int]:
        """(window in seconds, INVITEs allowed per window): whole seconds, at least one INVITE."""
        window_s = max(1, math.ceil(1 / self.invite_rate_per_s))
        return window_s, max(1, math.floor(self.invite_rate_per_s * window_s + 0.5))


def front_door_config(sip: SipSettings, workers: Sequence[tuple[str, int]] = ()) -> FrontDoorConfig:
    """The front door on sip.host:sip.port for `workers` (default: sip.workers on 127.0.0.1:worker_base_port+i)."""
    addresses = [SipAddress(host, port) for host, port in workers]
    addresses = addresses or [SipAddress(WORKERS_HOST, sip.worker_base_port + i) for i in range(sip.workers)]
    return FrontDoorConfig(
        front=SipAddress(sip.host, sip.port),
        workers=tuple(addresses),
        allow=tuple(sip.allow),
        invite_rate_per_s=sip.invite_rate_per_s,
        tcp="tcp" in sip.transports,
        advertise_host=sip.public_address,
    )


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError as exc:
        raise ConfigError(f"sip.allow: {cidr!r} is not an address or CIDR network ({exc})") from None


def render_config(config: FrontDoorConfig, dispatcher_list_path: Path) -> tuple[str, str]:
    """(kamailio.cfg text, dispatcher.list text); the cfg reads the list from `dispatcher_list_path`."""
    dispatcher_list = "".join(f"{WORKER_SET} {worker.uri} 0 0\n" for worker in config.workers)
    return _header(config, dispatcher_list_path) + _ROUTING, dispatcher_list


def _header(config: FrontDoorConfig, dispatcher_list_path: Path) -> str:
    window_s, invites_per_window = config.invite_window
    allowed = ",".join(str(_network(cidr)) for cidr in config.allow)
    advertise = ""
    if config.advertise_host:
        advertise = f" advertise {SipAddress(config.advertise_host, config.front.port).hostport}"
    protocols = ("udp", "tcp") if config.tcp else ("udp",)
    listens = "".join(f"listen={proto}:{config.front.hostport}{advertise}\n" for proto in protocols)
    return f"""#!KAMAILIO
# Generated by voicebot (telephony/kamailio.py) -- edits are overwritten at the next start.
#!define WORKER_SET {WORKER_SET}
#!define DISPATCHER_LIST "{dispatcher_list_path}"
#!define ALLOWED_SOURCES "{allowed}"
#!define INVITE_WINDOW_S {window_s}
#!define INVITES_PER_WINDOW {invites_per_window}
#!define FLOOD_PER_2S {config.flood_requests_per_s * 2}
#!define PING_INTERVAL_S {config.ping_interval_s}
#!define WORKER_TIMEOUT_MS {config.worker_timeout_ms}
#!define RETRY_AFTER "Retry-After: {config.retry_after_s}\\r\\n"
#!define MAX_MESSAGE_BYTES {config.max_message_bytes}
#!define SANITY_CHECKS "24551"
#!define VIA_TRANSPORTS "^SIP */ *2[.]0 */ *(UDP|TCP|TLS)[[:space:]]"
#!define SOURCE_HEADER "{SOURCE_HEADER}"
#!define PING_FROM "sip:frontdoor@{config.front.hostport}"

debug={config.log_level}
log_stderror=yes
fork=yes
children={config.children}
tcp_children={config.children}
{"" if config.tcp else "disable_tcp=yes"}
auto_aliases=no
{listens}"""


_ROUTING = r"""
server_header="Server: voicebot front door"
user_agent_header="User-Agent: voicebot front door"
sip_warning=no
dns=no
rev_dns=no
use_dns_cache=off
dns_try_ipv6=no
tcp_connection_lifetime=3605

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ipops.so"
loadmodule "pike.so"
loadmodule "htable.so"
loadmodule "dispatcher.so"

modparam("tm", "fr_timer", WORKER_TIMEOUT_MS)
modparam("tm", "fr_inv_timer", 60000)
modparam("tm", "failure_reply_mode", 3)
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", 0)
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", FLOOD_PER_2S)
modparam("pike", "remove_latency", 4)
# one counter per source and time window; an expired window reads as absent
modparam("htable", "htable", "invites=>size=10;autoexpire=10;updateexpire=0;")
modparam("dispatcher", "list_file", DISPATCHER_LIST)
modparam("dispatcher", "flags", 2)  # keep the other workers in an XAVP for failover
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", PING_FROM)
modparam("dispatcher", "ds_ping_interval", PING_INTERVAL_S)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

request_route {
    if (!ds_is_from_list()) {
        route(OUTSIDE_SOURCE);
    }
    if ($ml > MAX_MESSAGE_BYTES) {
        xlog("L_NOTICE", "$ml-byte $rm from $si:$sp refused: too large\n");
        sl_send_reply("513", "Message Too Large");
        exit;
    }
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (!sanity_check(SANITY_CHECKS, "7") || !($(hdr(Via)[0]) =~ VIA_TRANSPORTS)) {
        xlog("L_NOTICE", "malformed $rm from $si:$sp dropped\n");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    if (!is_method("ACK")) {
        if (t_precheck_trans()) {
            t_check_trans();
            exit;
        }
        t_check_trans();
    }
    route(WITHIN_DIALOG);

    remove_hf("Route");
    if (is_method("OPTIONS") && (uri == myself || !ds_is_from_list())) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (ds_is_from_list()) {
        route(FROM_WORKER);
    }
    if (!is_method("INVITE")) {
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }
    route(INVITE_RATE);
    remove_hf(SOURCE_HEADER);
    append_hf("X-Voicebot-Source: $si\r\n");
    record_route();
    route(DISPATCH);
}

# Callers: flood guard, then the allow-list.
route[OUTSIDE_SOURCE] {
    if (!pike_check_req()) {
        exit;
    }
    if (!is_in_subnet("$si", ALLOWED_SOURCES)) {
        xlog("L_NOTICE", "$rm from $si:$sp refused: source not in sip.allow\n");
        if (!is_method("ACK")) {
            sl_send_reply("403", "Forbidden");
        }
        exit;
    }
}

route[INVITE_RATE] {
    $var(rate_key) = $si + "/" + ($Ts / INVITE_WINDOW_S);
    $var(invites) = $shtinc(invites=>$var(rate_key));
    if ($var(invites) == 0) {
        # $shtinc does not create a missing item: this is the first INVITE of the window
        $sht(invites=>$var(rate_key)) = 1;
        $var(invites) = 1;
    }
    if ($var(invites) > INVITES_PER_WINDOW) {
        xlog("L_NOTICE", "INVITE from $si refused: over its rate limit\n");
        append_to_reply(RETRY_AFTER);
        sl_send_reply("503", "Rate Limited");
        exit;
    }
}

route[WITHIN_DIALOG] {
    if (!has_totag()) {
        return;
    }
    if (loose_route()) {
        route(RELAY);
    }
    if (is_method("ACK")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    sl_send_reply("404", "Not Here");
    exit;
}

# A worker starting a call of its own (the agent leg of an attended transfer): route on its Request-URI.
route[FROM_WORKER] {
    if (uri == myself) {
        sl_send_reply("404", "Not Here");
        exit;
    }
    if (is_method("INVITE")) {
        record_route();
    }
    route(RELAY);
}

route[DISPATCH] {
    if (!ds_select_dst(WORKER_SET, "4")) {
        xlog("L_WARN", "no worker available for call $ci from $si: 503\n");
        append_to_reply(RETRY_AFTER);
        sl_send_reply("503", "All Agents Busy");
        exit;
    }
    t_on_failure("NEXT_WORKER");
    route(RELAY);
}

route[RELAY] {
    if (ds_is_from_list()) {
        # requests from the workers go to callers over real networks: the RFC timers, not the worker timeout
        t_set_fr(60000, 30000);
    }
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

failure_route[NEXT_WORKER] {
    if (t_is_canceled()) {
        exit;
    }
    if (t_branch_timeout() && !t_branch_replied()) {
        xlog("L_WARN", "worker $du did not answer call $ci: marked inactive\n");
        ds_mark_dst("ip");
    } else if (!t_check_status("486|503|408")) {
        exit;
    }
    if (ds_next_dst()) {
        t_on_failure("NEXT_WORKER");
        t_relay();
        exit;
    }
    xlog("L_WARN", "all workers busy or down for call $ci from $si: 503\n");
    append_to_reply(RETRY_AFTER);
    t_reply("503", "All Agents Busy");
}

event_route[dispatcher:dst-down] {
    if ($du == $null) {  # a failed OPTIONS ping (a failed call is logged by NEXT_WORKER)
        xlog("L_WARN", "worker $ru is down\n");
    }
}

event_route[dispatcher:dst-up] {
    xlog("L_NOTICE", "worker $ru is up\n");
}
"""
