import pytest

from voicebot.dtmf import DtmfCollector


def test_terminator_completes_the_entry():
    keys = DtmfCollector()
    assert [keys.press(k) for k in "12345"] == [None] * 5
    assert keys.press("#") == "12345#"
    assert not keys.pending


def test_timeout_counts_caller_audio_not_wall_time():
    keys = DtmfCollector(timeout_ms=100)
    keys.press("2")
    assert keys.advance(60) is None
    keys.press("3")  # a new key restarts the wait
    assert keys.advance(60) is None
    assert keys.advance(40) == "23"
    assert keys.advance(1000) is None


def test_zero_alone_is_immediate_but_zero_inside_a_number_is_not():
    keys = DtmfCollector()
    assert keys.press("0") == "0"
    keys.press("1")
    assert keys.press("0") is None


def test_rejects_non_keys():
    with pytest.raises(ValueError):
        DtmfCollector().press("x")
