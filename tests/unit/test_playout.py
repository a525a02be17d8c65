import asyncio

from voicebot.audio import AudioChunk, AudioFormat
from voicebot.playout import Playout

FMT = AudioFormat(8000)
FRAME = FMT.bytes_for_ms(20)


def chunk(ms: int, value: int = 1000) -> AudioChunk:
    n = 8000 * ms // 1000
    return AudioChunk(value.to_bytes(2, "little", signed=True) * n, 8000)


async def test_reads_queued_audio_then_silence_and_resolves_marker_when_played():
    playout = Playout(FMT)
    playout.push(chunk(30))
    heard = playout.mark()
    first = playout.read(FRAME)
    assert first == chunk(20).audio and playout.is_playing
    second = playout.read(FRAME)
    assert second[: FRAME // 2] == chunk(10).audio and second[FRAME // 2 :] == bytes(FRAME // 2)
    assert not playout.is_playing
    assert await asyncio.wait_for(heard, 1) is True


async def test_flush_drops_everything_and_reports_interruption():
    playout = Playout(FMT)
    playout.push(chunk(200))
    heard = playout.mark()
    playout.read(FRAME)
    dropped = playout.flush()
    assert abs(dropped - 0.18) < 1e-9
    assert playout.read(FRAME) == bytes(FRAME)
    assert await asyncio.wait_for(heard, 1) is False


async def test_marker_on_empty_queue_is_already_played():
    playout = Playout(FMT)
    assert await asyncio.wait_for(playout.mark(), 1) is True


async def test_reader_on_a_foreign_thread_resolves_markers_on_the_loop():
    playout = Playout(FMT)
    playout.push(chunk(100))
    heard = playout.mark()

    def drain() -> None:
        for _ in range(6):
            playout.read(FRAME)

    await asyncio.to_thread(drain)
    assert await asyncio.wait_for(heard, 1) is True


def test_rejects_wrong_format():
    playout = Playout(FMT)
    try:
        playout.push(AudioChunk(bytes(320), 16000))
    except ValueError as exc:
        assert "8000" in str(exc)
    else:
        raise AssertionError("a 16 kHz chunk must not enter an 8 kHz playout")


async def test_when_below_resolves_once_little_enough_is_left_and_on_flush() -> None:
    playout = Playout(AudioFormat(8000))
    playout.push(AudioChunk.silence(1.0, 8000))
    low = playout.when_below(0.5)
    assert not low.done()
    playout.read(int(0.4 * 8000) * 2)
    await asyncio.sleep(0)
    assert not low.done()
    playout.read(int(0.1 * 8000) * 2)
    await asyncio.sleep(0)
    assert low.done() and low.result() is True
    flushed = playout.when_below(0.1)
    playout.flush()
    await asyncio.sleep(0)
    assert flushed.result() is False
    assert playout.when_below(0.0).done(), "an empty playout is already below any level"
