"""Settings live in files edited outside voicebot: `voicebot serve` compares what it starts with against the last
settings it recorded and writes the difference to the audit log (secrets only as a fingerprint)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from voicebot.audit import Audit
from voicebot.config import Settings

SECRET_WORDS = ("token", "secret", "password", "key")


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able values; a secret becomes a short fingerprint, so a change shows but not the value."""
    return {name: _plain(name, value) for name, value in dataclasses.asdict(settings).items()}


def _plain(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _plain(name, item) for name, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(key, item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value and isinstance(value, str) and any(word in key.lower() for word in SECRET_WORDS):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
    return value


def record_settings_change(audit: Audit, settings: Settings, actor: str = "serve") -> bool:
    """Audits the settings when they differ from the last ones recorded; True when an entry was written."""
    current = settings_snapshot(settings)
    last = audit.latest("settings_change")
    before = last.after if last is not None else None
    if before == current:
        return False
    old = {k: v for k, v in before.items() if current.get(k) != v} if isinstance(before, dict) else None
    audit.record(actor, "settings_change", "settings", old, current)
    return True
