"""Regenerates data/samples/caller-opening-hours.wav, the default caller of `voicebot simulate`."""

from __future__ import annotations

from pathlib import Path

from voicebot.audio import AudioChunk, concat, write_wav
from voicebot.engines.tts import PiperTTS
from voicebot.models import joe_voice_path

# Each pause lets the bot finish its answer (a shorter one would be a barge-in).
LINES = [("Hello.", 5.0), ("What are your opening hours?", 13.0), ("Thank you, goodbye.", 9.0), ("Five.", 1.0)]
OUT = Path(__file__).resolve().parent.parent / "data" / "samples" / "caller-opening-hours.wav"


def main() -> None:
    voice = PiperTTS(joe_voice_path(), "en")
    parts: list[AudioChunk] = []
    for text, pause_s in LINES:
        speech = [c.to_mono().resample(16000) for c in voice.synthesize(text)]
        parts += [*speech, AudioChunk.silence(pause_s, 16000)]
    write_wav(OUT, concat(parts, parts[0].format))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
