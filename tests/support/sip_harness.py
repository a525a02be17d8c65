"""Processes for SIP tests: a voicebot worker and pjsua2 phones (tests/support/pj_phone.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from voicebot.audio import AudioChunk, read_wav

REPO_ROOT = Path(__file__).resolve().parents[2]
PHONE = REPO_ROOT / "tests" / "support" / "pj_phone.py"


@dataclass
class Worker:
    process: subprocess.Popen[str]
    uri: str
    events_path: Path
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def start_worker(config: Path, port: int, folder: Path, name: str = "t0", timeout_s: float = 90,
                 env: dict[str, str] | None = None) -> Worker:  # fmt: skip
    log_path, events_path = folder / f"{name}.log", folder / f"{name}-events.jsonl"
    command = [sys.executable, "-m", "telephony.worker_main", "--config", str(config), "--port", str(port),
               "--name", name, "--events", str(events_path)]  # fmt: skip
    log_file = log_path.open("w")
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "READY " in log_path.read_text(errors="replace"):
            return Worker(process, f"sip:voicebot@127.0.0.1:{port}", events_path, log_path)
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"worker not ready after {timeout_s} s:\n{log_path.read_text()[-3000:]}")


def phone(mode: str, *args: str, port: int, uri: str | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, str(PHONE), mode, *([uri] if uri else []), "--port", str(port),
               "--rtp-port", str(port * 10 % 60000), *args]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def phone_events(process: subprocess.Popen[str], timeout_s: float = 90) -> list[dict[str, Any]]:
    out, _ = process.communicate(timeout=timeout_s)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def stop_phone(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return phone_events(process, 15)


def rms_windows(audio: AudioChunk, window_s: float = 0.1) -> np.ndarray:
    samples = audio.to_mono().to_float()
    size = int(audio.rate * window_s)
    usable = len(samples) // size * size
    return np.sqrt(np.mean(samples[:usable].reshape(-1, size) ** 2, axis=1))


def recording(path: Path) -> AudioChunk:
    return read_wav(path).to_mono().resample(16000)


def baresip_call(uri: str, caller_wav: Path, folder: Path, max_s: int, sip_port: int = 5197) -> Path:
    """Debian's baresip softphone calls `uri`, plays `caller_wav` (8 kHz mono) and hangs up at its end.
    Returns the WAV of what it received."""
    conf, dumps = folder / "baresip", folder / "baresip-audio"
    conf.mkdir(parents=True, exist_ok=True)
    dumps.mkdir(parents=True, exist_ok=True)
    modules = "".join(f"module {m}.so\n" for m in ("g711", "aufile", "sndfile", "alsa", "menu", "account"))
    (conf / "config").write_text(
        f"sip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\naudio_player alsa,null\naudio_alert alsa,null\n"
        f"audio_source aufile,{caller_wav}\nrtp_ports {sip_port * 10 % 60000}-{sip_port * 10 % 60000 + 100}\n"
        f"module_path /usr/lib/baresip/modules\n{modules}snd_path {dumps}\n"
    )
    (conf / "accounts").write_text("<sip:citizen@127.0.0.1>;regint=0\n")
    (conf / "contacts").write_text("")
    command = ["baresip", "-f", str(conf), "-e", f"/dial {uri}", "-t", str(max_s)]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=max_s + 20)
    received = sorted(dumps.glob("*-dec.wav"))
    if "Call established" not in result.stdout or not received:
        raise AssertionError(f"baresip call failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return received[-1]
