"""The tables of bench/sip.py: per-level results, targets met or missed, and where the time goes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sip_call import CallMeasure
from sip_procs import Usage

STAGES = ("endpointing_ms", "asr_ms", "asr_wait_ms", "dialogue_ms", "tts_first_audio_ms")
E2E = "end_of_speech_to_first_audio_ms"
GREETING_TARGET_MS, V2V_P50_TARGET_MS, V2V_P95_TARGET_MS, GAP_P99_TARGET_MS = 300, 600, 1500, 30
LOAD_LEVEL = 12  # the level the turn-latency p95 and RTP gap targets apply to


@dataclass
class LevelResult:
    calls: int
    workers: int
    measures: list[CallMeasure]
    usage: Usage
    events: list[dict[str, Any]]
    generator_cpu_pct: float
    load_average: float
    serve_exit: int | None

    def clock_wait_ms_per_s(self) -> float:
        """Per worker: how long its pjmedia clock thread was runnable but not running, per second."""
        return self.usage.clock_waited_ms / max(self.usage.window_s, 1e-9) / max(len(self.usage.worker_pids), 1)

    def greetings(self) -> list[float]:
        return [m.greeting_ms for m in self.measures if m.greeting_ms is not None]

    def turns(self) -> list[float]:
        return [t for m in self.measures for t in m.turn_ms]

    def answer_pauses(self) -> list[float]:
        return [t for m in self.measures for t in m.answer_pause_ms]

    def gaps(self) -> np.ndarray:
        return np.concatenate([m.gaps_ms() for m in self.measures] or [np.empty(0)])

    def timings(self, stage: str) -> list[float]:
        return [e[stage] for e in self.events if e["event"] == "TurnTimings"]

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)

    def answered(self) -> int:
        return sum(1 for m in self.measures if m.result is not None and m.result.answered)

    def session_greeting_ms(self) -> list[float]:
        """Session clock: call start -> first bot speech (the disclosure prompt) started."""
        starts = {e["call_id"]: e["t"] for e in self.events if e["event"] == "CallStarted"}
        first: dict[str, float] = {}
        for e in self.events:
            if e["event"] == "BotSpeechStarted" and e["call_id"] in starts:
                first.setdefault(e["call_id"], e["t"])
        return [(first[c] - starts[c]) * 1000 for c in first]

    def sip_phases(self) -> dict[str, list[float]]:
        """Caller clock: INVITE -> 200 OK -> first RTP -> first greeting audio."""
        phases: dict[str, list[float]] = {"INVITE -> 200 OK": [], "200 OK -> first RTP": [], "first RTP -> audio": []}
        for m in self.measures:
            r = m.result
            if r is None or r.answered_at is None or r.first_rtp_at is None or m.greeting_ms is None:
                continue
            phases["INVITE -> 200 OK"].append((r.answered_at - r.invite_sent_at) * 1000)
            phases["200 OK -> first RTP"].append((r.first_rtp_at - r.answered_at) * 1000)
            phases["first RTP -> audio"].append(m.greeting_ms - (r.first_rtp_at - r.invite_sent_at) * 1000)
        return phases


def pct(values: list[float] | np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def pair(values: list[float]) -> str:
    return f"{fmt(pct(values, 50))} / {fmt(pct(values, 95))}"


def rows(results: list[LevelResult]) -> list[tuple[str, list[str]]]:
    def each(get: Any) -> list[str]:
        return [get(r) for r in results]

    out = [
        ("SIP workers (+ Kamailio when > 1)", each(lambda r: str(r.workers))),
        ("calls answered", each(lambda r: f"{r.answered()}/{r.calls}")),
        ("turns timed (caller / session)", each(lambda r: f"{len(r.turns())} / {len(r.timings(E2E))}")),
        ("INVITE → greeting audio p50 (ms)", each(lambda r: fmt(pct(r.greetings(), 50)))),
        ("INVITE → greeting audio p95 (ms)", each(lambda r: fmt(pct(r.greetings(), 95)))),
        ("end of speech → bot audio p50 (ms)", each(lambda r: fmt(pct(r.turns(), 50)))),
        ("end of speech → bot audio p95 (ms)", each(lambda r: fmt(pct(r.turns(), 95)))),
        ("longest pause inside an answer p95 (ms)", each(lambda r: fmt(pct(r.answer_pauses(), 95)))),
        ("answers cut: caller spoke after a stall (barge-ins)", each(lambda r: str(r.count("BargeIn")))),
        ("bot RTP gap p99 (ms)", each(lambda r: fmt(pct(r.gaps(), 99)))),
        ("bot RTP gap max (ms)", each(lambda r: fmt(float(r.gaps().max()) if r.gaps().size else None))),
        ("CPU per call (% of a core)", each(lambda r: fmt(r.usage.cpu_pct / r.calls))),
        (
            "CPU workers + Kamailio (% of a core)",
            each(lambda r: f"{r.usage.workers_cpu_pct:.0f} + {r.usage.kamailio_cpu_pct:.0f}"),
        ),
        ("pj clock thread waiting for a CPU (ms/s)", each(lambda r: fmt(r.clock_wait_ms_per_s()))),
        ("RSS per call (MiB)", each(lambda r: fmt(r.usage.workers_rss_mib / r.calls))),
        ("RSS workers, peak (MiB)", each(lambda r: fmt(r.usage.workers_rss_mib))),
        ("load generator CPU (% of a core)", each(lambda r: fmt(r.generator_cpu_pct))),
        ("load average (1 min, whole machine)", each(lambda r: f"{r.load_average:.1f}")),
    ]
    for stage in (*STAGES, E2E):
        label = "session end of speech → first audio" if stage == E2E else f"session {stage.removesuffix('_ms')}"
        out.append((f"{label} p50 / p95 (ms)", each(lambda r, s=stage: pair(r.timings(s)))))
    return out


def targets(results: list[LevelResult]) -> dict[str, str]:
    """Row label -> 'TARGET: met|missed'."""
    by_calls = {r.calls: r for r in results}
    out: dict[str, str] = {}

    def judge(value: float | None, limit: float) -> str:
        return "not measured" if value is None else ("met" if value <= limit else f"missed ({value:.0f})")

    worst = max((v for r in results if (v := pct(r.greetings(), 95)) is not None), default=None)
    out["INVITE → greeting audio p95 (ms)"] = f"≤ {GREETING_TARGET_MS} every level: {judge(worst, GREETING_TARGET_MS)}"
    single = by_calls.get(1)
    out["end of speech → bot audio p50 (ms)"] = f"≤ {V2V_P50_TARGET_MS} at 1 call: " + (
        judge(pct(single.turns(), 50), V2V_P50_TARGET_MS) if single else "not run"
    )
    loaded = by_calls.get(LOAD_LEVEL)
    out["end of speech → bot audio p95 (ms)"] = f"≤ {V2V_P95_TARGET_MS} at {LOAD_LEVEL} calls: " + (
        judge(pct(loaded.turns(), 95), V2V_P95_TARGET_MS) if loaded else "not run"
    )
    out["bot RTP gap p99 (ms)"] = f"≤ {GAP_P99_TARGET_MS} at {LOAD_LEVEL} calls: " + (
        judge(pct(loaded.gaps(), 99), GAP_P99_TARGET_MS) if loaded else "not run"
    )
    return out


def print_table(results: list[LevelResult], judged: dict[str, str]) -> None:
    header = ["metric", *[f"{r.calls} call{'s' * (r.calls > 1)}" for r in results], "target"]
    body = [[label, *cells, judged.get(label, "")] for label, cells in rows(results)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    print(line(header))
    print(
        "|"
        + "|".join(("-" * (w + 1) + ":" if 0 < i < len(widths) - 1 else "-" * (w + 2)) for i, w in enumerate(widths))
        + "|"
    )
    for cells in body:
        print(line(cells))


def print_profile(results: list[LevelResult], judged: dict[str, str]) -> None:
    """Where the time goes, for the levels whose figures missed a target."""
    missed = {label for label, verdict in judged.items() if "missed" in verdict}
    if not missed:
        return
    print("\n## Where the time goes (targets missed)\n")
    for r in results:
        print(
            f"{r.calls} call(s), {r.workers} worker(s), CPU {r.usage.cpu_pct:.0f} % of a core "
            f"(2 cores = 200 %), load average {r.load_average:.1f}:"
        )
        if any("greeting" in label for label in missed):
            phases = {**r.sip_phases(), "session: call start -> disclosure speech": r.session_greeting_ms()}
            print("  greeting  " + "; ".join(f"{name} {pair(v)}" for name, v in phases.items()) + " ms (p50 / p95)")
        if any("bot audio" in label for label in missed):
            stages = "; ".join(f"{s.removesuffix('_ms')} {pair(r.timings(s))}" for s in (*STAGES, E2E))
            caller_p50, session_p50 = pct(r.turns(), 50), pct(r.timings(E2E), 50)
            outside = None if caller_p50 is None or session_p50 is None else caller_p50 - session_p50
            print(
                f"  turn      {stages} ms (p50 / p95); caller p50 minus session p50 {fmt(outside)} ms over "
                f"{len(r.turns())} caller / {len(r.timings(E2E))} session turns (RTP both ways, jitter buffer, the "
                "VAD's hangover; a barged-in turn has no session timings)"
            )
        if any("gap" in label for label in missed) and r.gaps().size:
            gaps = r.gaps()
            late = float(np.mean(gaps > GAP_P99_TARGET_MS)) * 100
            print(
                f"  RTP       {late:.2f} % of gaps > {GAP_P99_TARGET_MS} ms, p99.9 {fmt(pct(gaps, 99.9))} ms, "
                f"max {gaps.max():.0f} ms over {gaps.size} gaps"
            )


def dump_json(path: Path, results: list[LevelResult]) -> None:
    raw = [
        {
            "calls": r.calls,
            "workers": r.workers,
            "greeting_ms": r.greetings(),
            "turn_ms": r.turns(),
            "answer_pause_ms": r.answer_pauses(),
            "gap_p99_ms": pct(r.gaps(), 99),
            "usage": dataclasses.asdict(r.usage),
            "generator_cpu_pct": r.generator_cpu_pct,
            "load_average": r.load_average,
            "turn_timings": [e for e in r.events if e["event"] == "TurnTimings"],
            "errors": [e for m in r.measures for e in m.errors],
        }
        for r in results
    ]
    path.write_text(json.dumps(raw, indent=2))
