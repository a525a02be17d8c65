"""The asyncio test caller (telephony.uac) against a real pjsua2 user agent (tests/support/pjsua_echo.py).

The pjsua2 process answers every call; the Request-URI's user picks what it does (echo, play, hangup,
transfer, reinvite). Its stdout lines (INCOMING, MEDIA, DTMF, XFER, DISCONNECTED, with the SIP Call-ID)
say what pjsua2 saw.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from telephony.uac import CallOptions, CallResult, SipCaller, run_load
from voicebot.audio import AudioChunk, read_wav

REPO = Path(__file__).resolve().parents[2]
UAS_SCRIPT = REPO / "tests" / "support" / "pjsua_echo.py"
SPEECH = REPO / ".cache" / "recordings" / "jfk.wav"
UAS_PORT, UAS_RTP_PORT = 15070, 17000
CALLER_RTP = (16000, 16399)


class PjsuaUas:
    """The pjsua2 process and the lines it printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(UAS_SCRIPT), "--port", str(UAS_PORT), "--rtp-port", str(UAS_RTP_PORT),
             "--play", str(SPEECH), "--transfer-to", self.uri("echo"), "--hangup-after-s", "1.0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        threading.Thread(target=self._read, daemon=True).start()

    @staticmethod
    def uri(user: str) -> str:
        return f"sip:{user}@127.0.0.1:{UAS_PORT}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def facts(self, kind: str, call_id: str | None = None) -> list[list[str]]:
        rows = [line.split(" ") for line in list(self.lines) if line.startswith(kind + " ")]
        return [row[1:] for row in rows if call_id is None or row[1] == call_id]

    async def wait_for(
        self, kind: str, call_id: str | None = None, count: int = 1, timeout_s: float = 5.0
    ) -> list[list[str]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.facts(kind, call_id)
            if len(found) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        log = "\n".join(self.lines)
        assert len(found) >= count, f"pjsua2 printed {len(found)} {kind} line(s) for {call_id}:\n{log}"
        return found

    async def final_transfer_status(self, call_id: str, timeout_s: float = 5.0) -> list[str]:
        """The transfer's final NOTIFY as pjsua2 printed it (status, final flag): a 100 Trying may come first."""
        deadline = time.monotonic() + timeout_s
        while not (final := [fact for fact in self.facts("XFER", call_id) if fact[-1] == "1"]):
            assert time.monotonic() < deadline, f"no final transfer NOTIFY for {call_id}:\n" + "\n".join(self.lines)
            await asyncio.sleep(0.02)
        return final[-1][1:]

    async def wait_idle(self) -> None:
        """Every call pjsua2 accepted has disconnected (the 4 slots are free)."""
        await self.wait_for("DISCONNECTED", count=len(self.facts("INCOMING")), timeout_s=10)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def uas() -> Iterator[PjsuaUas]:
    far_end = PjsuaUas()
    deadline = time.monotonic() + 20
    while not far_end.facts("READY") and far_end.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert far_end.facts("READY"), "pjsua2 UAS did not start:\n" + "\n".join(far_end.lines)
    yield far_end
    assert far_end.stop() == 0, "\n".join(far_end.lines)
    assert "DONE" in far_end.lines


def tone(hz: float, seconds: float, rate: int = 16000) -> AudioChunk:
    t = np.arange(int(seconds * rate)) / rate
    return AudioChunk.from_samples(0.3 * np.sin(2 * np.pi * hz * t), rate)


def dominant_hz(chunk: AudioChunk) -> float:
    samples = chunk.to_float()
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / chunk.rate)[int(np.argmax(spectrum))])


def slice_after(result: CallResult, start: float, seconds: float) -> AudioChunk:
    """Received audio from the packet that arrived at `start` on (placement follows RTP timestamps)."""
    first = result.rtp_arrivals.index(next(at for at in result.rtp_arrivals if at >= start))
    audio = result.received_audio.samples()
    offset = round((result.rtp_arrivals[first] - result.rtp_arrivals[0]) * 8000)
    return AudioChunk.from_samples(audio[offset : offset + int(seconds * 8000)], 8000)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
async def test_answered_call_echoes_the_callers_tone_and_our_bye_ends_it(uas: PjsuaUas, codec: str) -> None:
    async with SipCaller(rtp_ports=CALLER_RTP, options=CallOptions(codecs=(codec,))) as caller:
        call = await caller.call(uas.uri("echo"))
        assert (call.status, call.codec) == (200, codec)
        await asyncio.sleep(0.3)
        played = await call.play(tone(1000, 1.0))
        heard = await call.wait_for_audio(played.started_at, timeout_s=2.0)
        await asyncio.sleep(0.3)
        await call.hangup()
    result = call.result()
    assert result.answered and result.first_rtp_at is not None and result.errors == ()
    assert heard is not None and result.first_audio_after(played.started_at) == heard
    assert abs(dominant_hz(slice_after(result, heard + 0.1, 0.5)) - 1000) < 20
    assert not result.bye_from_remote
    assert (await uas.wait_for("MEDIA", call.call_id))[0][1] == codec.upper()
    assert (await uas.wait_for("DISCONNECTED", call.call_id))[0][1] == "200"


async def test_played_file_arrives_as_the_same_speech(uas: PjsuaUas) -> None:
    async with SipCaller(rtp_ports=CALLER_RTP) as caller:
        call = await caller.call(uas.uri("play"))
        await asyncio.sleep(3.0)
        await call.hangup()
    result = call.result()
    reference = read_wav(SPEECH).to_mono().resample(8000).samples().astype(np.float64)[:16000]
    received = result.received_audio.samples().astype(np.float64)
    assert result.first_audio_after(result.invite_sent_at) is not None
    correlation = np.correlate(received, reference, mode="valid")
    energy = np.sqrt(np.convolve(received**2, np.ones(reference.size), mode="valid") * np.sum(reference**2))
    assert float(np.max(correlation / np.maximum(energy, 1.0))) > 0.8  # G.711 and resampling keep the waveform


async def test_dtmf_reaches_pjsua2_as_rfc4733_and_as_sip_info(uas: PjsuaUas) -> None:
    async with SipCaller(rtp_ports=CALLER_RTP) as caller:
        call = await caller.call(uas.uri("echo"))
        await call.send_dtmf("123#")
        await call.send_dtmf("5*", method="info")
        digits = await uas.wait_for("DTMF", call.call_id, count=6)
        await call.hangup()
    assert [(row[1], row[2]) for row in digits] == [("1", "0"), ("2", "0"), ("3", "0"), ("#", "0"), ("5", "1"),
                                                    ("*", "1")]
    assert call.result().dtmf_sent == "123#5*" and call.result().errors == ()


async def test_far_end_bye_and_reinvite_are_answered(uas: PjsuaUas) -> None:
    async with SipCaller(rtp_ports=CALLER_RTP) as caller:
        hung_up_by_bot = await caller.call(uas.uri("hangup"))
        reinvited = await caller.call(uas.uri("reinvite"))
        assert await hung_up_by_bot.wait_ended(5.0)
        await uas.wait_for("REINVITE", reinvited.call_id)
        await uas.wait_for("MEDIA", reinvited.call_id, count=2)
        played = await reinvited.play(tone(700, 0.6))
        assert await reinvited.wait_for_audio(played.started_at, timeout_s=2.0) is not None
        assert reinvited.active
        await reinvited.hangup()
    bot_bye = hung_up_by_bot.result()
    assert bot_bye.bye_from_remote and bot_bye.errors == () and bot_bye.ended_at is not None
    assert bot_bye.ended_at - (bot_bye.answered_at or 0) >= 1.0
    assert reinvited.result().errors == () and not reinvited.result().bye_from_remote


async def test_blind_transfer_is_followed_and_declined(uas: PjsuaUas) -> None:
    await uas.wait_idle()
    async with SipCaller(rtp_ports=CALLER_RTP, options=CallOptions(follow_refer=True)) as caller:
        call = await caller.call(uas.uri("transfer"))
        await asyncio.wait_for(call.transferred.wait(), 5.0)
        assert await call.wait_ended(5.0)  # pjsua2 hangs up its leg after the final NOTIFY
        assert call.transfer is not None and call.transfer.active
        played = await call.transfer.play(tone(1000, 0.6))
        assert await call.transfer.wait_for_audio(played.started_at, timeout_s=2.0) is not None
        await call.hangup()
    result = call.result()
    assert result.refer_to is not None and PjsuaUas.uri("echo") in result.refer_to
    assert result.bye_from_remote and result.transfer is not None and result.transfer.status == 200
    assert (await uas.wait_for("XFER", call.call_id, count=2))[-1][1:] == ["200", "1"]
    async with SipCaller(rtp_ports=CALLER_RTP) as caller:
        declined = await caller.call(uas.uri("transfer"))
        assert await uas.final_transfer_status(declined.call_id) == ["603", "1"]
        await declined.hangup()
    assert declined.result().refer_to is not None and declined.result().transfer is None


async def test_fifth_concurrent_call_gets_486(uas: PjsuaUas) -> None:
    await uas.wait_idle()
    async with SipCaller(rtp_ports=CALLER_RTP) as caller:
        results = await run_load(uas.uri("echo"), 5, tone(440, 0.5), hold_s=3.0, caller=caller)
    assert sorted(result.status for result in results) == [200, 200, 200, 200, 486]
    answered = [result for result in results if result.answered]
    assert all(result.errors == () and len(result.played) == 1 and result.played[0].completed for result in answered)
    assert all(result.first_audio_after(result.played[0].started_at) is not None for result in answered)


def test_command_line_prints_one_row_per_call(uas: PjsuaUas) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "telephony.uac", "--target", uas.uri("play"), "--calls", "2", "--hold-s", "1.5",
         "--audio", str(SPEECH), "--rtp-ports", "16400-16499"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[1] for row in rows] == ["200", "200"]
    assert "answered 2/2" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "telephony.uac", "--target", uas.uri("play"), "--audio", "/nope.wav"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.startswith("uac: error: audio file not found: /nope.wav")
