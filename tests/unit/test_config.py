from pathlib import Path

import pytest

from voicebot.config import load_settings
from voicebot.ports import ConfigError


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEBOT_CONFIG", raising=False)
    settings = load_settings()
    assert settings.speech.stt_model == "tiny.en"
    assert settings.dialogue.rasa_url.startswith("http://127.0.0.1:")


def test_yaml_overrides_sections(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.yaml"
    path.write_text("speech: {stt_model: base, end_silence_ms: 500}\ncall: {languages: [fr, en]}\nmodels_dir: /opt/m\n")
    settings = load_settings(path)
    assert (settings.speech.stt_model, settings.speech.end_silence_ms) == ("base", 500)
    assert settings.call.languages == ("fr", "en")
    assert settings.models_dir == Path("/opt/m")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("speech: {stt_modle: base}\n", "speech.stt_modle: unknown setting"),
        ("speech: {end_silence_ms: soon}\n", "expected int"),
        ("nonsense: 1\n", "unknown setting 'nonsense'"),
        ("speech: [1, 2]\n", "must be a mapping"),
        ("speech: {\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "voicebot.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
