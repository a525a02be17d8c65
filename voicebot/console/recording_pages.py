"""A call's recording, decrypted and streamed as a stereo WAV (caller left, bot right) to supervisors and admins.

The whole file is authenticated before the first byte is sent, so a tampered or truncated recording is an error
page, never a partial download; every play is written to the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from voicebot.call_schema import CALLS_DB_NAME
from voicebot.console.call_history import open_read_only
from voicebot.console.context import Console
from voicebot.console.security import STAFF, guarded
from voicebot.console.users import ConsoleUser
from voicebot.recording_crypto import Keyring, decrypt_chunks, load_keyring, read_header, verify


def recording_of(calls_db: Path, call_id: str) -> tuple[Path, str] | None:
    """(file, key id) of the call's recording, from the call records (read-only); None when it has none."""
    conn = open_read_only(calls_db)
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT path, key_id FROM recordings WHERE call_id = ?", [call_id]).fetchone()
    finally:
        conn.close()
    return (Path(row[0]), str(row[1])) if row and row[0] else None


def _opened(console: Console, call_id: str) -> tuple[Path, Keyring, int] | str:
    """The verified recording (file, keyring, plaintext size), or why it cannot be played."""
    found = recording_of(console.db_path.parent / CALLS_DB_NAME, call_id)
    if found is None:
        return f"Call {call_id!r} has no recording (not recorded, or deleted by the retention policy)."
    path, _ = found
    keyring = load_keyring(console.app_settings.recording.keyring)
    return path, keyring, verify(path, keyring)


def routes(console: Console) -> list[BaseRoute]:
    async def recording(request: Request, user: ConsoleUser) -> Response:
        call_id = request.path_params["call_id"]
        try:
            opened = await console.db(_opened, console, call_id)
        except ValueError as exc:  # ConfigError: missing keyring or key, tampered or missing file
            return console.render(request, user, "error.html", "Recording unavailable", 409, home=f"/calls/{call_id}",
                                  errors=[str(exc)])  # fmt: skip
        if isinstance(opened, str):
            return console.render(request, user, "error.html", "No recording", 404, home=f"/calls/{call_id}",
                                  errors=[opened])  # fmt: skip
        path, keyring, size = opened
        after = {"file": path.name, "key_id": read_header(path).key_id, "bytes": size}
        await console.db(console.audit.record, user.name, "recording_play", f"call:{call_id}", None, after)
        headers = {
            "content-disposition": f'inline; filename="{path.stem}.wav"',
            "cache-control": "no-store",
            "content-length": str(size),
        }
        return StreamingResponse(_plaintext(path, keyring), media_type="audio/wav", headers=headers)

    return [guarded("/calls/{call_id:str}/recording", recording, STAFF, console.users, console.denied)]


def _plaintext(path: Path, keyring: Keyring) -> Iterator[bytes]:
    yield from decrypt_chunks(path, keyring)
