"""Round-trip properties of the codec, on both implementations."""

from __future__ import annotations

import math
import struct

import numpy as np
from codec_strategies import as_tuple, encode, frame_fields, u8, u16, u32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import spec_checksum

from xcomlog.protocol import Format

PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(data=st.binary(max_size=600))
def test_checksum_is_the_specification_loop(codec, data):
    assert codec.checksum(data) == spec_checksum(data)


@PROPERTY
@given(fields=frame_fields)
def test_encode_decode_round_trip(codec, fields):
    wire = codec.encode_frame(**fields)
    assert wire == encode(fields)  # both codecs write the same bytes
    assert len(wire) == 26 + len(fields["data"])
    assert codec.frame_size(wire) == len(wire)
    assert tuple(codec.decode_frame(wire)) == as_tuple(fields)


@PROPERTY
@given(fields=frame_fields, error=st.one_of(st.none(), u16))
def test_response_round_trip(codec, fields, error):
    wire = codec.encode_response(
        fields["service_id"],
        fields["object_type"],
        fields["object_id"],
        fields["property_id"],
        fields["data"],
        src=fields["src"],
        dst=fields["dst"],
        frame_flags=fields["frame_flags"],
        error_code=error,
    )
    frame = codec.decode_frame(wire)
    assert frame.is_response
    assert frame.is_error == (error is not None)
    assert frame.error_code == error
    assert frame.data == (fields["data"] if error is None else struct.pack("<H", error))


@PROPERTY
@given(
    value=st.one_of(
        st.tuples(st.just(Format.BOOL), st.booleans()),
        st.tuples(st.sampled_from([Format.FORMAT, Format.SHORT_ENUM, Format.ERROR]), u16),
        st.tuples(st.just(Format.LONG_ENUM), u32),
        st.tuples(st.just(Format.INT32), st.integers(-(2**31), 2**31 - 1)),
        st.tuples(st.just(Format.FLOAT), st.floats(width=32)),
        st.tuples(st.just(Format.STRING), st.text(st.characters(codec="iso8859_15"), max_size=250)),
        st.tuples(st.just(Format.BYTE_STREAM), st.binary(max_size=300)),
    )
)
def test_value_round_trip(codec, value):
    fmt, python = value
    back = codec.unpack_value(fmt, codec.pack_value(fmt, python))
    if isinstance(python, float) and math.isnan(python):
        assert math.isnan(back)
    else:
        assert back == python and type(back) is type(python)


@PROPERTY
@given(number=st.floats(allow_nan=False, allow_infinity=False, min_value=-3.4e38, max_value=3.4e38))
def test_float_packing_rounds_like_float32(codec, number):
    assert codec.unpack_value(Format.FLOAT, codec.pack_value(Format.FLOAT, number)) == float(
        np.float32(number)
    )


@PROPERTY
@given(items=st.lists(st.tuples(u16, u8), min_size=1, max_size=76))
def test_multi_info_request_round_trip(codec, items):
    frame = codec.decode_frame(codec.encode_multi_info_request(items, src=1, dst=501))
    assert frame.object_type == 0x0A and frame.object_id == 1
    assert codec.unpack_multi_info_request(frame.data) == items


@PROPERTY
@given(
    flags=u32,
    timestamp=u32,
    items=st.lists(st.tuples(u16, u8, st.floats(width=32)), max_size=76),
)
def test_multi_info_response_round_trip(codec, flags, timestamp, items):
    ids = [i for i, _, _ in items]
    aggs = [a for _, a, _ in items]
    values = [v for _, _, v in items]
    data = codec.pack_multi_info_response(flags, timestamp, ids, aggs, values)
    info = codec.decode_multi_info(data)
    assert (info.flags, info.timestamp) == (flags, timestamp)
    assert info.ids.tolist() == ids and info.aggregations.tolist() == aggs
    np.testing.assert_array_equal(info.values, np.array(values, dtype=np.float32))


@PROPERTY
@given(
    fields=st.tuples(
        st.integers(-(2**31), 2**31 - 1),
        u16,
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**31), 2**31 - 1),
    ),
    value=st.binary(min_size=4, max_size=4),
)
def test_message_round_trip(codec, fields, value):
    assert tuple(codec.decode_message(codec.pack_message(*fields, value))) == (*fields, value)
