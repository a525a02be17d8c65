from voicebot.segmenter import EndpointConfig, Endpointer, Segment

CFG = EndpointConfig(
    start_frames=2, speculate_after_frames=2, end_silence_frames=4, min_speech_frames=3, max_utterance_frames=12
)


def run(frames: str, config: EndpointConfig = CFG) -> list[tuple[int, Segment]]:
    """'1' = speech frame, '0' = silence; returns (frame index, event)."""
    endpointer = Endpointer(config)
    out = []
    for i, ch in enumerate(frames):
        event = endpointer.push(ch == "1")
        if event is not None:
            out.append((i, event))
    return out


def test_silence_produces_nothing():
    assert run("0" * 50) == []


def test_single_speech_frames_do_not_start_a_turn():
    assert run("0101010100") == []


def test_start_pause_end():
    assert run("11111" + "0000") == [(1, Segment.STARTED), (6, Segment.PAUSED), (8, Segment.ENDED)]


def test_speech_resuming_after_pause_cancels_speculation_and_extends_the_turn():
    events = run("1111" + "00" + "11" + "0000")
    assert events == [
        (1, Segment.STARTED),
        (5, Segment.PAUSED),
        (6, Segment.RESUMED),
        (9, Segment.PAUSED),
        (11, Segment.ENDED),
    ]


def test_short_gap_below_speculation_threshold_is_silent():
    roomy = EndpointConfig(2, 2, 4, 3, max_utterance_frames=100)
    assert run("1111" + "0" + "1111" + "0000", roomy) == [
        (1, Segment.STARTED),
        (10, Segment.PAUSED),
        (12, Segment.ENDED),
    ]


def test_too_little_speech_is_discarded_without_speculation():
    assert run("11" + "0000") == [(1, Segment.STARTED), (5, Segment.DISCARDED)]


def test_max_utterance_forces_an_end_and_a_new_turn_can_start():
    events = run("1" * 16)
    assert events[:2] == [(1, Segment.STARTED), (11, Segment.FORCED_END)]
    assert events[2] == (13, Segment.STARTED)


def test_from_ms_converts_and_keeps_speculation_inside_the_window():
    config = EndpointConfig.from_ms(20, start_ms=60, speculate_after_ms=1000, end_silence_ms=400, min_speech_ms=200)
    assert config.start_frames == 3
    assert config.end_silence_frames == 20
    assert config.speculate_after_frames == 20
    assert config.min_speech_frames == 10


def test_in_utterance_tracks_state():
    endpointer = Endpointer(CFG)
    endpointer.push(True)
    assert not endpointer.in_utterance
    endpointer.push(True)
    assert endpointer.in_utterance
    for _ in range(4):
        endpointer.push(False)
    assert not endpointer.in_utterance
