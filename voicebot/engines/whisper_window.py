"""A shorter Whisper encoder window for short utterances, with a verified fallback to the full 30 s.

faster-whisper pads every segment to 3000 mel frames, so a 2 s utterance costs as much as a 30 s one.
CTranslate2 accepts shorter inputs: encoding only the utterance (at least 10 s) is ~4x cheaper and
gave the same WER on our real recordings. The decoder was never trained on short windows, though, and
sometimes loops ("5 5 5 5 ..." or "10 of clubs 10 of clubs"): such results are decoded again with the
full window, so the shortcut never costs accuracy, only an occasional second pass.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

FRAMES_PER_S = 100  # Whisper log-mel frames per second
FULL_WINDOW_FRAMES = 3000


class ShortWindowEncoder:
    """Replaces `model.encode` of a faster-whisper WhisperModel."""

    def __init__(self, model: Any, min_window_s: float) -> None:
        self._encode = model.encode
        self.min_frames = int(min_window_s * FRAMES_PER_S)
        self._local = threading.local()
        model.encode = self

    def __call__(self, features: Any) -> Any:
        if getattr(self._local, "full", False):
            return self._encode(features)
        columns = np.asarray(features).reshape(-1, features.shape[-1])
        content = np.nonzero(np.any(columns != 0, axis=0))[0]
        used = int(content[-1]) + 1 if len(content) else 1
        rounded = -(-(used + FRAMES_PER_S) // FRAMES_PER_S) * FRAMES_PER_S  # one spare second, whole seconds
        return self._encode(features[..., : min(FULL_WINDOW_FRAMES, max(self.min_frames, rounded))])

    @contextmanager
    def full_window(self) -> Iterator[None]:
        self._local.full = True
        try:
            yield
        finally:
            self._local.full = False


_WORD = re.compile(r"[\w']+")


def repeats_itself(text: str) -> bool:
    """True when some word sequence is immediately repeated ("5 5", "ten of clubs ten of clubs")."""
    words = _WORD.findall(text.lower())
    for size in range(1, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return True
    return False
