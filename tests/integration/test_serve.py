"""`voicebot serve --workers 3`: Kamailio in front of three SIP workers takes more calls than one pjsua2 process can."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialogue.rasa_service import RasaService
from tests.support.sip_harness import write_config
from voicebot.config import REPO_ROOT

pytestmark = pytest.mark.rasa

CONSOLE_PORT = 8190
FRONT_PORT = 5500


@dataclass
class Served:
    process: subprocess.Popen[str]
    uri: str
    run_dir: Path
    stderr_path: Path


@pytest.fixture(scope="module")
def served(rasa_service: RasaService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve")
    config = write_config(
        folder / "voicebot.yaml",
        {
            "cache_dir": str(folder / "cache"),
            "dialogue": {"auth_token": rasa_service.auth_token, "timeout_s": 15.0},
            # Every call comes from one source here (the load generator), as from a trunk provider's gateway.
            # blind: in queue mode each worker keeps one of its 4 pjsua slots for the call to an agent
            "sip": {"rtp_port": 46000, "worker_base_port": 5510, "invite_rate_per_s": 20.0, "transfer_mode": "blind"},
            "console": {"port": CONSOLE_PORT},
        },
    )
    stderr_path = folder / "serve.err"
    command = [sys.executable, "-m", "voicebot.cli", "serve", "--config", str(config), "--workers", "3",
               "--port", str(FRONT_PORT), "--rasa-url", rasa_service.url]  # fmt: skip
    with stderr_path.open("w") as err:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + 180
    while "call sip:" not in stderr_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"serve did not start:\n{stderr_path.read_text()[-3000:]}")
        time.sleep(0.5)
    served = Served(process, f"sip:voicebot@127.0.0.1:{FRONT_PORT}", folder / "cache" / "run", stderr_path)
    yield served
    if process.poll() is None:
        process.kill()


async def test_ten_concurrent_calls_are_answered_behind_kamailio(served: Served) -> None:
    from telephony.uac import run_load

    results = await run_load(served.uri, 10, hold_s=6.0)
    assert [r.status for r in results] == [200] * 10, [(r.status, r.reason, r.errors) for r in results]
    assert all(r.first_audio_after(r.invite_sent_at) is not None for r in results), "every caller is greeted"
    logs = {p.name: p.read_text() for p in served.run_dir.glob("worker-*.log")}
    answered_by = {name: text.count(" from ") for name, text in logs.items()}
    assert len(answered_by) == 3 and all(n >= 2 for n in answered_by.values()), answered_by


def test_serve_also_runs_the_console_on_loopback(served: Served) -> None:
    import httpx

    page = httpx.get(f"http://127.0.0.1:{CONSOLE_PORT}/login", timeout=10)
    assert page.status_code == 200 and "password" in page.text.lower(), page.text[:500]
    assert "console at http://127.0.0.1:" in served.stderr_path.read_text()


def test_shutdown_drains_and_exits_cleanly(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(60) == 0, served.stderr_path.read_text()[-3000:]
    for log in served.run_dir.glob("worker-*.log"):
        text = log.read_text()
        assert "Traceback" not in text and "Assertion" not in text, text[-3000:]
