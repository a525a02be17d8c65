"""Console users (admin, supervisor, agent) with scrypt password hashes, and the failed-login throttle; both in the
operations database so that every console process sees the same users and the same failures."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dialogue.ops_db import connect

ROLES = ("admin", "supervisor", "agent")
MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# scrypt cost: 16 MiB and ~50 ms per hash on this kind of machine; stored with each hash so it can be raised later.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, agent_id TEXT, password_hash TEXT NOT NULL, created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS console_login_failures (name TEXT NOT NULL, ip TEXT NOT NULL, at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_login_failures_by_who ON console_login_failures (name, ip, at)",
)


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: str
    agent_id: str | None = None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
    )
    return hmac.compare_digest(candidate.hex(), digest)


# Checked against when the user does not exist, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def _create_tables(db_path: Path) -> None:
    with connect(db_path) as db:
        for statement in _SCHEMA:
            db.execute(statement)


def user_problems(name: str, role: str, password: str, agent_id: str | None) -> list[str]:
    """What is wrong with a new user, one message per problem (empty: fine)."""
    problems = []
    if not _NAME.fullmatch(name):
        problems.append(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        problems.append(f"role {role!r}: must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if role == "agent" and not agent_id:
        problems.append("an agent user needs the id of its ACD agent (--agent ID)")
    return problems


class UserStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        _create_tables(db_path)

    def add(self, name: str, role: str, password: str, agent_id: str | None = None) -> ConsoleUser:
        """Raises ValueError with every problem (bad name, role, short password, existing user)."""
        problems = user_problems(name, role, password, agent_id)
        if problems:
            raise ValueError("; ".join(problems))
        password_hash = hash_password(password)
        with connect(self.db_path) as db:
            if db.execute("SELECT 1 FROM console_users WHERE name = ?", [name]).fetchone():
                raise ValueError(f"user {name!r} already exists")
            db.execute(
                "INSERT INTO console_users (name, role, agent_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                [name, role, agent_id or None, password_hash, time.time()],
            )
        return ConsoleUser(name, role, agent_id or None)

    def get(self, name: str) -> ConsoleUser | None:
        with connect(self.db_path) as db:
            row = db.execute("SELECT name, role, agent_id FROM console_users WHERE name = ?", [name]).fetchone()
        return ConsoleUser(*row) if row else None

    def all(self) -> list[ConsoleUser]:
        with connect(self.db_path) as db:
            rows = db.execute("SELECT name, role, agent_id FROM console_users ORDER BY name").fetchall()
        return [ConsoleUser(*row) for row in rows]

    def authenticate(self, name: str, password: str) -> ConsoleUser | None:
        with connect(self.db_path) as db:
            row = db.execute(
                "SELECT name, role, agent_id, password_hash FROM console_users WHERE name = ?", [name]
            ).fetchone()
        if row is None:
            password_matches(password, _DUMMY_HASH)
            return None
        return ConsoleUser(*row[:3]) if password_matches(password, row[3]) else None


class LoginThrottle:
    """At most `max_failures` failed logins per user name and client address within `window_s`."""

    def __init__(
        self, db_path: Path, max_failures: int, window_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db_path = db_path
        _create_tables(db_path)
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock

    def blocked_for_s(self, name: str, ip: str) -> float:
        """0 when a login may be tried; else how long until the oldest failure in the window expires."""
        since = self.clock() - self.window_s
        with connect(self.db_path) as db:
            rows = db.execute(
                "SELECT at FROM console_login_failures WHERE name = ? AND ip = ? AND at > ? ORDER BY at DESC LIMIT ?",
                [name, ip, since, self.max_failures],
            ).fetchall()
        if len(rows) < self.max_failures:
            return 0.0
        return max(0.0, rows[-1][0] - since)

    def failed(self, name: str, ip: str) -> None:
        now = self.clock()
        with connect(self.db_path) as db:
            db.execute("DELETE FROM console_login_failures WHERE at <= ?", [now - self.window_s])
            db.execute("INSERT INTO console_login_failures (name, ip, at) VALUES (?, ?, ?)", [name, ip, now])

    def succeeded(self, name: str, ip: str) -> None:
        with connect(self.db_path) as db:
            db.execute("DELETE FROM console_login_failures WHERE name = ? AND ip = ?", [name, ip])
