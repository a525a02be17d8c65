"""Transfer rules with versions, in the operations database. Every save that changes the text is a new version and
nothing is overwritten; the newest version is live. A text that does not validate is refused with its problems and
the live version stays as it was. An empty store is seeded with `data/transfer_rules.yaml` as version 1."""

from __future__ import annotations

import difflib
import hashlib
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import sqlite_utils
import yaml

from dialogue.acd import Acd
from dialogue.agents import QueueSpec, load_directory
from dialogue.ops_db import connect
from dialogue.state import DATA_DIR, REPO_ROOT
from dialogue.transfer_rules import RuleError, RuleProblem, RuleSet, parse_rules

DEFAULT_RULES_FILE = DATA_DIR / "transfer_rules.yaml"
DEFAULT_DIRECTORY_FILE = DATA_DIR / "agents.yaml"
DOMAIN_FILE = REPO_ROOT / "dialogue" / "rasa" / "domain.yml"
RASA_BUILTIN_INTENTS = ("nlu_fallback",)
SCHEMA = """CREATE TABLE IF NOT EXISTS rules_versions (
    version INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rule_count INTEGER NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
)"""

Validator = Callable[[str], RuleSet]


class RuleStore:
    def __init__(
        self,
        db_path: Path,
        validator: Validator,
        *,
        seed: Path | None = DEFAULT_RULES_FILE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db_path = db_path
        self.validator = validator
        self.seed = seed
        self.clock = clock
        self._compiled: tuple[int, RuleSet] | None = None  # versions never change: cache the parsed newest one
        self._seeded = False

    def save(self, text: str, author: str, comment: str = "") -> int:
        """The new live version number (the live one when `text` is unchanged). RuleError: nothing is written."""
        rules = self.validator(text)
        self._ensure_seeded()
        with connect(self.db_path) as db:
            live = _newest(db)
            if live is not None and live["text"] == text:
                return int(live["version"])
            return self._insert(db, text, len(rules), author, comment)

    def live(self) -> tuple[int, str, RuleSet] | None:
        """The live version, its text and its rules; None when the store is empty and has no seed. RuleError if the
        live text no longer validates (e.g. a queue it names was removed): callers fall back to the dialogue's queue."""
        self._ensure_seeded()
        with connect(self.db_path) as db:
            row = _newest(db)
        if row is None:
            return None
        version, text = int(row["version"]), str(row["text"])
        if self._compiled is None or self._compiled[0] != version:
            self._compiled = (version, self.validator(text))
        return version, text, self._compiled[1]

    def versions(self) -> list[dict[str, Any]]:
        """Newest first: version, author, comment, created_at, rule_count, sha256, live."""
        self._ensure_seeded()
        with connect(self.db_path) as db:
            rows = list(
                db.query(
                    "SELECT version, author, comment, created_at, rule_count, sha256 FROM rules_versions "
                    "ORDER BY version DESC"
                )
            )
        return [{**row, "live": index == 0} for index, row in enumerate(rows)]

    def text_of(self, version: int) -> str:
        """KeyError names the versions there are."""
        self._ensure_seeded()
        with connect(self.db_path) as db:
            row = next(db.query("SELECT text FROM rules_versions WHERE version = ?", [version]), None)
            if row is None:
                newest = _newest(db)
                known = f"versions 1 to {newest['version']}" if newest else "no versions yet"
                raise KeyError(f"no transfer rules version {version} ({known})")
        return str(row["text"])

    def diff(self, text: str, against: int | None = None) -> str:
        """A unified diff from the live version (or version `against`) to `text`; empty when they are the same."""
        if against is None:
            live = self.live_text()
            base_version, base = live if live else (0, "")
        else:
            base_version, base = against, self.text_of(against)
        lines = difflib.unified_diff(
            base.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"version {base_version}" if base_version else "(no rules)",
            tofile="edited",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def live_text(self) -> tuple[int, str] | None:
        """The live version and its text, without validating it."""
        self._ensure_seeded()
        with connect(self.db_path) as db:
            row = _newest(db)
        return (int(row["version"]), str(row["text"])) if row else None

    def _ensure_seeded(self) -> None:
        """Creates the table; an empty store gets the seed file as version 1 (validated outside any transaction:
        the validator reads the ACD's queues from the same database)."""
        if self._seeded:
            return
        with connect(self.db_path) as db:
            db.execute(SCHEMA)
            empty = _newest(db) is None
        if empty and self.seed is not None:
            text = self.seed.read_text(encoding="utf-8")
            try:
                rules = self.validator(text)
            except RuleError as exc:
                problems = [RuleProblem(f"{self.seed} (seed) {p.where}", p.message, p.line) for p in exc.problems]
                raise RuleError(problems) from exc
            with connect(self.db_path) as db:
                if _newest(db) is None:
                    self._insert(db, text, len(rules), "seed", f"seeded from {self.seed.name}")
        self._seeded = True

    def _insert(self, db: sqlite_utils.Database, text: str, rule_count: int, author: str, comment: str) -> int:
        newest = _newest(db)
        version = int(newest["version"]) + 1 if newest else 1
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        db.execute(
            "INSERT INTO rules_versions (version, text, sha256, rule_count, author, comment, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [version, text, digest, rule_count, author, comment, self.clock()],
        )
        return version


def _newest(db: sqlite_utils.Database) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM rules_versions ORDER BY version DESC LIMIT 1"), None)


# --- what the rules are checked against -------------------------------------------------------------------


@cache
def known_intents(domain_file: Path = DOMAIN_FILE) -> frozenset[str]:
    """The dialogue's intents (domain.yml) and Rasa's nlu_fallback."""
    domain = yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}
    names = [item if isinstance(item, str) else next(iter(item)) for item in domain.get("intents", [])]
    return frozenset([*names, *RASA_BUILTIN_INTENTS])


def current_queues(db_path: Path, directory: Path = DEFAULT_DIRECTORY_FILE) -> list[QueueSpec]:
    """The ACD's queues in the operations database; the directory file's when the ACD has none yet."""
    queues = Acd(db_path).queues()
    if not queues and directory.exists():
        queues = load_directory(directory)[1]
    return queues


def known_queue_names(db_path: Path, directory: Path = DEFAULT_DIRECTORY_FILE) -> frozenset[str]:
    return frozenset(queue.name for queue in current_queues(db_path, directory))


def rules_validator(db_path: Path, languages: Iterable[str], domain_file: Path = DOMAIN_FILE) -> Validator:
    """Validates against the dialogue's intents, the queues as they are when it runs, and `languages`."""
    supported = tuple(languages)

    def validate(text: str) -> RuleSet:
        return parse_rules(
            text,
            known_intents=known_intents(domain_file),
            known_queues=known_queue_names(db_path),
            languages=supported,
        )

    return validate
