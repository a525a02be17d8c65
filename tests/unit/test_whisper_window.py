import numpy as np

from voicebot.engines.whisper_window import FULL_WINDOW_FRAMES, ShortWindowEncoder, repeats_itself


class FakeModel:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def encode(self, features: np.ndarray) -> int:
        self.seen.append(features.shape[-1])
        return features.shape[-1]


def features(content_frames: int) -> np.ndarray:
    f = np.zeros((80, FULL_WINDOW_FRAMES), dtype=np.float32)
    f[:, :content_frames] = 0.5
    return f


def test_short_utterances_use_the_minimum_window_long_ones_their_length_and_full_mode_is_untouched():
    model = FakeModel()
    encoder = ShortWindowEncoder(model, min_window_s=10.0)
    assert model.encode is encoder
    assert encoder(features(250)) == 1000
    assert encoder(features(1234)) == 1400  # one spare second, rounded up to whole seconds
    assert encoder(features(2950)) == FULL_WINDOW_FRAMES
    with encoder.full_window():
        assert encoder(features(250)) == FULL_WINDOW_FRAMES
    assert encoder(features(250)) == 1000


def test_repeats_itself():
    assert repeats_itself("5 5")
    assert repeats_itself("10 of clubs 10 of clubs")
    assert repeats_itself("ask not, ask NOT what")
    assert not repeats_itself("ask not what your country can do for you ask what you can do for your country")
    assert not repeats_itself("")
    assert not repeats_itself("eight of spades, four of clubs")
