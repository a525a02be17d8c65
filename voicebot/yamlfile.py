"""Reading the YAML files users edit (settings, prompts, voices, dialogues) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from voicebot.ports import ConfigError


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The file's top-level mapping; ConfigError names the file and what is wrong with it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must be a mapping at the top level")
    return raw
