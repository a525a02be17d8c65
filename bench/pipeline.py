"""Pipeline bench: the real recordings as callers, in real time, through VAD, Whisper, Rasa and Piper.

    .venv/bin/python bench/pipeline.py [--model tiny.en] [--vad webrtc] [--rounds 1] [--json out.json]

Each recording is one call (16 kHz linear, then 8 kHz G.711 µ-law) paced by a real-time media clock,
so every latency is what a caller would wait. Rasa is started if it is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot import events as ev
from voicebot.audio import read_wav
from voicebot.cli import progress
from voicebot.compose import Runtime, build_runtime, ensure_dialogue
from voicebot.config import load_settings
from voicebot.recordings import Recording, load_recordings
from voicebot.simulate import ChannelSpec, simulate_call
from voicebot.wer import corpus_wer

STAGES = ("endpointing_ms", "asr_ms", "asr_wait_ms", "dialogue_ms", "tts_first_audio_ms")
E2E = "end_of_speech_to_first_audio_ms"


async def run_channel(runtime: Runtime, recordings: list[Recording], channel: ChannelSpec) -> dict[str, object]:
    timings: list[ev.TurnTimings] = []
    pairs: list[tuple[str, str]] = []
    speech_s = 0.0
    for recording in recordings:
        audio = read_wav(recording.path)
        result = await simulate_call(runtime, audio, channel, language="en", speed=1.0, welcome=False)
        heard = " ".join(e.text for e in result.events if isinstance(e, ev.Transcript) and e.accepted)
        pairs.append((recording.transcript, heard))
        timings += [e for e in result.events if isinstance(e, ev.TurnTimings)]
        speech_s += sum(e.speech_s for e in result.events if isinstance(e, ev.SpeechEnded))
        progress(f"{channel.codec or 'linear'} {recording.name}: {heard!r}")
    asr_total_s = sum(t.asr_ms for t in timings) / 1000
    return {"timings": timings, "wer": corpus_wer(pairs), "asr_rtf": asr_total_s / max(speech_s, 1e-9)}


def tts_rtf(runtime: Runtime, texts: list[str]) -> tuple[float, float]:
    """Real-time factor of the English voice over the bot's replies, and time to the first sentence (p50 ms)."""
    voice = runtime.voices.voice_for("en")
    total_s = audio_s = 0.0
    first_ms: list[float] = []
    for text in texts:
        started = time.perf_counter()
        for index, chunk in enumerate(voice.synthesize(text)):
            if index == 0:
                first_ms.append((time.perf_counter() - started) * 1000)
            audio_s += chunk.duration_s
        total_s += time.perf_counter() - started
    return total_s / audio_s, float(np.percentile(first_ms, 50))


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):7.0f}" if values else "      -"


def print_table(results: dict[str, dict[str, object]]) -> None:
    print(f"\n{'stage (ms)':<34}" + "".join(f"{name + ' p50':>14}{name + ' p95':>14}" for name in results))
    for stage in (*STAGES, E2E):
        row = f"{stage.removesuffix('_ms'):<34}"
        for result in results.values():
            values = [getattr(t, stage) for t in result["timings"]]  # type: ignore[attr-defined]
            row += f"{pct(values, 50):>14}{pct(values, 95):>14}"
        print(row)
    print()
    for name, result in results.items():
        turns = len(result["timings"])  # type: ignore[arg-type]
        print(f"{name:<10} turns={turns:<4} WER={result['wer']:.3f}  ASR RTF={result['asr_rtf']:.3f}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Whisper model (default from settings: tiny.en)")
    parser.add_argument("--vad", choices=["webrtc", "silero"], default=None)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    settings = load_settings()
    changes = {k: v for k, v in (("stt_model", args.model), ("vad", args.vad)) if v}
    if changes:
        settings = settings.replace("speech", **changes)
    started = ensure_dialogue(settings, progress)
    runtime = build_runtime(settings)
    try:
        recordings = load_recordings()
        await runtime.warm_up(16000)
        results = {
            "16k": await run_channel(runtime, recordings, ChannelSpec(16000)),
            "8k-pcmu": await run_channel(runtime, recordings, ChannelSpec(8000, "pcmu")),
        }
        replies = [
            "Sorry, I did not understand that. Would you like to speak to a person?",
            "The city hall is open Monday to Friday from 8:30 to 17:00, and on Saturday from 9 to 12.",
        ]
        rtf, first_ms = tts_rtf(runtime, replies * 5)
    finally:
        await runtime.aclose()
        if started is not None:
            started.stop()
    s = settings.speech
    print(
        f"model={s.stt_model} threads={s.stt_threads} vad={s.vad} end_silence={s.end_silence_ms}ms "
        f"speculate_after={s.speculate_after_ms}ms encoder_window={s.encoder_window_s}s, real-time pacing"
    )
    print_table(results)
    print(f"TTS RTF={rtf:.3f} (first sentence p50 {first_ms:.0f} ms)")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (voicebot process, Rasa excluded)={peak_mib:.0f} MiB")
    if args.json:
        raw = {
            name: {"wer": r["wer"], "asr_rtf": r["asr_rtf"], "timings": [t.to_dict() for t in r["timings"]]}
            for name, r in results.items()
        }  # type: ignore[attr-defined]
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
