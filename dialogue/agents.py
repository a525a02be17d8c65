"""The people behind the hotline: agents (SIP URI, languages, topics), the queues they serve and those queues'
business hours, read from a YAML directory (`data/agents.yaml` is the seed). Every problem in the file is reported
as "where: what is wrong"."""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from voicebot.ports import ConfigError

AGENT_STATUSES = ("available", "busy", "wrap_up", "paused", "offline")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
END_OF_DAY = time.max  # written "24:00"
# ISO 639-1: a language code outside this list is a typo ("fre", "english"), not a language.
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en "
    "eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja "
    "jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb "
    "nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq "
    "sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"
)
LANGUAGE_CODES = frozenset(_ISO_639_1.split())
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SIP_USER_RE = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,?/]|%[0-9A-Fa-f]{2})+$")
HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
SIP_PARAM_RE = re.compile(r"^[A-Za-z0-9\-_.!~*'%]+(?:=[A-Za-z0-9\-_.!~*'%\[\]/:&+$]+)?$")
TIME_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")

AGENT_FIELDS = ("id", "name", "sip_uri", "languages", "topics", "status")
QUEUE_FIELDS = ("name", "language", "topics", "priority", "hours", "max_wait_s", "wrap_up_s", "ring_timeout_s")
SCHEDULE_FIELDS = (*WEEKDAYS, "holidays", "timezone")
TOP_FIELDS = ("timezone", "holidays", "hours", "queues", "agents")


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    sip_uri: str
    languages: tuple[str, ...]
    topics: tuple[str, ...]
    status: str = "offline"
    status_since: float = 0.0
    last_call_ended: float | None = None


@dataclass(frozen=True)
class BusinessHours:
    weekly: Mapping[int, tuple[tuple[time, time], ...]]  # 0 = Monday; a missing day is closed
    holidays: frozenset[date] = frozenset()
    timezone: str = "Europe/Paris"

    def is_open(self, at: datetime) -> bool:
        """Aware datetimes are converted to the schedule's timezone; naive ones are taken as its local time."""
        local = at.astimezone(ZoneInfo(self.timezone)) if at.tzinfo else at
        if local.date() in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        return any(
            start <= now and (now < end or end == END_OF_DAY) for start, end in self.weekly.get(local.weekday(), ())
        )


@dataclass(frozen=True)
class QueueSpec:
    name: str
    language: str
    hours: BusinessHours
    topics: tuple[str, ...] = ()
    priority: int = 0  # higher is served first
    max_wait_s: float = 600.0
    wrap_up_s: float = 30.0
    ring_timeout_s: float = 20.0


class _DirectoryLoader(yaml.SafeLoader):
    """Leaves dates as text: PyYAML's own date parsing fails on 2026-13-01 without saying where."""


_DirectoryLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class DirectoryError(ConfigError):
    """Everything wrong with a directory file; str() lists the problems one per line ("where: what")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- SIP URIs -------------------------------------------------------------------------------------


def validate_sip_uri(uri: str) -> str | None:
    """None when `uri` is sip:/sips: user@host[:port][;params], else what is wrong with it (one line)."""
    if not isinstance(uri, str) or not uri:
        return "a SIP URI is required, like sip:alice@192.0.2.10:5060"
    if any(char.isspace() for char in uri):
        return f"{uri!r} contains spaces"
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        return f"{uri!r} does not start with sip: or sips: (like sip:alice@192.0.2.10:5060)"
    address, *params = rest.split(";")
    user, at, hostport = address.rpartition("@")
    if not at or not user:
        return f"{uri!r} has no user part: write sip:USER@HOST"
    if not SIP_USER_RE.match(user):
        return f"{uri!r}: user part {user!r} has characters not allowed in a SIP URI"
    problem = _hostport_problem(hostport)
    if problem:
        return f"{uri!r}: {problem}"
    bad = [param for param in params if not SIP_PARAM_RE.match(param)]
    return f"{uri!r}: parameter ';{bad[0]}' is malformed (write ;name or ;name=value)" if bad else None


def _hostport_problem(hostport: str) -> str | None:
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return f"IPv6 host {hostport!r} is not like [2001:db8::1]:5060"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        return _port_problem(port[1:]) if port else None
    host, colon, port = hostport.partition(":")
    if not host:
        return "no host after '@'"
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not an IPv4 address"
    elif not all(HOST_LABEL_RE.match(label) for label in host.split(".")):
        return f"{host!r} is not a host name or IP address"
    return _port_problem(port) if colon else None


def _port_problem(port: str) -> str | None:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"port {port!r} is not a number from 1 to 65535"
    return None


def agent_problems(agent: Agent) -> list[tuple[str, str]]:
    """What is wrong with one agent, as (field, message) pairs; empty when valid. Used by the directory, the ACD
    and the console's agent form."""
    problems = []
    if not NAME_RE.match(agent.id):
        problems.append(("id", f"{agent.id!r} must be lower-case letters, digits, '_', '.' or '-'"))
    if not agent.name.strip():
        problems.append(("name", "must not be empty"))
    sip_problem = validate_sip_uri(agent.sip_uri)
    if sip_problem:
        problems.append(("sip_uri", sip_problem))
    if not agent.languages:
        problems.append(("languages", "list at least one language, like [fr, en]"))
    problems += [("languages", f"unknown language {code!r} (use ISO 639-1 codes like fr, en)")
                 for code in agent.languages if code not in LANGUAGE_CODES]  # fmt: skip
    if agent.status not in AGENT_STATUSES:
        problems.append(("status", f"unknown status {agent.status!r} (one of {', '.join(AGENT_STATUSES)})"))
    return problems


# --- Directory file -------------------------------------------------------------------------------


def load_directory(path: Path) -> tuple[list[Agent], list[QueueSpec]]:
    """Agents and queues of a directory file; DirectoryError lists every problem as "FILE where: what"."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"agent directory not found: {path} (copy data/agents.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read agent directory {path}: {exc}") from exc
    return parse_directory(text, source=str(path))


def parse_directory(text: str, source: str = "<directory>") -> tuple[list[Agent], list[QueueSpec]]:
    try:
        raw = yaml.load(text, Loader=_DirectoryLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark else source
        raise DirectoryError([f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    reader = _DirectoryReader(source)
    agents, queues = reader.read(raw)
    if reader.problems:
        raise DirectoryError(reader.problems)
    return agents, queues


class _DirectoryReader:
    """Collects problems instead of stopping at the first, so one run of the validator shows them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.source} {where}: {what}")

    def read(self, raw: Any) -> tuple[list[Agent], list[QueueSpec]]:
        if not isinstance(raw, dict):
            self.problem("top level", "must be a mapping with timezone, holidays, hours, queues and agents")
            return [], []
        self.check_fields(raw, TOP_FIELDS, "top level")
        timezone = self.timezone(raw.get("timezone", "Europe/Paris"), "timezone")
        calendars = self.calendars(raw.get("holidays") or {})
        schedules = {
            name: self.schedule(spec, f"hours.{name}", timezone, calendars)
            for name, spec in self.mapping(raw.get("hours"), "hours").items()
        }
        queues = [
            self.queue(item, f"queues[{index}]", schedules) for index, item in enumerate(self.items(raw, "queues"))
        ]
        agents = [self.agent(item, f"agents[{index}]") for index, item in enumerate(self.items(raw, "agents"))]
        self.check_unique([queue.name for queue in queues if queue], "queues", "queue name")
        self.check_unique([agent.id for agent in agents if agent], "agents", "agent id")
        return [agent for agent in agents if agent], [queue for queue in queues if queue]

    def check_fields(self, data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" — did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
                self.problem(where, f"unknown field '{key}'{hint}")

    def check_unique(self, names: list[str], where: str, what: str) -> None:
        for name in sorted({name for name in names if names.count(name) > 1}):
            self.problem(where, f"duplicate {what} {name!r}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.problem(where, "must be a mapping")
        return {}

    def items(self, raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = raw.get(key)
        if not isinstance(value, list) or not value:
            self.problem(key, "must be a non-empty list")
            return []
        return value

    def timezone(self, name: Any, where: str) -> str:
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(where, f"unknown timezone {name!r} (an IANA name like Europe/Paris)")
            return "Europe/Paris"
        return str(name)

    def calendars(self, raw: Any) -> dict[str, frozenset[date]]:
        calendars = {}
        for name, days in self.mapping(raw, "holidays").items():
            if not isinstance(days, list):
                self.problem(f"holidays.{name}", "must be a list of dates YYYY-MM-DD")
                continue
            calendars[name] = frozenset(
                filter(None, (self.day(day, f"holidays.{name}[{i}]") for i, day in enumerate(days)))
            )
        return calendars

    def day(self, value: Any, where: str) -> date | None:
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.problem(where, f"{value!r} is not a date YYYY-MM-DD")
            return None

    def schedule(self, spec: Any, where: str, timezone: str, calendars: dict[str, frozenset[date]]) -> BusinessHours:
        spec = self.mapping(spec, where)
        self.check_fields(spec, SCHEDULE_FIELDS, where)
        weekly = {}
        for index, day in enumerate(WEEKDAYS):
            if day in spec:
                ranges = self.ranges(spec[day], f"{where}.{day}")
                if ranges:
                    weekly[index] = ranges
        holidays = spec.get("holidays")
        if holidays is not None and holidays not in calendars:
            known = ", ".join(calendars) or "none defined"
            self.problem(f"{where}.holidays", f"unknown holiday calendar {holidays!r} (known: {known})")
        zone = self.timezone(spec["timezone"], f"{where}.timezone") if "timezone" in spec else timezone
        return BusinessHours(weekly, calendars.get(holidays, frozenset()) if holidays else frozenset(), zone)

    def ranges(self, value: Any, where: str) -> tuple[tuple[time, time], ...]:
        if value in (None, "closed"):
            return ()
        parts = value if isinstance(value, list) else str(value).split(",")
        ranges = sorted(filter(None, (self.time_range(str(part).strip(), where) for part in parts)))
        for (_, end), (start, _) in itertools.pairwise(ranges):
            if start < end:
                self.problem(where, f"time ranges overlap around {start:%H:%M}")
        return tuple(ranges)

    def time_range(self, text: str, where: str) -> tuple[time, time] | None:
        match = TIME_RANGE_RE.match(text)
        hours_minutes = [int(group) for group in match.groups()] if match else []
        if not match or any(m > 59 for m in hours_minutes[1::2]) or any(h > 24 for h in hours_minutes[::2]):
            self.problem(where, f"{text!r} is not a time range like 08:30-12:00 (or 'closed')")
            return None
        start_h, start_m, end_h, end_m = hours_minutes
        if start_h == 24 or (end_h == 24 and end_m):
            self.problem(where, f"{text!r}: 24:00 can only end a range")
            return None
        start, end = time(start_h, start_m), END_OF_DAY if end_h == 24 else time(end_h, end_m)
        if start >= end:
            self.problem(where, f"{text!r} ends before it starts")
            return None
        return start, end

    def queue(self, item: Any, where: str, schedules: dict[str, BusinessHours]) -> QueueSpec | None:
        if not isinstance(item, dict):
            self.problem(where, "must be a mapping with name, language and hours")
            return None
        where = f"{where} ({item.get('name', '?')})"
        problems_before = len(self.problems)
        self.check_fields(item, QUEUE_FIELDS, where)
        name, language, hours = item.get("name"), item.get("language"), item.get("hours")
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.problem(f"{where}.name", f"{name!r} must be lower-case letters, digits, '_', '.' or '-'")
        if language not in LANGUAGE_CODES:
            self.problem(f"{where}.language", f"unknown language {language!r} (use ISO 639-1 codes like fr, en)")
        if hours not in schedules:
            self.problem(f"{where}.hours", f"unknown schedule {hours!r} (defined under hours: {', '.join(schedules)})")
        numbers = {key: self.number(item, key, where) for key in ("max_wait_s", "wrap_up_s", "ring_timeout_s")}
        priority = item.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            self.problem(f"{where}.priority", f"{priority!r} is not a whole number")
        topics = self.strings(item.get("topics", []), f"{where}.topics")
        if len(self.problems) > problems_before:
            return None
        timings = {key: value for key, value in numbers.items() if value is not None}
        return QueueSpec(str(name), str(language), schedules[str(hours)], topics, int(priority), **timings)

    def number(self, item: dict[str, Any], key: str, where: str) -> float | None:
        if key not in item:
            return None
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(f"{where}.{key}", f"{value!r} is not a positive number of seconds")
            return None
        return float(value)

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.problem(where, "must be a list of names, like [fr, en]")
            return ()
        return tuple(value)

    def agent(self, item: Any, where: str) -> Agent | None:
        if not isinstance(item, dict):
            self.problem(where, "must be a mapping with id, name, sip_uri, languages and topics")
            return None
        where = f"{where} ({item.get('id', '?')})"
        self.check_fields(item, AGENT_FIELDS, where)
        missing = [key for key in ("id", "name", "sip_uri", "languages") if key not in item]
        if missing:
            self.problem(where, f"missing {', '.join(missing)}")
            return None
        reported = len(self.problems)
        languages = self.strings(item["languages"], f"{where}.languages")
        said_languages = len(self.problems) > reported
        agent = Agent(
            id=str(item["id"]), name=str(item["name"]), sip_uri=str(item["sip_uri"]), languages=languages,
            topics=self.strings(item.get("topics", []), f"{where}.topics"), status=str(item.get("status", "offline")),
        )  # fmt: skip
        for field_name, message in agent_problems(agent):
            if not (said_languages and field_name == "languages"):
                self.problem(f"{where}.{field_name}", message)
        return agent
