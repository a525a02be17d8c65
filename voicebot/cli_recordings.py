"""`voicebot recordings fetch|add-key|rotate`: the real-speech test clips, and the keys of encrypted call recordings.

Rotation: `add-key` makes a new key current (new recordings use it at once; old ones stay readable while their key
is in the keyring); `rotate` re-encrypts every older recording under the current key, after which the old keys can
be removed from the keyring."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogue.state import state_dir
from voicebot.call_schema import CALLS_DB_NAME, open_calls_db
from voicebot.config import load_settings
from voicebot.ports import ConfigError
from voicebot.recording_crypto import SUFFIX, Keyring, add_key, load_keyring, reencrypt

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    rewritten: list[Path] = field(default_factory=list)
    already_current: int = 0
    failed: list[str] = field(default_factory=list)  # one line per file left as it was


def rotate_recordings(directory: Path, keyring: Keyring, calls_db: Path | None) -> RotationReport:
    """Re-encrypts every recording in `directory` not yet under the current key; updates their rows' key id."""
    report = RotationReport()
    files = sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []
    for file in files:
        try:
            if reencrypt(file, keyring):
                report.rewritten.append(file)
            else:
                report.already_current += 1
        except ConfigError as exc:
            report.failed.append(str(exc))
    if report.rewritten and calls_db is not None and calls_db.exists():
        db = open_calls_db(calls_db)
        try:
            for file in report.rewritten:
                db.execute("UPDATE recordings SET key_id = ? WHERE path IN (?, ?)",
                           [keyring.current, str(file), str(file.absolute())])  # fmt: skip
        finally:
            db.conn.close()
    return report


def _recording_settings(args: argparse.Namespace) -> tuple[Path, Path]:
    recording = load_settings(args.config).recording
    keyring = Path(args.keyring) if args.keyring else recording.keyring
    if keyring is None:
        raise ConfigError("no keyring: set recording.keyring in the settings or give --keyring PATH")
    return keyring, recording.directory()


def cmd_add_key(args: argparse.Namespace) -> int:
    keyring, _ = _recording_settings(args)
    key_id = add_key(keyring, args.id)
    print(f"key {key_id} added to {keyring} and made current: new recordings use it; run `voicebot recordings "
          "rotate` to re-encrypt the older ones")  # fmt: skip
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    keyring_path, directory = _recording_settings(args)
    keyring = load_keyring(keyring_path)
    report = rotate_recordings(directory, keyring, state_dir() / CALLS_DB_NAME)
    for problem in report.failed:
        print(f"not rotated: {problem}")
    print(f"{len(report.rewritten)} recording(s) re-encrypted under key {keyring.current}, "
          f"{report.already_current} already under it, {len(report.failed)} failed ({directory})")  # fmt: skip
    return 1 if report.failed else 0


def add_recordings_parser(sub: Any, fetch: Callable[[argparse.Namespace], int]) -> None:
    recordings = sub.add_parser("recordings", help="test speech clips (fetch); call recording keys (add-key, rotate)")
    actions = recordings.add_subparsers(dest="recordings_action", required=True)
    actions.add_parser("fetch", help="download the real-speech test recordings").set_defaults(func=fetch)
    new_key = actions.add_parser("add-key", help="add a fresh key to the recording keyring and make it current")
    new_key.add_argument("--id", help="key id (default: k + the UTC time)")
    new_key.set_defaults(func=cmd_add_key)
    rotate = actions.add_parser("rotate", help="re-encrypt older call recordings under the current key")
    rotate.set_defaults(func=cmd_rotate)
    for parser in (new_key, rotate):
        parser.add_argument("--keyring", help="keyring file (default: recording.keyring of the settings)")
        parser.add_argument("--config", help="YAML settings file (default: embedded defaults, or $VOICEBOT_CONFIG)")
