"""`voicebot rules validate|import|export|history` as a supervisor runs them, on a fresh operations database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dialogue.rule_store import DEFAULT_RULES_FILE

REPO = Path(__file__).resolve().parents[2]
SEED_TEXT = DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def rules_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VOICEBOT_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "rules", *args], capture_output=True, text=True, env=env, cwd=REPO
    )


def test_import_export_and_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    edited = tmp_path / "edited.yaml"
    edited.write_text(SEED_TEXT.replace("expected_wait_above_s: 900", "expected_wait_above_s: 600"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(SEED_TEXT.replace("business_hours: closed", "business_hours: shut"), encoding="utf-8")

    valid = rules_cli(state, "validate", str(edited))
    assert (valid.returncode, valid.stdout) == (0, f"{edited}: {SEED_TEXT.count('  - name: ')} rules, valid\n")

    imported = rules_cli(state, "import", str(edited), "--author", "alice", "--comment", "shorter wait")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == f"version 2 is live ({edited}, by alice)\n"  # version 1 is the seed

    refused = rules_cli(state, "import", str(broken), "--author", "mallory")
    assert refused.returncode == 1
    line = SEED_TEXT.splitlines().index("      business_hours: closed") + 1
    assert refused.stderr.splitlines() == [
        f"{broken}:{line}: rules[7] (out-of-hours) .when.business_hours: expected open or closed, got 'shut' (text)",
        f"voicebot: error: {broken}: 1 problem; the live rules (version 2) were not changed",
    ]

    history = rules_cli(state, "history").stdout.splitlines()
    assert history[1].startswith("*       2  ") and history[2].startswith("        1  "), history
    assert "alice" in history[1] and "shorter wait" in history[1] and "seed" in history[2]

    assert rules_cli(state, "export").stdout == edited.read_text(encoding="utf-8")
    out = tmp_path / "v1.yaml"
    assert rules_cli(state, "export", "--version", "1", "-o", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8") == SEED_TEXT
    missing = rules_cli(state, "export", "--version", "5")
    assert (missing.returncode, missing.stderr) == (
        2,
        "voicebot: error: no transfer rules version 5 (versions 1 to 2)\n",
    )
