"""`voicebot serve --workers 3`: Kamailio in front of three SIP workers takes more calls than one pjsua2 process can;
the console's /metrics adds up what the workers counted, and the logs are JSON lines naming the call."""

from __future__ import annotations

import asyncio
import json
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
from voicebot.audio import AudioChunk, read_wav
from voicebot.config import REPO_ROOT

pytestmark = pytest.mark.rasa

CONSOLE_PORT = 8190
FRONT_PORT = 5500
GREETING_S = 6.5  # disclosure + greeting last ~6 s: the caller speaks after them
SAMPLE_CALL = REPO_ROOT / "data" / "samples" / "caller-opening-hours.wav"


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
    command = [sys.executable, "-m", "voicebot.cli", "-v", "serve", "--config", str(config), "--workers", "3",
               "--port", str(FRONT_PORT), "--rasa-url", rasa_service.url, "--log-format", "json"]  # fmt: skip
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


def scrape_metrics() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    page = httpx.get(f"http://127.0.0.1:{CONSOLE_PORT}/metrics", timeout=10)  # no login: Prometheus scrapes it
    assert page.status_code == 200, page.text[:500]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, labels_of), value in samples.items() if sample == name and wanted <= labels_of)


async def test_metrics_count_the_calls_turns_and_latencies_of_every_worker(served: Served) -> None:
    from telephony.uac import place_call

    sample = read_wav(SAMPLE_CALL).to_mono().resample(16000)
    question = AudioChunk(sample.audio[int(5.3 * 16000) * 2 : int(7.6 * 16000) * 2], 16000)  # opening hours
    result = await place_call(served.uri, audio=question.resample(8000), audio_delay_s=GREETING_S,
                              hold_s=GREETING_S + question.duration_s + 8.0)  # fmt: skip
    assert result.status == 200, (result.status, result.reason, result.errors)
    deadline = time.monotonic() + 30
    samples = scrape_metrics()
    while (total(samples, "voicebot_turns_total") == 0 or total(samples, "voicebot_calls_active") > 0) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.5)
        samples = scrape_metrics()
    assert total(samples, "voicebot_turns_total") > 0, "the caller's question was not counted as a turn"
    assert total(samples, "voicebot_calls_total") >= 1
    assert total(samples, "voicebot_calls_active") == 0, "every call has ended"
    for stage in ("asr", "dialogue", "response"):
        assert total(samples, "voicebot_stage_latency_seconds_count", stage=stage) > 0, stage

    lines = [json.loads(line) for log in served.run_dir.glob("worker-*.log")
             for line in log.read_text().splitlines() if line.startswith("{")]  # fmt: skip
    timings = [line for line in lines if line["logger"] == "voicebot.call" and '"TurnTimings"' in line["message"]]
    assert timings and all(line.get("call_id") == json.loads(line["message"])["call_id"] for line in timings), timings
    assert any(line["logger"] == "telephony.worker" and " from " in line["message"] for line in lines)


def test_shutdown_drains_and_exits_cleanly(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(60) == 0, served.stderr_path.read_text()[-3000:]
    for log in served.run_dir.glob("worker-*.log"):
        text = log.read_text()
        assert "Traceback" not in text and "Assertion" not in text, text[-3000:]
