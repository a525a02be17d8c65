"""Frame-level voice activity detectors: webrtcvad (cheap) and Silero v6 (robust to background talk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import webrtcvad

from voicebot.ports import ConfigError, VoiceActivityDetector

WEBRTC_RATES = (8000, 16000, 32000, 48000)
WEBRTC_FRAME_MS = (10, 20, 30)
SILERO_RATE = 16000
SILERO_FRAME_SAMPLES = 512  # 32 ms at 16 kHz, fixed by the model
SILERO_CONTEXT_SAMPLES = 64  # v6 expects the previous frame's last 64 samples in front of each frame
SILERO_STATE_SHAPE = (1, 1, 128)


def _check_frame(frame: bytes, expected: int, name: str) -> None:
    if len(frame) != expected:
        raise ValueError(f"{name} expects frames of {expected} bytes, got {len(frame)}")


class WebRtcVad:
    """webrtcvad; `mode` 0 (permissive) to 3 (aggressive)."""

    def __init__(self, mode: int = 2, frame_ms: int = 20, rate: int = 16000) -> None:
        if mode not in range(4):
            raise ConfigError(f"webrtc VAD mode must be 0..3, got {mode}")
        if frame_ms not in WEBRTC_FRAME_MS:
            raise ConfigError(f"webrtc VAD frame_ms must be one of {WEBRTC_FRAME_MS}, got {frame_ms}")
        if rate not in WEBRTC_RATES:
            raise ConfigError(f"webrtc VAD rate must be one of {WEBRTC_RATES}, got {rate}")
        self.mode = mode
        self.rate = rate
        self.frame_ms = frame_ms
        self._frame_bytes = rate * frame_ms // 1000 * 2
        self._vad = webrtcvad.Vad(mode)

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame, self._frame_bytes, "webrtc VAD")
        return bool(self._vad.is_speech(frame, self.rate))

    def reset(self) -> None:
        self._vad = webrtcvad.Vad(self.mode)


def silero_model_path() -> Path:
    import faster_whisper

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


class SileroVad:
    """Silero VAD v6 (the ONNX file faster-whisper ships), streamed one 32 ms frame at a time."""

    def __init__(self, threshold: float = 0.5, rate: int = 16000) -> None:
        if rate != SILERO_RATE:
            raise ConfigError(f"Silero VAD only supports {SILERO_RATE} Hz, got {rate}")
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"Silero VAD threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self.rate = rate
        self.frame_ms = SILERO_FRAME_SAMPLES * 1000 // SILERO_RATE
        self.last_probability = 0.0
        self._session = self._load_session()
        self.reset()

    @staticmethod
    def _load_session() -> onnxruntime.InferenceSession:
        path = silero_model_path()
        if not path.is_file():
            raise ConfigError(f"Silero VAD model not found at {path} (reinstall faster-whisper)")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        return onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def reset(self) -> None:
        self._h = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT_SAMPLES, dtype=np.float32)
        self.last_probability = 0.0

    def speech_probability(self, frame: bytes) -> float:
        _check_frame(frame, SILERO_FRAME_SAMPLES * 2, "Silero VAD")
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        model_input = np.concatenate([self._context, samples])[np.newaxis, :]
        probs, self._h, self._c = self._session.run(None, {"input": model_input, "h": self._h, "c": self._c})
        self._context = samples[-SILERO_CONTEXT_SAMPLES:]
        self.last_probability = float(probs[0])
        return self.last_probability

    def is_speech(self, frame: bytes) -> bool:
        return self.speech_probability(frame) >= self.threshold


def make_vad(kind: str, **opts: Any) -> VoiceActivityDetector:
    """Build a VAD from configuration: kind "webrtc" (mode, frame_ms, rate) or "silero" (threshold, rate)."""
    factories: dict[str, Any] = {"webrtc": WebRtcVad, "silero": SileroVad}
    if kind not in factories:
        raise ConfigError(f"unknown VAD kind {kind!r}: use one of {sorted(factories)}")
    try:
        vad: VoiceActivityDetector = factories[kind](**opts)
    except TypeError as exc:
        raise ConfigError(f"invalid options for the {kind} VAD: {exc}") from exc
    return vad
