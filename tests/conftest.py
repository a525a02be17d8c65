"""Shared pytest fixtures. Each section owns its fixtures; add new sections below."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from dialogue.kb import KnowledgeBase
from dialogue.rasa_client import RasaRestClient
from dialogue.rasa_service import RasaService
from dialogue.state import DATA_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent

# --- Rasa ----------------------------------------------------------------------------------------
# One Rasa server + action server for the whole session (loading takes ~30-80 s and ~1.3 GB). Servers
# left running on the test ports with the test token are reused; ones started here are stopped at the
# end. Test ports differ from the defaults (5005 / 5055) so a dev server can keep running. The action
# server keeps its databases (KB, cases, tickets, ratings) in RASA_TEST_STATE_DIR.

RASA_PROJECT = REPO_ROOT / "dialogue" / "rasa"
RASA_TEST_PORT = int(os.environ.get("VOICEBOT_RASA_TEST_PORT", "5065"))
RASA_TEST_ACTIONS_PORT = int(os.environ.get("VOICEBOT_RASA_TEST_ACTIONS_PORT", "5066"))
RASA_TEST_TOKEN = os.environ.get("VOICEBOT_RASA_TEST_TOKEN", "voicebot-tests")
RASA_TEST_STATE_DIR = REPO_ROOT / ".cache" / "test-state"


def rasa_venv() -> Path:
    return Path(os.environ.get("VOICEBOT_RASA_VENV", str(REPO_ROOT / ".venv-rasa")))


def _report(line: str) -> None:
    # Fixture output is captured by pytest and shown with the first test's report on failure.
    print(f"[rasa] {line}", file=sys.stderr)


@pytest.fixture(scope="session")
def rasa_project() -> RasaService:
    """The repository's Rasa project and venv, neither trained nor started by this fixture."""
    return RasaService(
        RASA_PROJECT,
        rasa_venv(),
        port=RASA_TEST_PORT,
        auth_token=RASA_TEST_TOKEN,
        actions_port=RASA_TEST_ACTIONS_PORT,
    )


@pytest.fixture(scope="session")
def rasa_state_dir() -> Iterator[Path]:
    """VOICEBOT_STATE_DIR of the test action server (inherited by the processes RasaService starts),
    emptied at the start of the session and seeded with the repository's KB files."""
    previous = os.environ.get("VOICEBOT_STATE_DIR")
    os.environ["VOICEBOT_STATE_DIR"] = str(RASA_TEST_STATE_DIR)
    shutil.rmtree(RASA_TEST_STATE_DIR, ignore_errors=True)
    RASA_TEST_STATE_DIR.mkdir(parents=True)
    KnowledgeBase().ensure_seeded(DATA_DIR / "kb")
    yield RASA_TEST_STATE_DIR
    if previous is None:
        os.environ.pop("VOICEBOT_STATE_DIR", None)
    else:
        os.environ["VOICEBOT_STATE_DIR"] = previous


@pytest.fixture(scope="session")
def rasa_service(rasa_project: RasaService, rasa_state_dir: Path) -> Iterator[RasaService]:
    """A trained model (retrained only when stale) served at rasa_service.url, with its action server."""
    service = rasa_project
    service.train(_report)
    waited_since = time.monotonic()
    started_here = service.ensure_running(timeout=240)
    how = f"started, ready in {time.monotonic() - waited_since:.0f} s" if started_here else "reused"
    _report(f"server at {service.url} ({how})")
    yield service
    if started_here:
        service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def rasa_client(rasa_service: RasaService) -> AsyncIterator[RasaRestClient]:
    """A client for the session's Rasa server. Tests using it run on the session loop:
    mark them `@pytest.mark.asyncio(loop_scope="session")`."""
    async with RasaRestClient(rasa_service.url, rasa_service.auth_token, timeout_s=10.0) as client:
        yield client
