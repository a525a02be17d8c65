"""Dialogue bench: per-turn latency of the Rasa assistant over REST, custom actions included.

    .venv/bin/python bench/dialogue.py [--turns 200] [--train]

FAQ turns (one question, answered from the knowledge base by a custom action) and form turns (the case
status form: request, reference number, confirmation) are measured separately, as voicebot sees them:
the REST webhook call plus the tracker read for intent and slots. `--train` also times a forced training.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialogue.rasa_client import RasaRestClient
from voicebot.cli import progress
from voicebot.compose import ensure_dialogue, rasa_service
from voicebot.config import REPO_ROOT, load_settings
from voicebot.ports import DialogueContext

FAQ = [
    ("en", "what are your opening hours"),
    ("fr", "quels sont vos horaires d'ouverture"),
    ("en", "how do I get a new passport"),
    ("fr", "comment faire une carte d'identité"),
    ("en", "when is the bulky waste collected"),
    ("fr", "c'est quand le ramassage des encombrants"),
    ("en", "how can I pay my property tax"),
    ("fr", "je voudrais un acte de naissance"),
]


def case_references() -> list[str]:
    with (REPO_ROOT / "data" / "cases.csv").open(encoding="utf-8") as handle:
        return [row["reference"] for row in csv.DictReader(handle)]


def spoken(reference: str) -> str:
    return " ".join(ch for ch in reference if ch != "-")


async def timed(client: RasaRestClient, text: str, context: DialogueContext) -> float:
    started = time.perf_counter()
    await client.send(text, context)
    return (time.perf_counter() - started) * 1000


async def faq_turns(client: RasaRestClient, count: int) -> list[float]:
    out = []
    for index, (language, question) in zip(range(count), itertools.cycle(FAQ), strict=False):
        context = DialogueContext(f"bench-faq-{index}", language, 0.95)
        out.append(await timed(client, question, context))
    return out


async def form_turns(client: RasaRestClient, count: int) -> list[float]:
    out: list[float] = []
    references = itertools.cycle(case_references())
    for index in itertools.count():
        context = DialogueContext(f"bench-form-{index}", "en", 0.95)
        script = ["I would like to know where my application stands", f"it is {spoken(next(references))}", "yes"]
        for text in script:
            out.append(await timed(client, text, context))
        if len(out) >= count:
            return out[:count]
    return out


def row(name: str, values: list[float]) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"{name:<28}{len(values):>6}{p50:>10.1f}{p95:>10.1f}{max(values):>10.1f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200, help="turns of each kind")
    parser.add_argument("--train", action="store_true", help="also time a forced training")
    args = parser.parse_args()
    settings = load_settings()
    service = rasa_service(settings)
    train_s = None
    if args.train:
        started = time.perf_counter()
        service.train(lambda _: None, force=True)
        train_s = time.perf_counter() - started
    started_here = ensure_dialogue(settings, progress)
    client = RasaRestClient(settings.dialogue.rasa_url, settings.dialogue.auth_token, timeout_s=10)
    try:
        await faq_turns(client, 10)  # warm-up: first requests load lazily
        faq = await faq_turns(client, args.turns)
        form = await form_turns(client, args.turns)
    finally:
        await client.aclose()
        if started_here is not None:
            started_here.stop()
    print(f"\n{'turn kind':<28}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    print(row("FAQ (KB custom action)", faq))
    print(row("case-status form", form))
    print(row("all", faq + form))
    size_mb = service.model_path.stat().st_size / 1e6
    print(f"\nmodel {service.model_path.name}: {size_mb:.1f} MB" + (f", trained in {train_s:.0f} s" if train_s else ""))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
