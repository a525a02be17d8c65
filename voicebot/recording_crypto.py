"""Call recordings encrypted at rest: AES-256-GCM in chunks, with keys from a keyring file named in the settings.

File layout (all integers big-endian):

    header  MAGIC (6 bytes) | version (1) | key id length (1) | key id (UTF-8) | nonce prefix (7) | chunk size (4)
    chunk   final flag (1) | ciphertext length (4) | ciphertext (plaintext + 16-byte GCM tag)

Every chunk is sealed with the nonce `prefix | chunk number (4) | final flag (1)` and the whole header as associated
data (the STREAM construction): editing, reordering, dropping or appending chunks, or changing the key id, fails
authentication. A long call is encrypted and decrypted one chunk at a time, never held twice in memory.

Rotation: `add_key` makes a new key current (new recordings use it); old files stay readable as long as their key
id remains in the keyring; `reencrypt` rewrites a file under the current key (temporary file, then atomic rename).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from voicebot.ports import ConfigError
from voicebot.yamlfile import read_mapping

log = logging.getLogger(__name__)

MAGIC = b"VBREC\x00"
VERSION = 1
CHUNK_SIZE = 256 * 1024  # plaintext bytes per chunk: ~8 s of 16 kHz stereo
MAX_CHUNK_SIZE = 16 * 1024 * 1024
KEY_BYTES = 32
TAG_BYTES = 16
PREFIX_BYTES = 7
SUFFIX = ".vbrec"
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ADD_KEY_FIX = "create one with `voicebot recordings add-key --keyring {path}`"


class RecordingKeyError(ConfigError):
    """The keyring is missing or unusable, or lacks the key a recording was encrypted with."""


class RecordingFileError(ConfigError):
    """A recording file that is not one, was truncated, or fails authentication (tampered or corrupt)."""


@dataclass(frozen=True)
class Keyring:
    path: Path
    current: str
    keys: dict[str, bytes]

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise RecordingKeyError(
                f"keyring {self.path} has no key {key_id!r}: put the key that encrypted the recording back under "
                f"`keys:` (known: {', '.join(sorted(self.keys))})"
            ) from None


_cache: dict[Path, tuple[tuple[int, int], Keyring]] = {}


def load_keyring(path: Path | None) -> Keyring:
    """The keyring at `path` (re-read when the file changes). RecordingKeyError names the file and the fix."""
    if path is None:
        raise RecordingKeyError("recording.keyring is not set: point it at a keyring file, " + ADD_KEY_FIX.format(
            path="PATH"))  # fmt: skip
    try:
        stat = path.stat()
    except OSError:
        raise RecordingKeyError(f"recording keyring {path} not found: {ADD_KEY_FIX.format(path=path)}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if stat.st_mode & 0o077:
        log.warning("recording keyring %s is readable by other users: chmod 600 it", path)
    keyring = _parse_keyring(path)
    _cache[path] = (stamp, keyring)
    return keyring


def _parse_keyring(path: Path) -> Keyring:
    try:
        raw = read_mapping(path, "recording keyring")
    except ConfigError as exc:
        raise RecordingKeyError(str(exc)) from exc
    keys_raw = raw.get("keys")
    if not isinstance(keys_raw, dict) or not keys_raw:
        raise RecordingKeyError(f"recording keyring {path} has no `keys:` mapping: {ADD_KEY_FIX.format(path=path)}")
    keys = {str(key_id): _decode_key(path, str(key_id), value) for key_id, value in keys_raw.items()}
    current = str(raw.get("current", ""))
    if current not in keys:
        raise RecordingKeyError(
            f"recording keyring {path}: `current: {current}` is not one of its keys ({', '.join(sorted(keys))}): "
            "name the key new recordings use"
        )
    return Keyring(path, current, keys)


def _decode_key(path: Path, key_id: str, value: Any) -> bytes:
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise RecordingKeyError(f"recording keyring {path}: key id {key_id!r} must be 1-64 letters, digits, . _ -")
    try:
        key = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise RecordingKeyError(
            f"recording keyring {path}: key {key_id!r} must be base64 of {KEY_BYTES} random bytes: "
            f"{ADD_KEY_FIX.format(path=path)}"
        )
    return key


def add_key(path: Path, key_id: str | None = None) -> str:
    """Adds a fresh random key to the keyring (created if missing, mode 600) and makes it current; returns its id.
    Older keys stay, so that recordings made with them remain readable until `reencrypt` moved them."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%dT%H%M%S")
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise RecordingKeyError(f"key id {key_id!r} must be 1-64 letters, digits, . _ -")
    keys: dict[str, str] = {}
    if path.exists():
        keyring = load_keyring(path)
        keys = {kid: base64.b64encode(key).decode() for kid, key in keyring.keys.items()}
    if key_id in keys:
        raise RecordingKeyError(f"recording keyring {path} already has a key {key_id!r}: choose another id")
    keys[key_id] = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    text = "# Recording keys: never edit a key, never delete one still used by a recording.\n"
    text += yaml.safe_dump({"current": key_id, "keys": keys}, sort_keys=False)
    _atomic_write(path, text.encode(), mode=0o600)
    return key_id


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- writing -------------------------------------------------------------------------------------------


def _header(key_id: str, prefix: bytes, chunk_size: int) -> bytes:
    encoded = key_id.encode()
    return MAGIC + struct.pack(">BB", VERSION, len(encoded)) + encoded + prefix + struct.pack(">I", chunk_size)


def _nonce(prefix: bytes, number: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", number, int(final))


class EncryptingWriter:
    """Writes `path` encrypted under the keyring's current key: to a temporary file beside it, renamed into place
    by `close()` (so readers never see half a file); `abort()` or an exception inside `with` leaves nothing."""

    def __init__(self, path: Path, keyring: Keyring, chunk_size: int = CHUNK_SIZE) -> None:
        self.path = path
        self.key_id = keyring.current
        self._aead = AESGCM(keyring.key(keyring.current))
        self._prefix = secrets.token_bytes(PREFIX_BYTES)
        self._header = _header(self.key_id, self._prefix, chunk_size)
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._number = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.fchmod(fd, 0o600)
        self._temp = Path(temp)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._file.write(self._header)

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > self._chunk_size:  # the last (possibly full) chunk waits for close(): it is final
            self._seal(bytes(self._buffer[: self._chunk_size]), final=False)
            del self._buffer[: self._chunk_size]

    def close(self) -> int:
        """Seals the final chunk, syncs and renames into place; returns the file's size in bytes."""
        try:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path.stat().st_size

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)

    def _seal(self, plaintext: bytes, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._number, final), plaintext, self._header)
        self._file.write(struct.pack(">BI", int(final), len(sealed)) + sealed)
        self._number += 1

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def encrypt_file(path: Path, keyring: Keyring, chunks: Iterable[bytes], chunk_size: int = CHUNK_SIZE) -> int:
    """Encrypts the concatenation of `chunks` into `path`; returns the file size."""
    with EncryptingWriter(path, keyring, chunk_size) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return path.stat().st_size


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingHeader:
    version: int
    key_id: str
    prefix: bytes
    chunk_size: int
    raw: bytes


def read_header(path: Path) -> RecordingHeader:
    try:
        with path.open("rb") as handle:
            return _read_header(handle, path)
    except FileNotFoundError:
        raise RecordingFileError(f"recording {path} not found (deleted by retention, or moved)") from None


def _read_header(handle: IO[bytes], path: Path) -> RecordingHeader:
    start = handle.read(len(MAGIC) + 2)
    if len(start) < len(MAGIC) + 2 or not start.startswith(MAGIC):
        raise RecordingFileError(f"{path} is not an encrypted voicebot recording (bad magic)")
    version, key_length = struct.unpack(">BB", start[len(MAGIC) :])
    if version != VERSION:
        raise RecordingFileError(f"{path} has recording format version {version}; this voicebot reads {VERSION}")
    rest = handle.read(key_length + PREFIX_BYTES + 4)
    if len(rest) < key_length + PREFIX_BYTES + 4:
        raise RecordingFileError(f"recording {path} is truncated (incomplete header)")
    key_id = rest[:key_length].decode(errors="replace")
    prefix = rest[key_length : key_length + PREFIX_BYTES]
    (chunk_size,) = struct.unpack(">I", rest[-4:])
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise RecordingFileError(f"recording {path} has an impossible chunk size {chunk_size} (corrupt header)")
    return RecordingHeader(version, key_id, prefix, chunk_size, start + rest)


def decrypt_chunks(path: Path, keyring: Keyring) -> Iterator[bytes]:
    """The plaintext, one authenticated chunk at a time. RecordingFileError on tampering or truncation (raised at
    the chunk where it is found: use `verify` first when nothing may be released from a bad file)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise RecordingFileError(f"recording {path} not found (deleted by retention, or moved)") from None
    with handle:
        header = _read_header(handle, path)
        aead = AESGCM(keyring.key(header.key_id))
        number, final = 0, False
        while not final:
            flag_length = handle.read(5)
            if len(flag_length) < 5:
                raise RecordingFileError(f"recording {path} is truncated after chunk {number} (no final chunk)")
            flag, length = struct.unpack(">BI", flag_length)
            final = flag == 1
            sealed = handle.read(length) if length <= header.chunk_size + TAG_BYTES else b""
            if len(sealed) != length or flag > 1:
                raise RecordingFileError(f"recording {path}: chunk {number} is truncated or corrupt")
            try:
                yield aead.decrypt(_nonce(header.prefix, number, final), sealed, header.raw)
            except InvalidTag:
                raise RecordingFileError(
                    f"recording {path}: chunk {number} fails authentication (tampered or corrupt): restore it from "
                    "a backup"
                ) from None
            number += 1
        if handle.read(1):
            raise RecordingFileError(f"recording {path} has data after its final chunk (tampered)")


def verify(path: Path, keyring: Keyring) -> int:
    """Authenticates the whole file; returns its plaintext size."""
    return sum(len(chunk) for chunk in decrypt_chunks(path, keyring))


def reencrypt(path: Path, keyring: Keyring) -> bool:
    """Rewrites `path` under the current key (atomic replace); False when it already uses it. The original stays
    untouched when any chunk fails authentication."""
    if read_header(path).key_id == keyring.current:
        return False
    encrypt_file(path, keyring, decrypt_chunks(path, keyring))
    return True
