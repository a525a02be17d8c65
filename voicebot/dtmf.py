"""Key presses → dialogue entries, clock-free: time is the caller audio the channel has delivered."""

from __future__ import annotations

import json


def dtmf_message(keys: str) -> str:
    """DTMF reaches Rasa as an intent message with the keys as an entity."""
    return "/dtmf" + json.dumps({"digits": keys})


class DtmfCollector:
    """One entry per burst of keys: complete on the terminator ("#"), or after `timeout_ms` without a key.

    "0" alone (the universal "operator" key) completes at once, so a caller asking for a human never waits.
    """

    def __init__(self, timeout_ms: int = 1500, terminator: str = "#", immediate: tuple[str, ...] = ("0",)) -> None:
        self.timeout_ms = timeout_ms
        self.terminator = terminator
        self.immediate = immediate
        self._digits = ""
        self._quiet_ms = 0

    @property
    def pending(self) -> bool:
        return bool(self._digits)

    def press(self, key: str) -> str | None:
        if len(key) != 1 or key not in "0123456789*#ABCD":
            raise ValueError(f"not a DTMF key: {key!r}")
        self._digits += key
        self._quiet_ms = 0
        if key == self.terminator or self._digits in self.immediate:
            return self._take()
        return None

    def advance(self, ms: float) -> str | None:
        """Called as caller audio arrives; returns the entry once the caller stopped pressing keys."""
        if not self._digits:
            return None
        self._quiet_ms += int(ms)
        return self._take() if self._quiet_ms >= self.timeout_ms else None

    def _take(self) -> str:
        entry, self._digits, self._quiet_ms = self._digits, "", 0
        return entry
