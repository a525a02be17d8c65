"""The `console` section of the settings: where the supervisor/agent web console listens and how long a login lasts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: bool = True  # started by `voicebot serve`
    host: str = "127.0.0.1"  # loopback by default: put a TLS reverse proxy in front to reach it from elsewhere
    port: int = 8080
    secret_file: Path | None = None  # session-signing key; None = generated into the state dir (mode 600)
    session_max_age_s: int = 8 * 3600
    login_max_failures: int = 5  # per user name and client address ...
    login_window_s: int = 300  # ... within this many seconds, then 429 until the window has passed
