"""Batch decoding: many frames from one buffer into column arrays (both codecs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from codec_strategies import encode, join, numeric_formats, segments
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import SPEC_BY_NAME, SPEC_FRAMES

from xcomlog.exceptions import ValueFormatError
from xcomlog.protocol import ErrorCode, Format, ObjectType, Property, Service

PROPERTY = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
COLUMNS = {
    "frame_flags": np.uint8,
    "src": np.uint32,
    "dst": np.uint32,
    "service_flags": np.uint8,
    "service_id": np.uint8,
    "object_type": np.uint16,
    "object_id": np.uint32,
    "property_id": np.uint16,
    "error_code": np.uint16,
    "value": np.float64,
    "data_offset": np.int64,
    "data_length": np.uint16,
}


def float_response(codec, object_id: int, value: float, src: int = 101) -> bytes:
    return codec.encode_response(
        Service.READ,
        ObjectType.USER_INFO,
        object_id,
        Property.VALUE,
        codec.pack_value(Format.FLOAT, value),
        src=src,
        frame_flags=0x34,
    )


def test_batch_of_float_responses(codec):
    values = [12.359375, -3.5, 0.0, 1e-3]
    buffer = b"".join(float_response(codec, 3000 + i, v) for i, v in enumerate(values))
    batch = codec.decode_batch(buffer)
    assert batch.count == 4
    for name, dtype in COLUMNS.items():
        assert getattr(batch, name).dtype == dtype, name
    np.testing.assert_array_equal(batch.value, np.array(values, dtype=np.float32))
    assert batch.object_id.tolist() == [3000, 3001, 3002, 3003]
    assert batch.frame_flags.tolist() == [0x34] * 4
    assert batch.data_offset.tolist() == [24, 54, 84, 114]
    assert batch.data_length.tolist() == [4] * 4
    assert batch.property_data(buffer, 1) == codec.pack_value(Format.FLOAT, -3.5)
    assert batch.stats["frames"] == 4 and batch.stats["pending"] == 0


def test_batch_errors_and_size_mismatch_are_nan(codec):
    buffer = (
        float_response(codec, 3000, 1.5)
        + codec.encode_response(1, 1, 3001, 1, src=101, error_code=ErrorCode.OBJECT_ID_NOT_FOUND)
        + codec.encode_response(1, 1, 3002, 1, b"\x01\x02", src=101)
        + codec.encode_request(1, 1, 3003, 1)
    )
    batch = codec.decode_batch(buffer)
    assert batch.value[0] == 1.5
    assert all(math.isnan(v) for v in batch.value[1:])
    assert batch.error_code.tolist() == [0, ErrorCode.OBJECT_ID_NOT_FOUND, 0, 0]
    assert batch.data_length.tolist() == [4, 2, 2, 0]


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        (Format.BOOL, True),
        (Format.SHORT_ENUM, 0xFFFE),
        (Format.ERROR, 0x22),
        (Format.FORMAT, 3),
        (Format.LONG_ENUM, 0xFFFFFFFE),
        (Format.INT32, -7),
        (Format.FLOAT, 0.25),
    ],
)
def test_batch_value_formats(codec, fmt, value):
    wire = codec.encode_response(2, 2, 1107, 5, codec.pack_value(fmt, value), src=101)
    batch = codec.decode_batch(wire * 3, value_format=fmt)
    assert batch.value.tolist() == [float(value)] * 3


def test_batch_invalid_bool_is_nan(codec):
    wire = codec.encode_response(1, 2, 1107, 5, b"\x02", src=101)
    assert math.isnan(codec.decode_batch(wire, Format.BOOL).value[0])


@pytest.mark.parametrize("fmt", [Format.STRING, Format.BYTE_STREAM, Format.DYNAMIC, 0, "x"])
def test_batch_refuses_non_numeric_formats(codec, fmt):
    with pytest.raises(ValueFormatError):
        codec.decode_batch(b"", fmt)


def test_batch_empty_and_junk(codec):
    batch = codec.decode_batch(b"")
    assert batch.count == 0 and batch.value.dtype == np.float64
    batch = codec.decode_batch(b"\xff" * 10 + SPEC_BY_NAME["read GUID request"].wire[:20])
    assert batch.count == 0
    assert batch.stats["junk_bytes"] == 10 and batch.stats["pending"] == 20


def test_batch_agrees_with_stream_decoder_on_spec_frames(codec):
    buffer = b"junk" + b"".join(f.wire + b"\xaa\x00" for f in SPEC_FRAMES)
    batch = codec.decode_batch(np.frombuffer(buffer, np.uint8))
    decoder = codec.StreamDecoder()
    frames = decoder.feed(buffer)
    assert batch.count == len(frames) == len(SPEC_FRAMES)
    assert batch.stats == decoder.stats()


@PROPERTY
@given(parts=segments, fmt=numeric_formats)
def test_batch_finds_what_the_stream_decoder_finds(codec, parts, fmt):
    stream, expected = join(parts)
    batch = codec.decode_batch(stream, fmt)
    decoder = codec.StreamDecoder()
    frames = decoder.feed(stream)
    assert batch.stats == decoder.stats()
    assert [tuple(f) for f in frames] == expected
    rows = list(
        zip(
            batch.frame_flags.tolist(),
            batch.src.tolist(),
            batch.dst.tolist(),
            batch.service_flags.tolist(),
            batch.service_id.tolist(),
            batch.object_type.tolist(),
            batch.object_id.tolist(),
            batch.property_id.tolist(),
            [batch.property_data(stream, i) for i in range(batch.count)],
            strict=True,
        )
    )
    assert rows == expected
    for i, frame in enumerate(frames):
        if frame.is_error:
            assert batch.error_code[i] == frame.error_code and math.isnan(batch.value[i])
            continue
        assert batch.error_code[i] == 0
        try:
            value = float(codec.unpack_value(fmt, frame.data))
        except ValueFormatError:
            assert math.isnan(batch.value[i])
        else:
            assert batch.value[i] == value or (math.isnan(value) and math.isnan(batch.value[i]))


# --- Multi-info batches ---------------------------------------------------------------------


def multi_response(codec, items, values, *, flags=0x1B0, timestamp=1_700_000_000, src=501):
    data = codec.pack_multi_info_response(
        flags, timestamp, [i for i, _ in items], [a for _, a in items], values
    )
    return codec.encode_response(
        Service.READ, ObjectType.MULTI_INFO, 1, Property.VALUE, data, src=src, frame_flags=0x34
    )


def test_multi_info_batch(codec):
    items = [(3000, 0xFD), (7002, 0), (11004, 0xFE)]
    buffer = (
        multi_response(codec, items, [52.5, 87.0, 1.25])
        + float_response(codec, 3000, 1.0)  # not multi info: left out
        + codec.encode_multi_info_request(items)  # a request: left out
        + codec.encode_response(
            1, 0x0A, 1, 1, src=501, error_code=ErrorCode.SCOM_ERROR_GATEWAY_BUSY
        )
        + codec.encode_response(1, 0x0A, 1, 1, bytes(9), src=501)  # malformed: 8 + 1
        + multi_response(codec, items[:1], [53.0], timestamp=1_700_000_060)
    )
    batch = codec.decode_multi_info_batch(buffer)
    assert batch.count == 3
    assert batch.stats["multi_info_frames"] == 3
    assert batch.stats["other_frames"] == 2 and batch.stats["malformed"] == 1
    assert batch.stats["frames"] == 6
    assert batch.frame.tolist() == [0, 0, 0, 2]
    assert batch.ids.tolist() == [3000, 7002, 11004, 3000]
    assert batch.aggregations.tolist() == [0xFD, 0, 0xFE, 0xFD]
    assert batch.values.dtype == np.float32
    assert batch.values.tolist() == [52.5, 87.0, 1.25, 53.0]
    assert batch.error_code.tolist() == [0, ErrorCode.SCOM_ERROR_GATEWAY_BUSY, 0]
    assert batch.timestamp.tolist() == [1_700_000_000, 0, 1_700_000_060]
    assert batch.flags.tolist() == [0x1B0, 0, 0x1B0]
    assert batch.item_start.tolist() == [0, 3, 3]
    assert batch.item_count.tolist() == [3, 0, 1]
    assert batch.src.tolist() == [501] * 3 and batch.dst.tolist() == [1] * 3
    assert batch.frame_flags.tolist() == [0x34, 0, 0x34]
    assert batch.property_id.tolist() == [1] * 3


def test_multi_info_batch_empty(codec):
    batch = codec.decode_multi_info_batch(b"")
    assert batch.count == 0 and batch.ids.size == 0 and batch.values.dtype == np.float32


@st.composite
def multi_frames(draw, codec_module):
    """A multi-info response (items from a seeded generator: cheap even at 76 items), an
    error response, or a non-multi-info response carrying the same data."""
    count = draw(st.integers(0, 76))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(0, 0x10000, count).tolist()
    aggs = rng.integers(0, 0x100, count).tolist()
    values = rng.integers(0, 2**32, count, dtype=np.uint32).view(np.float32).tolist()
    kind = draw(st.sampled_from(["ok", "ok", "error", "other"]))
    if kind == "error":
        code = draw(st.integers(0, 0xFFFF))
        return codec_module.encode_response(1, 0x0A, 1, 1, src=501, error_code=code)
    data = codec_module.pack_multi_info_response(
        draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), ids, aggs, values
    )
    if kind == "other":
        return encode(dict(service_id=1, object_type=1, object_id=1, property_id=1, data=data,
                           src=501, dst=1, service_flags=2, frame_flags=0))  # fmt: skip
    return codec_module.encode_response(1, 0x0A, 1, 1, data, src=501)


@PROPERTY
@given(data=st.data())
def test_multi_info_batch_matches_per_frame_decoding(codec, data):
    frames = data.draw(st.lists(multi_frames(codec), max_size=6))
    batch = codec.decode_multi_info_batch(b"\xff".join(frames))
    decoded = [codec.decode_frame(f) for f in frames]
    responses = [f for f in decoded if f.is_response and f.object_type == 0x0A]
    assert batch.count == len(responses)
    for index, frame in enumerate(responses):
        start, count = batch.item_start[index], batch.item_count[index]
        assert (batch.frame[start : start + count] == index).all()
        if frame.is_error:
            assert batch.error_code[index] == frame.error_code and count == 0
            continue
        info = codec.decode_multi_info(frame.data)
        assert (batch.flags[index], batch.timestamp[index]) == (info.flags, info.timestamp)
        np.testing.assert_array_equal(batch.ids[start : start + count], info.ids)
        np.testing.assert_array_equal(batch.aggregations[start : start + count], info.aggregations)
        np.testing.assert_array_equal(batch.values[start : start + count], info.values)
