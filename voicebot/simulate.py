"""`voicebot simulate`: a recorded caller through the whole pipeline, with a stereo WAV and a JSON transcript."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicebot import events as ev
from voicebot.audio import AudioChunk, AudioFormat
from voicebot.compose import Runtime
from voicebot.degrade import telephone
from voicebot.sinks import FanOut, JsonlSink, LogSink, MemorySink, event_json
from voicebot.virtual_call import RecordingControl, VirtualCall

DEFAULT_CALLER = Path(__file__).resolve().parent.parent / "data" / "samples" / "caller-opening-hours.wav"


@dataclass(frozen=True)
class ChannelSpec:
    rate: int = 16000
    codec: str | None = None  # pcmu / pcma: the caller's audio goes through G.711 as on a phone line

    def __post_init__(self) -> None:
        if self.codec is not None and self.rate != 8000:
            raise ValueError(f"codec {self.codec} runs at 8000 Hz: add --rate 8000")

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.rate)

    def line(self, audio: AudioChunk) -> AudioChunk:
        """What the caller's audio sounds like once it reached us over this channel."""
        if self.codec:
            return telephone(audio, self.codec)
        return audio.to_mono().resample(self.rate)


@dataclass(frozen=True)
class SimulationResult:
    call_id: str
    outcome: str
    events: list[ev.CallEvent]
    stereo: AudioChunk

    def turns(self) -> list[dict[str, Any]]:
        return summarise_turns(self.events)


async def simulate_call(
    runtime: Runtime,
    caller_audio: AudioChunk,
    channel: ChannelSpec,
    language: str | None = None,
    speed: float = 0.0,
    events_path: Path | None = None,
    welcome: bool = True,
) -> SimulationResult:
    call_id = f"sim-{uuid.uuid4().hex[:8]}"
    memory = MemorySink()
    sinks: list[Any] = [memory, LogSink()]
    jsonl = JsonlSink(events_path) if events_path else None
    if jsonl:
        sinks.append(jsonl)
    control = RecordingControl()
    session = runtime.session(
        call_id, channel.format, control, FanOut(sinks), caller="simulator", language=language, welcome=welcome
    )
    call = VirtualCall(session, channel.format, speed)
    try:
        await session.start()
        await call.wait_until_quiet()
        await call.play(channel.line(caller_audio))
        await call.wait_until_quiet(quiet_s=0.5)
        outcome = await session.close("hangup-by-caller")
    finally:
        if jsonl:
            jsonl.close()
    return SimulationResult(call_id, outcome, memory.events, call.stereo())


def summarise_turns(events: list[ev.CallEvent]) -> list[dict[str, Any]]:
    """One entry per caller turn: what was heard, understood, answered, and how long each stage took."""
    turns: dict[int, dict[str, Any]] = {}

    def turn(number: int) -> dict[str, Any]:
        return turns.setdefault(number, {"turn": number, "caller": None, "bot": [], "interrupted": False})

    for event in events:
        if isinstance(event, ev.Transcript):
            entry = turn(event.turn)
            entry.update(caller=event.text, accepted=event.accepted, language=event.language)
            entry["language_probability"] = event.language_probability
            entry["rejected_because"] = event.rejected_because
        elif isinstance(event, ev.DialogueReplied):
            turn(event.turn).update(intent=event.intent, confidence=event.confidence, slots=event.slots)
        elif isinstance(event, ev.BotSpeechStarted):
            turn(event.turn)["bot"].append({"text": event.text, "prompt": event.prompt, "t": event.t})
        elif isinstance(event, ev.BotSpeechEnded) and event.interrupted:
            turn(event.turn)["interrupted"] = True
        elif isinstance(event, ev.TurnTimings):
            turn(event.turn)["timings_ms"] = {k: v for k, v in event.to_dict().items() if k.endswith("_ms")}
        elif isinstance(event, ev.TransferRequested):
            turn(_last_turn(turns))["transfer"] = {"queue": event.queue, "reason": event.reason}
        elif isinstance(event, ev.HangupRequested):
            turn(_last_turn(turns))["hangup"] = True
        elif isinstance(event, ev.CallError):
            turn(_last_turn(turns)).setdefault("errors", []).append({"stage": event.stage, "error": event.error})
    return [turns[k] for k in sorted(turns)]


def _last_turn(turns: dict[int, dict[str, Any]]) -> int:
    return max(turns) if turns else 0


def write_outputs(result: SimulationResult, out_dir: Path, source: str, channel: ChannelSpec) -> tuple[Path, Path]:
    from voicebot.audio import write_wav

    out_dir.mkdir(parents=True, exist_ok=True)
    wav_path = out_dir / f"{result.call_id}.wav"
    json_path = out_dir / f"{result.call_id}.json"
    write_wav(wav_path, result.stereo)
    document = {
        "call_id": result.call_id,
        "source": source,
        "channel": {"rate": channel.rate, "codec": channel.codec},
        "outcome": result.outcome,
        "stereo_wav": str(wav_path),
        "turns": result.turns(),
        "events": [json.loads(event_json(e)) for e in result.events],
    }
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return wav_path, json_path
