"""The `recording` and `retention` sections of the settings: whether calls are recorded (encrypted at rest, see
voicebot/recording_crypto.py) and how long each kind of call data is kept (voicebot/retention.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dialogue.state import state_dir


@dataclass(frozen=True)
class RecordingSettings:
    enabled: bool = False  # callers then hear the recording notice after the AI disclosure
    keyring: Path | None = None  # YAML/JSON: `current: ID` and `keys: {ID: base64 of 32 random bytes}`
    dir: Path | None = None  # None: <state dir>/recordings

    def directory(self) -> Path:
        return self.dir if self.dir is not None else state_dir() / "recordings"


@dataclass(frozen=True)
class RetentionSettings:
    recordings_days: int = 30  # encrypted recordings (file and row)
    transcripts_days: int = 90  # what people said: transcripts, replies, summaries, error texts, callback numbers
    metadata_days: int = 365  # the call rows themselves and all their child rows
    run_every_s: int = 3600  # `voicebot serve` applies the policy this often
    confirm_destructive_policy: bool = False  # let a policy that deletes everything (0 days...) run unattended
