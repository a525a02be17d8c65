from __future__ import annotations

import pjsua2 as pj

from telephony.frames import read_vector, write_vector


def test_frame_buffers_round_trip_through_direct_memory_copies() -> None:
    frame = pj.MediaFrame()
    payload = bytes(range(256)) * 2 + b"\x00\xff" * 64
    write_vector(frame.buf, payload)
    assert frame.buf.size() == len(payload)
    assert bytes(frame.buf) == payload  # SWIG's own (slow) element-wise view agrees
    assert read_vector(frame.buf) == payload


def test_empty_and_resized_buffers() -> None:
    frame = pj.MediaFrame()
    assert read_vector(frame.buf) == b""
    write_vector(frame.buf, b"\x01" * 640)
    write_vector(frame.buf, b"\x02" * 320)
    assert read_vector(frame.buf) == b"\x02" * 320
