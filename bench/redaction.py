"""PII redaction: time per sentence (p50/p95/p99) over the labelled sentences, and precision / recall / F1
per kind on the dev and blind sets (the scoring of tests/unit/test_redaction.py).

    .venv/bin/python bench/redaction.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_redaction import SETS, LabelledSentence, load_sentences, score_sentences
from voicebot.redaction import KINDS, Redactor


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timings_ms(
    redactor: Redactor, sentences: list[LabelledSentence], repeat: int, language_known: bool
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this thread) milliseconds per sentence; the gap is time spent waiting for a core."""
    wall, cpu = [], []
    for _ in range(repeat):
        for sentence in sentences:
            language = sentence.language if language_known else None
            started, started_cpu = time.perf_counter(), time.thread_time()
            redactor.redact(sentence.text, language)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over the sentences for the timings")
    args = parser.parse_args()
    sets = {name: load_sentences(path) for name, path in SETS.items()}
    everything = [sentence for sentences in sets.values() for sentence in sentences]
    redactor = Redactor()

    started = time.perf_counter()
    redactor.load()
    print(f"Redactor.load() (both spaCy pipelines): {(time.perf_counter() - started) * 1000:.0f} ms\n")

    columns = ("p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms")
    print(f"{'sentences':<20} {'clock':<5} {'n':>6} " + " ".join(f"{column:>8}" for column in columns))
    for label, sentences, known in (
        ("fr, language given", [s for s in everything if s.language == "fr"], True),
        ("en, language given", [s for s in everything if s.language == "en"], True),
        ("all, language None", everything, False),
    ):
        for clock, times in zip(("wall", "cpu"), timings_ms(redactor, sentences, args.repeat, known), strict=True):
            values = (*(percentile(times, p) for p in (0.5, 0.95, 0.99)), max(times), statistics.fmean(times))
            print(f"{label:<20} {clock:<5} {len(times):>6} " + " ".join(f"{value:>8.3f}" for value in values))

    print(f"\n{'set':<6} {'kind':<8} {'n':>4} {'found':>5} {'reported':>8} {'P':>6} {'R':>6} {'F1':>6}")
    for name, sentences in sets.items():
        score = score_sentences(sentences, redactor)
        for kind in KINDS:
            k = score.kinds[kind]
            print(
                f"{name:<6} {kind:<8} {k.labelled:>4} {k.found:>5} {k.reported:>8} "
                f"{k.precision:>6.3f} {k.recall:>6.3f} {k.f1:>6.3f}"
            )
        print(f"{name:<6} {'overall precision':<29} {score.precision:>6.3f}  ({len(sentences)} sentences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
