"""Encrypted call recordings: the chunked AES-256-GCM format, the keyring, tampering, and key rotation."""

from __future__ import annotations

import argparse
import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from voicebot.call_schema import open_calls_db
from voicebot.cli_recordings import add_recordings_parser, rotate_recordings
from voicebot.recording_crypto import (
    MAGIC,
    RecordingFileError,
    RecordingKeyError,
    add_key,
    decrypt_chunks,
    encrypt_file,
    load_keyring,
    read_header,
    reencrypt,
    verify,
)

CHUNK = 1000  # small chunks: a few kilobytes already span several


def plaintext(size: int) -> bytes:
    return os.urandom(size)


def decrypted(path: Path, keyring_path: Path) -> bytes:
    return b"".join(decrypt_chunks(path, load_keyring(keyring_path)))


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "recording-keys.yaml"
    add_key(path, "k1")
    return path


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 17])
def test_round_trip_across_chunk_boundaries(tmp_path: Path, keyring_path: Path, size: int) -> None:
    data = plaintext(size)
    path = tmp_path / "call.vbrec"
    parts = [data[i : i + 333] for i in range(0, len(data), 333)]  # written in pieces that straddle chunks
    encrypt_file(path, load_keyring(keyring_path), parts, chunk_size=CHUNK)
    assert decrypted(path, keyring_path) == data
    assert verify(path, load_keyring(keyring_path)) == size
    header = read_header(path)
    assert (header.key_id, header.chunk_size) == ("k1", CHUNK)
    assert path.read_bytes().startswith(MAGIC)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_a_different_key_under_the_same_id_fails_authentication(tmp_path: Path, keyring_path: Path) -> None:
    path = tmp_path / "call.vbrec"
    encrypt_file(path, load_keyring(keyring_path), [plaintext(3000)], chunk_size=CHUNK)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"current": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}))
    with pytest.raises(RecordingFileError, match="chunk 0 fails authentication"):
        decrypted(path, other)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda b: b[:1500] + bytes([b[1500] ^ 1]) + b[1501:], "fails authentication"),  # one bit in chunk 1
        (lambda b: b[: b.index(b"k1")] + b"k2" + b[b.index(b"k1") + 2 :], "no key 'k2'"),  # header's key id
        (lambda b: b[: -(5 + 16 + 3000 - 2 * CHUNK)], "truncated after chunk 2"),  # final chunk dropped
        (lambda b: b + b"\x00" * 40, "data after its final chunk"),
        (lambda b: b"RIFF" + b[4:], "not an encrypted voicebot recording"),
    ],
)
def test_tampering_is_detected(
    tmp_path: Path, keyring_path: Path, tamper: Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "call.vbrec"
    encrypt_file(path, load_keyring(keyring_path), [plaintext(3000)], chunk_size=CHUNK)
    path.write_bytes(tamper(path.read_bytes()))
    with pytest.raises((RecordingFileError, RecordingKeyError), match=message):
        verify(path, load_keyring(keyring_path))


def test_swapping_two_chunks_is_detected(tmp_path: Path, keyring_path: Path) -> None:
    path = tmp_path / "call.vbrec"
    encrypt_file(path, load_keyring(keyring_path), [plaintext(3000)], chunk_size=CHUNK)
    data = path.read_bytes()
    header_size = len(read_header(path).raw)
    record = 5 + CHUNK + 16
    first, second = data[header_size : header_size + record], data[header_size + record : header_size + 2 * record]
    path.write_bytes(data[:header_size] + second + first + data[header_size + 2 * record :])
    with pytest.raises(RecordingFileError, match="chunk 0 fails authentication"):
        verify(path, load_keyring(keyring_path))


def test_rotation_keeps_old_files_readable_then_reencrypts_them(tmp_path: Path, keyring_path: Path) -> None:
    old_data = plaintext(4321)
    old = tmp_path / "rec" / "old.vbrec"
    encrypt_file(old, load_keyring(keyring_path), [old_data], chunk_size=CHUNK)

    assert add_key(keyring_path, "k2") == "k2"
    keyring = load_keyring(keyring_path)
    assert keyring.current == "k2" and set(keyring.keys) == {"k1", "k2"}
    new = tmp_path / "rec" / "new.vbrec"
    encrypt_file(new, keyring, [b"new call"])
    assert read_header(new).key_id == "k2"
    assert read_header(old).key_id == "k1" and decrypted(old, keyring_path) == old_data  # still readable

    assert reencrypt(old, keyring) is True
    assert read_header(old).key_id == "k2" and decrypted(old, keyring_path) == old_data
    assert reencrypt(old, keyring) is False  # already under the current key

    only_k2 = tmp_path / "only-k2.yaml"
    only_k2.write_text(yaml.safe_dump({"current": "k2", "keys": {"k2": base64.b64encode(keyring.keys["k2"]).decode()}}))
    assert decrypted(old, only_k2) == old_data  # the old key can now be retired


def test_rotate_command_rewrites_files_and_their_rows(tmp_path: Path, keyring_path: Path) -> None:
    directory = tmp_path / "recordings"
    files = [directory / f"call-{i}.vbrec" for i in range(3)]
    for file in files:
        encrypt_file(file, load_keyring(keyring_path), [file.name.encode() * 100], chunk_size=CHUNK)
    calls_db = tmp_path / "calls.db"
    db = open_calls_db(calls_db)
    for i, file in enumerate(files):
        db.execute("INSERT INTO recordings VALUES (?, ?, 'k1', '2026-01-01T00:00:00.000Z', 1)", [f"c{i}", str(file)])
    add_key(keyring_path, "k2")
    broken = directory / "broken.vbrec"
    broken.write_bytes(MAGIC + b"\x01\x02k1")

    report = rotate_recordings(directory, load_keyring(keyring_path), calls_db)
    assert sorted(report.rewritten) == files and len(report.failed) == 1 and "broken.vbrec" in report.failed[0]
    assert {row[0] for row in db.execute("SELECT key_id FROM recordings")} == {"k2"}
    assert all(read_header(file).key_id == "k2" for file in files)
    assert decrypted(files[0], keyring_path) == b"call-0.vbrec" * 100
    again = rotate_recordings(directory, load_keyring(keyring_path), calls_db)
    assert (again.rewritten, again.already_current) == ([], 3)


def test_recordings_commands_parse_and_add_a_key(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_recordings_parser(parser.add_subparsers(dest="command"), fetch=lambda args: 7)
    fetch = parser.parse_args(["recordings", "fetch"])
    assert fetch.func(fetch) == 7  # the test-speech download is still `voicebot recordings fetch`
    keyring = tmp_path / "keys.yaml"
    added = parser.parse_args(["recordings", "add-key", "--keyring", str(keyring), "--id", "first"])
    assert added.func(added) == 0
    assert load_keyring(keyring).current == "first"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600


def test_missing_keyring_or_key_id_names_the_file_and_the_fix(tmp_path: Path, keyring_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RecordingKeyError, match=f"keyring {missing} not found.*voicebot recordings add-key"):
        load_keyring(missing)
    with pytest.raises(RecordingKeyError, match=r"recording\.keyring is not set"):
        load_keyring(None)

    path = tmp_path / "call.vbrec"
    encrypt_file(path, load_keyring(keyring_path), [b"audio"])
    other = tmp_path / "other.yaml"
    add_key(other, "k9")
    with pytest.raises(RecordingKeyError, match=f"keyring {other} has no key 'k1': put the key .* back"):
        decrypted(path, other)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"current": "k1", "keys": {"k1": "not base64!"}}, "key 'k1' must be base64 of 32 random bytes"),
        ({"current": "k1", "keys": {"k1": base64.b64encode(b"short").decode()}}, "must be base64 of 32"),
        ({"current": "k2", "keys": {"k1": base64.b64encode(bytes(32)).decode()}}, "`current: k2` is not one of"),
        ({"current": "k1"}, "has no `keys:` mapping"),
        ({"current": "a b", "keys": {"a b": base64.b64encode(bytes(32)).decode()}}, "key id 'a b' must be"),
    ],
)
def test_a_bad_keyring_is_refused_with_what_is_wrong(tmp_path: Path, content: dict[str, object], message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(RecordingKeyError, match=message):
        load_keyring(path)
    with pytest.raises(RecordingKeyError):
        add_key(path, "k3")  # a broken keyring is never overwritten
