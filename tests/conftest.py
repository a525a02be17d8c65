"""Shared pytest fixtures. Each section owns its fixtures; add new sections below."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from dialogue.rasa_client import RasaRestClient
from dialogue.rasa_service import RasaService

REPO_ROOT = Path(__file__).resolve().parent.parent

# --- Rasa ----------------------------------------------------------------------------------------
# One Rasa server for the whole session (loading takes ~30-80 s and ~1.3 GB). A server left running
# on the test port with the test token is reused; one started here is stopped at the end.

RASA_PROJECT = REPO_ROOT / "dialogue" / "rasa"
RASA_TEST_PORT = int(os.environ.get("VOICEBOT_RASA_TEST_PORT", "5055"))
RASA_TEST_TOKEN = os.environ.get("VOICEBOT_RASA_TEST_TOKEN", "voicebot-tests")


def rasa_venv() -> Path:
    return Path(os.environ.get("VOICEBOT_RASA_VENV", str(REPO_ROOT / ".venv-rasa")))


def _report(line: str) -> None:
    # Fixture output is captured by pytest and shown with the first test's report on failure.
    print(f"[rasa] {line}", file=sys.stderr)


@pytest.fixture(scope="session")
def rasa_project() -> RasaService:
    """The repository's Rasa project and venv, neither trained nor started by this fixture."""
    return RasaService(RASA_PROJECT, rasa_venv(), port=RASA_TEST_PORT, auth_token=RASA_TEST_TOKEN)


@pytest.fixture(scope="session")
def rasa_service(rasa_project: RasaService) -> Iterator[RasaService]:
    """A trained model (retrained only when stale) served at rasa_service.url."""
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
