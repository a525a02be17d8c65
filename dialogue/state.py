"""Where the dialogue data modules keep their runtime databases (KB, cases, tickets, feedback)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"


def state_dir() -> Path:
    """`$VOICEBOT_STATE_DIR`, else `<repo>/.cache/state`; created on demand."""
    path = Path(os.environ.get("VOICEBOT_STATE_DIR", str(REPO_ROOT / ".cache" / "state")))
    path.mkdir(parents=True, exist_ok=True)
    return path
