"""Agent directory: SIP URI validation, business hours (holidays, timezones), the seed file, validation messages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialogue.acd import skills_match
from dialogue.agents import BusinessHours, DirectoryError, load_directory, parse_directory, validate_sip_uri
from dialogue.state import DATA_DIR
from voicebot.ports import ConfigError

PARIS = ZoneInfo("Europe/Paris")
OFFICE = BusinessHours(
    weekly={day: ((time(8, 30), time(17, 30)),) for day in range(5)} | {5: ((time(9, 0), time(12, 0)),)},
    holidays=frozenset({date(2026, 5, 1)}),
)

VALID_DIRECTORY = """
timezone: Europe/Paris
holidays:
  france: [2026-05-01]
hours:
  office: {mon: "08:30-17:30", sat: "09:00-12:00", holidays: france}
queues:
  - {name: general-fr, language: fr, hours: office}
agents:
  - {id: zoe, name: Zoé, sip_uri: "sip:zoe@127.0.0.1:5097", languages: [fr], topics: [general]}
"""


def french_public_holidays(year: int) -> set[date]:
    """Computed independently of the seed file: fixed days plus Easter Monday, Ascension and Whit Monday."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    easter = date(year, month, day + 1)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    moving = [easter + timedelta(days=offset) for offset in (1, 39, 50)]
    return {date(year, m, d) for m, d in fixed} | set(moving)


# --- SIP URIs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "sip:alice@127.0.0.1:5091",
        "sips:bob@hotline.city.example",
        "sip:agent-7@pbx.city.example;transport=tcp",
        "sip:alice@[2001:db8::1]:5060",
        "sip:%41lice@[::1]",
        "sip:+33123456789@gateway.example;user=phone",
    ],
)
def test_valid_sip_uris_pass(uri: str) -> None:
    assert validate_sip_uri(uri) is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("alice@127.0.0.1", "does not start with sip: or sips:"),
        ("http://alice@example.org", "does not start with sip: or sips:"),
        ("sip:127.0.0.1:5060", "has no user part"),
        ("sip:alice@", "no host after '@'"),
        ("sip:alice@host:99999", "port '99999' is not a number from 1 to 65535"),
        ("sip:alice@host:", "port '' is not a number"),
        ("sip:alice@300.1.1.1", "'300.1.1.1' is not an IPv4 address"),
        ("sip:alice@-pbx-.example", "is not a host name or IP address"),
        ("sip:alice@[2001:db8::zz]", "is not an IPv6 address"),
        ("sip:al ice@host", "contains spaces"),
        ("sip:al<ice@host", "user part 'al<ice' has characters not allowed"),
        ("sip:alice@host;=tcp", "parameter ';=tcp' is malformed"),
        ("", "a SIP URI is required"),
    ],
)
def test_malformed_sip_uris_say_what_is_wrong(uri: str, message: str) -> None:
    problem = validate_sip_uri(uri)
    assert problem is not None and message in problem


# --- Business hours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ("2026-03-02 08:29", False),  # Monday before opening
        ("2026-03-02 08:30", True),
        ("2026-03-02 17:29", True),
        ("2026-03-02 17:30", False),  # closing time is closed
        ("2026-03-07 11:59", True),  # Saturday morning
        ("2026-03-07 12:00", False),
        ("2026-03-08 10:00", False),  # Sunday
        ("2026-05-01 10:00", False),  # a Friday, but a public holiday
        ("2026-04-30 10:00", True),
    ],
)
def test_business_hours_by_local_time_and_holiday(local: str, is_open: bool) -> None:
    at = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=PARIS)
    assert OFFICE.is_open(at) is is_open
    assert OFFICE.is_open(at.replace(tzinfo=None)) is is_open  # naive = the schedule's local time


def test_business_hours_follow_the_timezone_and_summer_time() -> None:
    utc = timezone.utc  # noqa: UP017 (keeps the test readable next to 3.10 code)
    assert not OFFICE.is_open(datetime(2026, 1, 5, 7, 15, tzinfo=utc))  # 08:15 in Paris (UTC+1)
    assert OFFICE.is_open(datetime(2026, 1, 5, 7, 45, tzinfo=utc))  # 08:45 in Paris
    assert OFFICE.is_open(datetime(2026, 7, 6, 6, 45, tzinfo=utc))  # 08:45 in Paris (UTC+2, summer time)
    assert not OFFICE.is_open(datetime(2026, 7, 6, 15, 45, tzinfo=utc))  # 17:45 in Paris
    montreal = BusinessHours(OFFICE.weekly, frozenset(), "America/Montreal")
    assert montreal.is_open(datetime(2026, 7, 6, 15, 45, tzinfo=utc))  # 11:45 in Montreal
    # A holiday is a local date: 22:30 UTC on 30 April is already 1 May in Paris.
    always_but_may_day = BusinessHours({day: ((time(0, 0), time.max),) for day in range(7)}, OFFICE.holidays)
    assert always_but_may_day.is_open(datetime(2026, 4, 30, 21, 30, tzinfo=utc))  # 23:30 on 30 April in Paris
    assert not always_but_may_day.is_open(datetime(2026, 4, 30, 22, 30, tzinfo=utc))  # 00:30 on 1 May in Paris


def test_whole_day_ranges_include_midnight_and_the_last_second() -> None:
    always = BusinessHours({day: ((time(0, 0), time.max),) for day in range(7)}, frozenset(), "Europe/Paris")
    assert always.is_open(datetime(2026, 12, 25, 0, 0, tzinfo=PARIS))
    assert always.is_open(datetime(2026, 12, 25, 23, 59, 59, tzinfo=PARIS))


# --- The seed directory ----------------------------------------------------------------------------------


def test_seed_directory_is_valid_and_every_queue_has_agents() -> None:
    agents, queues = load_directory(DATA_DIR / "agents.yaml")
    names = {queue.name for queue in queues}
    assert {"general-fr", "general-en", "civil-status-fr", "emergency"} <= names
    assert {queue.language for queue in queues} == {"fr", "en"}
    for queue in queues:
        assert any(skills_match(agent, queue) for agent in agents), f"nobody can take {queue.name}"
    assert all(validate_sip_uri(agent.sip_uri) is None for agent in agents)
    assert all(agent.status == "offline" for agent in agents)


def test_seed_holidays_are_the_french_public_holidays_of_2026_and_2027() -> None:
    _, queues = load_directory(DATA_DIR / "agents.yaml")
    general = next(queue for queue in queues if queue.name == "general-fr")
    assert general.hours.holidays == french_public_holidays(2026) | french_public_holidays(2027)
    saturday_morning = datetime(2026, 3, 7, 10, 0, tzinfo=PARIS)
    assert general.hours.is_open(saturday_morning)
    assert not general.hours.is_open(datetime(2027, 5, 6, 10, 0, tzinfo=PARIS))  # Ascension 2027
    emergency = next(queue for queue in queues if queue.name == "emergency")
    assert emergency.hours.is_open(datetime(2026, 12, 25, 3, 0, tzinfo=PARIS))


# --- Validation messages --------------------------------------------------------------------------------


def problems_of(text: str) -> list[str]:
    with pytest.raises(DirectoryError) as caught:
        parse_directory(text, source="agents.yaml")
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_a_valid_directory_parses() -> None:
    agents, queues = parse_directory(VALID_DIRECTORY)
    assert [agent.id for agent in agents] == ["zoe"]
    assert queues[0].hours.weekly == {0: ((time(8, 30), time(17, 30)),), 5: ((time(9, 0), time(12, 0)),)}
    assert queues[0].hours.holidays == {date(2026, 5, 1)}
    assert (queues[0].max_wait_s, queues[0].wrap_up_s, queues[0].ring_timeout_s) == (600.0, 30.0, 20.0)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"sip:zoe@127.0.0.1:5097"', '"zoe@127.0.0.1"', "agents.yaml agents[0] (zoe).sip_uri: 'zoe@127.0.0.1' does"),
        ('"sip:zoe@127.0.0.1:5097"', '"sip:zoe@127.0.0.1:70000"', "(zoe).sip_uri: 'sip:zoe@127.0.0.1:70000': port"),
        ("sip_uri:", "sip_url:", "agents[0] (zoe): unknown field 'sip_url' — did you mean 'sip_uri'?"),
        ("sip_uri:", "sip_url:", "agents[0] (zoe): missing sip_uri"),
        ("languages: [fr]", "languages: [french]", "agents[0] (zoe).languages: unknown language 'french'"),
        ("topics: [general]}", "topics: [general], status: away}", "agents[0] (zoe).status: unknown status 'away'"),
        ('mon: "08:30-17:30"', 'mon: "8h30-17:30"', "hours.office.mon: '8h30-17:30' is not a time range like"),
        ('mon: "08:30-17:30"', 'mon: "17:30-08:30"', "hours.office.mon: '17:30-08:30' ends before it starts"),
        ('mon: "08:30-17:30"', 'mon: "08:30-12:00, 11:00-17:30"', "hours.office.mon: time ranges overlap around 11:00"),
        ('mon: "08:30-17:30"', 'monday: "08:30-17:30"', "hours.office: unknown field 'monday' — did you mean 'mon'?"),
        ("holidays: france}", "holidays: francia}", "hours.office.holidays: unknown holiday calendar 'francia'"),
        ("france: [2026-05-01]", "france: [2026-13-01]", "holidays.france[0]: '2026-13-01' is not a date YYYY-MM-DD"),
        ("timezone: Europe/Paris", "timezone: Europe/Pariss", "timezone: unknown timezone 'Europe/Pariss'"),
        ("hours: office}", "hours: offices}", "queues[0] (general-fr).hours: unknown schedule 'offices'"),
        ("language: fr, hours", "language: xx, hours", "queues[0] (general-fr).language: unknown language 'xx'"),
        ("hours: office}", "hours: office, wrap_up_s: -5}", "queues[0] (general-fr).wrap_up_s: -5 is not a positive"),
        ("hours: office}", "hours: office, priority: high}", "queues[0] (general-fr).priority: 'high' is not a whole"),
    ],
)
def test_directory_problems_say_where_and_what(old: str, new: str, expected: str) -> None:
    assert old in VALID_DIRECTORY
    problems = problems_of(VALID_DIRECTORY.replace(old, new))
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once_including_duplicates() -> None:
    agent = '  - {id: zoe, name: Zoé, sip_uri: "sip:zoe@127.0.0.1:5097", languages: [fr], topics: [general]}\n'
    text = VALID_DIRECTORY.replace("08:30-17:30", "8:30-17:30") + agent.replace("5097", "99999")
    problems = problems_of(text)
    assert "agents.yaml agents: duplicate agent id 'zoe'" in problems
    assert any("hours.office.mon" in problem for problem in problems)
    assert any("agents[1] (zoe).sip_uri" in problem for problem in problems)


def test_yaml_syntax_errors_name_the_line() -> None:
    problems = problems_of(VALID_DIRECTORY.replace("queues:", "queues: [unclosed"))
    assert problems[0].startswith("agents.yaml line ") and "not valid YAML" in problems[0]


def test_missing_directory_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="agent directory not found"):
        load_directory(tmp_path / "agents.yaml")
