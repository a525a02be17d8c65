"""Whisper's 30 s window vs encoding only the utterance: WER and transcription time on the real recordings.

    .venv/bin/python bench/asr_window.py [--model tiny.en] [--threads 2]

Each clip gets 0.2 s of silence before and 0.4 s after, as the endpointer hands it over.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.audio import AudioChunk, concat, read_wav
from voicebot.degrade import telephone
from voicebot.engines.stt import WhisperSTT
from voicebot.recordings import load_recordings
from voicebot.wer import corpus_wer


def clips(codec: str | None) -> list[tuple[str, AudioChunk]]:
    out = []
    for recording in load_recordings():
        audio = read_wav(recording.path)
        if codec:
            audio = telephone(audio, codec).resample(16000)
        padded = concat([AudioChunk.silence(0.2, 16000), audio, AudioChunk.silence(0.4, 16000)], audio.format)
        out.append((recording.transcript, padded))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'encoder window':<22}{'audio':<10}{'WER':>7}{'p50 s':>8}{'p95 s':>8}")
    for label, window in (("full 30 s", None), ("utterance, >= 10 s", 10.0)):
        stt = WhisperSTT(args.model, cpu_threads=args.threads, encoder_window_s=window)
        for codec in (None, "pcmu"):
            pairs, seconds = [], []
            for reference, audio in clips(codec):
                started = time.perf_counter()
                pairs.append((reference, stt.transcribe(audio).text))
                seconds.append(time.perf_counter() - started)
            p50, p95 = np.percentile(seconds, [50, 95])
            print(f"{label:<22}{codec or '16k':<10}{corpus_wer(pairs):>7.3f}{p50:>8.3f}{p95:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
