"""The stream decoder: every valid frame, whatever the junk, damage and chunking (both codecs)."""

from __future__ import annotations

import pytest
from codec_strategies import FLUSH, as_tuple, frame_fields, join, segments, split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import SPEC_BY_NAME, SPEC_FRAMES

REQUEST = SPEC_BY_NAME["read user info 3000 request"].wire
RESPONSE = SPEC_BY_NAME["read user info 3000 response"].wire
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def feed_all(decoder, chunks) -> list:
    frames = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    return frames


def test_whole_and_byte_by_byte(codec):
    stream = b"".join(f.wire for f in SPEC_FRAMES)
    whole = codec.StreamDecoder().feed(stream)
    decoder = codec.StreamDecoder()
    single = feed_all(decoder, [stream[i : i + 1] for i in range(len(stream))])
    assert single == whole
    assert len(whole) == len(SPEC_FRAMES)
    assert decoder.stats() == {
        "frames": len(SPEC_FRAMES),
        "skipped_bytes": 0,
        "junk_bytes": 0,
        "header_errors": 0,
        "length_errors": 0,
        "data_errors": 0,
        "pending": 0,
    }


def test_leading_ff_and_junk_are_counted(codec):
    decoder = codec.StreamDecoder()
    frames = decoder.feed(b"\xff\xff\xff" + RESPONSE + b"noise" + REQUEST)
    assert [f.src for f in frames] == [101, 1]
    stats = decoder.stats()
    assert stats["junk_bytes"] == stats["skipped_bytes"] == 8


def test_resynchronises_inside_a_damaged_frame(codec):
    """A valid frame starting inside a frame with a bad data checksum is still found."""
    # A valid header announcing 30 bytes, cut right after it: a whole request follows
    # inside the 30 bytes the header claims.
    stream = RESPONSE[:14] + REQUEST + b"\x00" * 30
    decoder = codec.StreamDecoder()
    frames = decoder.feed(stream)
    assert [f.dst for f in frames] == [101]
    stats = decoder.stats()
    assert stats["data_errors"] == 1
    assert stats["junk_bytes"] == 13 + 30


def test_header_and_length_errors(codec):
    bad_header = bytearray(REQUEST)
    bad_header[12] ^= 0x01
    head = b"\xaa\x00" + bytes(8) + (2000).to_bytes(2, "little")
    bad_length = head + codec.checksum(head[1:])
    decoder = codec.StreamDecoder()
    frames = decoder.feed(bytes(bad_header) + bad_length + RESPONSE)
    assert [f.src for f in frames] == [101]
    stats = decoder.stats()
    assert (stats["header_errors"], stats["length_errors"]) == (1, 1)
    # Each error drops only the start byte; the rest of the damaged bytes are junk.
    assert stats["skipped_bytes"] == len(bad_header) + len(bad_length)


def test_pending_and_reset(codec):
    decoder = codec.StreamDecoder()
    assert decoder.feed(RESPONSE[:20]) == []
    assert decoder.pending == 20
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.feed(RESPONSE[20:]) == []  # the tail alone is junk
    assert decoder.feed(RESPONSE) == [codec.decode_frame(RESPONSE)]
    assert decoder.stats()["frames"] == 1


def test_incomplete_header_waits(codec):
    decoder = codec.StreamDecoder()
    assert decoder.feed(b"\xaa") == []
    assert decoder.pending == 1
    assert decoder.feed(RESPONSE[1:]) == [codec.decode_frame(RESPONSE)]
    assert decoder.pending == 0


def test_feed_accepts_buffers(codec):
    import numpy as np

    decoder = codec.StreamDecoder()
    frames = decoder.feed(bytearray(REQUEST)) + decoder.feed(memoryview(RESPONSE))
    frames += decoder.feed(np.frombuffer(REQUEST, np.uint8))
    assert len(frames) == 3
    assert decoder.feed(b"") == []


def test_counters_are_attributes(codec):
    decoder = codec.StreamDecoder()
    decoder.feed(b"x" + REQUEST)
    assert (decoder.frames, decoder.junk_bytes, decoder.skipped_bytes) == (1, 1, 1)
    assert decoder.header_errors == decoder.length_errors == decoder.data_errors == 0


@PROPERTY
@given(parts=segments, data=st.data())
def test_finds_exactly_the_valid_frames(codec, parts, data):
    """Any interleaving of frames, junk and damaged frames, cut anywhere."""
    stream, expected = join(parts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    decoder = codec.StreamDecoder()
    frames = feed_all(decoder, split(stream, cuts))
    assert [tuple(f) for f in frames] == expected
    # The decision at each offset needs only the bytes of one frame: the counts do not
    # depend on the chunking either.
    whole = codec.StreamDecoder()
    assert [tuple(f) for f in whole.feed(stream)] == expected
    assert decoder.stats() == whole.stats()
    assert decoder.stats()["frames"] == len(expected)


@PROPERTY
@given(fields=st.lists(frame_fields, min_size=1, max_size=5), size=st.integers(1, 7))
def test_fixed_size_chunks(codec, fields, size):
    from codec_strategies import encode

    stream = b"".join(encode(f) for f in fields)
    decoder = codec.StreamDecoder()
    frames = feed_all(decoder, [stream[i : i + size] for i in range(0, len(stream), size)])
    assert [tuple(f) for f in frames] == [as_tuple(f) for f in fields]
    assert decoder.pending == 0


@pytest.mark.parametrize("cut", [1, 13, 14, 20, 29])
def test_cut_frame_then_valid_frames(codec, cut):
    """A frame cut short swallows the next bytes only until its checksum fails."""
    stream = RESPONSE[:cut] + REQUEST + RESPONSE + FLUSH
    frames = codec.StreamDecoder().feed(stream)
    assert [f.src for f in frames] == [1, 101]
