"""A caller whose queue database failed must not stay "waiting" in it: leaving is retried until the database is
back, over a real operations database that is broken and then restored."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import telephony.queue_hold as queue_hold
from dialogue.acd import Acd
from dialogue.agents import QueueSpec

from .test_console_auth import ALWAYS_OPEN


async def test_leaving_the_queue_is_retried_until_the_database_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_hold, "LEAVE_RETRY_S", 0.05)
    path = tmp_path / "operations.db"
    acd = Acd(path)
    acd.seed([], [QueueSpec("general-en", "en", ALWAYS_OPEN)])
    acd.enqueue("c1", "general-en", 0, "en", {})
    shutil.move(path, tmp_path / "saved.db")
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception, match="not a database"):
        acd.call_ended("c1")
    retry = asyncio.create_task(queue_hold._leave_queue_later(acd, "c1"))
    await asyncio.sleep(0.2)
    assert not retry.done()
    path.unlink()
    shutil.move(tmp_path / "saved.db", path)
    await asyncio.wait_for(retry, 5)
    assert acd.snapshot()["calls"] == []
