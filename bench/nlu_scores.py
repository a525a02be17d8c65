"""Intent macro-F1 and case-reference accuracy of the trained model on every held-out set, per language (the
figures in the README). Starts its own Rasa server on 5405/5455; `--rasa-url` is not supported on purpose: the
scores must come from the model on disk.

    .venv/bin/python bench/nlu_scores.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialogue.rasa_service import RasaService
from tests.integration.test_nlu_eval import (
    BLIND_SETS,
    HELDOUT_SETS,
    LANGUAGES,
    extracted_reference,
    heldout_examples,
    intent_score,
)
from voicebot.config import REPO_ROOT


def main() -> int:
    service = RasaService(REPO_ROOT / "dialogue" / "rasa", REPO_ROOT / ".venv-rasa", port=5405, actions_port=5455)
    service.ensure_running()
    try:
        print(f"{'set':<22} {'lang':<4} {'n':>4} {'macro-F1':>9} {'refs':>5} {'ref acc':>8}")
        for language in LANGUAGES:
            for name in (*HELDOUT_SETS, "blind pooled"):
                sets = BLIND_SETS if name == "blind pooled" else (name,)
                examples = [e for s in sets for e in heldout_examples(s, language)]
                score, _ = intent_score(service, examples)
                refs = [e for e in examples if e.reference]
                hits = sum(extracted_reference(service, e.text, language) == e.reference for e in refs)
                print(f"{name:<22} {language:<4} {len(examples):>4} {score:>9.3f} {len(refs):>5} "
                      f"{hits / len(refs):>8.3f}")  # fmt: skip
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
