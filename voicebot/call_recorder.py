"""Recording one call (when `recording.enabled`): the caller's audio on the left, the bot's on the right.

The CallHost feeds it from pjmedia's clock thread (`caller()` with each received frame, `tap()` around the
playout's read); feeding costs one locked append per frame. When the call ends, `finish()` interleaves, encrypts and
writes the stereo WAV on a thread of its own (never on the audio path), then inserts the `recordings` row.

A call is only recorded when its caller hears the recording notice: `welcome_prompts` adds the notice after the AI
disclosure when recording is ready, and `open_recorder` records only a call whose welcome prompts include it.
A missing keyring or notice text disables recording for the call with a logged alert; the call goes on.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dialogue.state import state_dir
from voicebot.audio import AudioFormat
from voicebot.call_schema import CALLS_DB_NAME, iso_ms, open_calls_db
from voicebot.ports import ConfigError
from voicebot.privacy_settings import RecordingSettings
from voicebot.prompts import PromptTexts
from voicebot.recording_crypto import SUFFIX, EncryptingWriter, Keyring, load_keyring

log = logging.getLogger(__name__)

NOTICE_PROMPT = "recording_notice"
ALIGN_SLACK_FRAMES = 3  # one side may lead the other by this many 20 ms frames before the other is padded
INTERLEAVE_SAMPLES = 64 * 1024  # stereo frames interleaved (and encrypted) at a time
_writers: set[threading.Thread] = set()


def recording_problem(settings: RecordingSettings, texts: PromptTexts) -> str | None:
    """Why calls cannot be recorded now (None: they can). Only meaningful when recording is enabled."""
    try:
        load_keyring(settings.keyring)
    except ConfigError as exc:
        return str(exc)
    missing = [language for language, prompts in texts.texts.items() if not prompts.get(NOTICE_PROMPT)]
    if missing:
        return f"the prompts file has no {NOTICE_PROMPT!r} text for {', '.join(missing)}: add it"
    return None


def welcome_prompts(settings: RecordingSettings, texts: PromptTexts, base: tuple[str, ...]) -> tuple[str, ...]:
    """`base` with the recording notice right after the AI disclosure when this call can be recorded."""
    if not settings.enabled or NOTICE_PROMPT in base or recording_problem(settings, texts) is not None:
        return base
    at = base.index("disclosure") + 1 if "disclosure" in base else 0
    return (*base[:at], NOTICE_PROMPT, *base[at:])


def open_recorder(
    settings: RecordingSettings, texts: PromptTexts, call_id: str, fmt: AudioFormat, welcome: tuple[str, ...]
) -> CallRecorder | None:
    """A recorder for this call, or None (recording disabled, or not possible: then an alert is logged)."""
    if not settings.enabled:
        return None
    problem = recording_problem(settings, texts)
    if problem is None and NOTICE_PROMPT not in welcome:
        problem = "the caller does not hear the recording notice on this call"
    if problem is not None:
        log.error("ALERT call %s: recording disabled for this call: %s", call_id, problem)
        return None
    return CallRecorder(call_id, fmt, load_keyring(settings.keyring), settings.directory())


def recording_path(directory: Path, call_id: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120] + SUFFIX)


def wav_header(fmt: AudioFormat, channels: int, data_bytes: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE header for 16-bit PCM."""
    block = fmt.width * channels
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, fmt.rate, fmt.rate * block, block, fmt.width * 8)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


class CallRecorder:
    def __init__(
        self,
        call_id: str,
        fmt: AudioFormat,
        keyring: Keyring,
        directory: Path,
        calls_db: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fmt.width != 2 or fmt.channels != 1:
            raise ValueError(f"a call recorder takes 16-bit mono per side, got {fmt}")
        self.call_id, self.format, self.keyring = call_id, fmt, keyring
        self.path = recording_path(directory, call_id).absolute()  # the row must not depend on a cwd
        self.calls_db = calls_db
        self.clock = clock
        self._caller = bytearray()
        self._bot = bytearray()
        self._lock = threading.Lock()
        self._slack = fmt.bytes_for_ms(20) * ALIGN_SLACK_FRAMES
        self._finished = False
        self.written: threading.Event = threading.Event()  # set once the file and its row are written (or failed)

    # --- fed on the media thread -------------------------------------------------------------------------

    def caller(self, data: bytes) -> None:
        self._append(self._caller, self._bot, data)

    def bot(self, data: bytes) -> None:
        self._append(self._bot, self._caller, data)

    def tap(self, fill: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """`fill` (the playout's read) that also records what the bot sends."""

        def read(size: int) -> bytes:
            data = fill(size)
            self.bot(data)
            return data

        return read

    def _append(self, track: bytearray, other: bytearray, data: bytes) -> None:
        with self._lock:
            if self._finished:
                return
            track += data
            behind = len(track) - len(other) - self._slack
            if behind > 0:  # the other side delivered no frames (e.g. around DTMF): keep both sides in time
                other += bytes(behind)

    # --- when the call ends ------------------------------------------------------------------------------

    def finish(self, notice_heard: bool = True) -> threading.Thread | None:
        """Stops recording and writes the file on a thread of its own (once; later calls return None). A caller
        who did not hear the recording notice to the end is not recorded: the audio is dropped."""
        with self._lock:
            if self._finished:
                return None
            self._finished = True
            if not notice_heard:
                log.info("call %s: not recorded: the caller did not hear the recording notice to the end", self.call_id)
            if not notice_heard or (not self._caller and not self._bot):  # or the call never reached its media
                self._caller, self._bot = bytearray(), bytearray()
                self.written.set()
                return None
        thread = threading.Thread(target=self._write, name=f"record-{self.call_id}", daemon=True)
        _writers.add(thread)
        thread.start()
        return thread

    def _write(self) -> None:
        try:
            size = self._encrypt()
            self._insert_row(size)
            log.info("call %s: recording written to %s (%d bytes, key %s)", self.call_id, self.path, size,
                     self.keyring.current)  # fmt: skip
        except Exception:
            log.exception("ALERT call %s: the recording could not be written to %s", self.call_id, self.path)
        finally:
            self._caller, self._bot = bytearray(), bytearray()
            self.written.set()
            _writers.discard(threading.current_thread())

    def _encrypt(self) -> int:
        frames = max(len(self._caller), len(self._bot)) // 2
        for track in (self._caller, self._bot):  # the same length, whole samples
            del track[frames * 2 :]
            track += bytes(frames * 2 - len(track))
        with EncryptingWriter(self.path, self.keyring) as writer:
            writer.write(wav_header(self.format, 2, frames * 4))
            for block in self._interleaved(frames):
                writer.write(block)
        return self.path.stat().st_size

    def _interleaved(self, frames: int) -> Iterator[bytes]:
        caller = np.frombuffer(self._caller, dtype="<i2")
        bot = np.frombuffer(self._bot, dtype="<i2")
        for start in range(0, frames, INTERLEAVE_SAMPLES):
            end = min(frames, start + INTERLEAVE_SAMPLES)
            yield np.column_stack((caller[start:end], bot[start:end])).astype("<i2").tobytes()

    def _insert_row(self, size: int) -> None:
        db = open_calls_db(self.calls_db or state_dir() / CALLS_DB_NAME)
        try:
            db.execute(
                "INSERT OR REPLACE INTO recordings (call_id, path, key_id, created, bytes) VALUES (?, ?, ?, ?, ?)",
                [self.call_id, str(self.path), self.keyring.current, iso_ms(self.clock()), size],
            )
        finally:
            db.conn.close()


def wait_for_recordings(timeout_s: float = 10.0) -> bool:
    """Waits for recordings still being written (a worker shutting down); False if some were still running."""
    deadline = time.monotonic() + timeout_s
    for thread in list(_writers):
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in list(_writers))
