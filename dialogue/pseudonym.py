"""Callers are counted and linked across calls by a keyed hash of their number, never by the number itself.

The key is a random secret kept in the state directory (created on first use, readable by the owner only):
without it the hashes cannot be turned back into numbers by trying every phone number. Deleting the file
unlinks all past calls from future ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import cache
from pathlib import Path

from dialogue.state import state_dir

KEY_FILE = "caller-key"


@cache
def _key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def caller_key(path: Path | None = None) -> bytes:
    return _key(path or state_dir() / KEY_FILE)


def pseudonym(caller: str, key: bytes | None = None) -> str:
    """A stable 16-hex-digit pseudonym of a caller URI/number under this installation's key."""
    digest = hmac.new(key if key is not None else caller_key(), caller.encode(), hashlib.sha256)
    return digest.hexdigest()[:16]
