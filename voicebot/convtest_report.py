"""Conversation test results as a terminal table and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from voicebot.convtest import DialogueOutcome


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(outcomes: list[DialogueOutcome]) -> str:
    header = f"{'dialogue':<28} {'#':>2} {'heard':<34} {'intent':<20} {'reply':<34} result"
    lines = [header, "-" * len(header)]
    for dialogue in outcomes:
        name = _clip(dialogue.spec.name, 28)
        if dialogue.error:
            lines.append(f"{name:<28} {'-':>2} {'':<34} {'':<20} {'':<34} ERROR {dialogue.error}")
            continue
        for index, turn in enumerate(dialogue.turns, start=1):
            result = "ok" if turn.passed else "FAIL " + "; ".join(turn.failures)
            lines.append(
                f"{name:<28} {index:>2} {_clip(turn.heard, 34):<34} {_clip(turn.intent or '-', 20):<20} "
                f"{_clip(' '.join(turn.replies), 34):<34} {result}"
            )
            name = ""
    passed = sum(d.passed for d in outcomes)
    lines.append(f"{passed} passed, {len(outcomes) - passed} failed")
    return "\n".join(lines)


def junit(outcomes: list[DialogueOutcome], path: Path) -> None:
    failures = sum(not d.passed for d in outcomes)
    suite = ET.Element(
        "testsuite", name="voicebot conversations", tests=str(len(outcomes)), failures=str(failures), errors="0"
    )
    for dialogue in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=dialogue.spec.path.stem,
            name=dialogue.spec.name,
            time=f"{dialogue.seconds:.2f}",
        )
        problems = [dialogue.error] if dialogue.error else []
        problems += [f"turn {i}: {f}" for i, t in enumerate(dialogue.turns, start=1) for f in t.failures]
        if problems:
            failure = ET.SubElement(case, "failure", message=problems[0])
            failure.text = "\n".join(problems)
        transcript = [
            f"turn {i}: heard {t.heard!r} -> {' '.join(t.replies)!r}" for i, t in enumerate(dialogue.turns, 1)
        ]
        ET.SubElement(case, "system-out").text = "\n".join(transcript)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
