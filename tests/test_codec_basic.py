"""Unit checks of the codec API on both implementations: frames, errors, values, multi infos."""

from __future__ import annotations

import array
import math

import numpy as np
import pytest
from spec_frames import SPEC_BY_NAME, spec_checksum

from xcomlog import codec as selected
from xcomlog.exceptions import (
    ChecksumError,
    DataChecksumError,
    FrameError,
    HeaderChecksumError,
    LengthError,
    StartByteError,
    TruncatedFrameError,
    ValueFormatError,
    XcomError,
)
from xcomlog.protocol import ErrorCode, Format, ObjectType, Property, Service

REQUEST = SPEC_BY_NAME["read user info 3000 request"].wire
RESPONSE = SPEC_BY_NAME["read user info 3000 response"].wire


def test_selected_implementation_is_inspectable():
    assert selected.IMPLEMENTATION in ("c", "py")
    if selected.NO_EXTENSIONS:
        assert selected.IMPLEMENTATION == "py"
    assert selected.decode_batch.__module__.startswith("xcomlog._codec")


def test_read_user_info_request(codec):
    frame = codec.encode_request(1, 1, 3000, 1, src=1, dst=101)
    assert frame == bytes.fromhex("AA 00 01000000 65000000 0A00 6F71 00 01 0100 B80B0000 0100 C590")


def test_read_user_info_response(codec):
    frame = codec.decode_frame(RESPONSE)
    assert (frame.src, frame.dst, frame.object_id, frame.frame_flags) == (101, 1, 3000, 0x34)
    assert codec.unpack_value(Format.FLOAT, frame.data) == 12.359375


@pytest.mark.parametrize("size", [0, 1, 11, 63, 64, 65, 127, 128, 1000, 70000])
def test_checksum_matches_the_specification_loop(codec, size):
    data = bytes((i * 37 + 11) & 0xFF for i in range(size))
    assert codec.checksum(data) == spec_checksum(data)
    assert codec.checksum(bytearray(data)) == spec_checksum(data)
    assert codec.checksum(np.frombuffer(data, np.uint8)) == spec_checksum(data)


def test_checksum_of_all_ff_and_empty(codec):
    assert codec.checksum(b"") == b"\xff\x00"
    assert codec.checksum(b"\xff" * 4096) == spec_checksum(b"\xff" * 4096)


@pytest.mark.parametrize("bad", ["text", 5, [1, 2, 3], None, 1.5])
def test_byte_inputs_must_be_bytes_like(codec, bad):
    """bytes(5) would be five zero bytes: an int is refused, not taken as a length."""
    for call in (
        lambda: codec.checksum(bad),
        lambda: codec.decode_frame(bad),
        lambda: codec.frame_size(bad),
        lambda: codec.StreamDecoder().feed(bad),
        lambda: codec.decode_batch(bad),
        lambda: codec.decode_multi_info_batch(bad),
        lambda: codec.unpack_value(Format.FLOAT, bad),
        lambda: codec.encode_request(1, 1, 3000, 1, bad),
    ):
        with pytest.raises(TypeError):
            call()


def test_other_buffers_are_read_as_their_bytes(codec):
    """Any contiguous buffer is taken as its raw bytes; non-contiguous views are refused."""
    assert codec.decode_frame(bytearray(RESPONSE)).data == RESPONSE[24:28]
    assert codec.decode_frame(memoryview(RESPONSE)).object_id == 3000
    assert codec.decode_frame(np.frombuffer(RESPONSE, np.uint8)).src == 101
    words = array.array("H", RESPONSE[:-2] + RESPONSE[-2:])
    assert codec.decode_frame(words) == codec.decode_frame(RESPONSE)
    with pytest.raises(TypeError):
        codec.decode_frame(memoryview(RESPONSE * 2)[::2])


# --- Frame errors ---------------------------------------------------------------------


def test_frame_errors_are_value_errors_and_xcom_errors():
    for error in (StartByteError, HeaderChecksumError, DataChecksumError, TruncatedFrameError):
        assert issubclass(error, FrameError)
        assert issubclass(error, ValueError)
        assert issubclass(error, XcomError)
    assert issubclass(HeaderChecksumError, ChecksumError)


def test_decode_bad_start_byte(codec):
    with pytest.raises(StartByteError, match="0x55"):
        codec.decode_frame(b"\x55" + REQUEST[1:])


def test_decode_bad_header_checksum(codec):
    frame = bytearray(REQUEST)
    frame[6] ^= 0x01  # dst 101 -> 100
    with pytest.raises(HeaderChecksumError):
        codec.decode_frame(bytes(frame))


def test_decode_bad_data_checksum(codec):
    frame = bytearray(RESPONSE)
    frame[25] ^= 0x40
    with pytest.raises(DataChecksumError):
        codec.decode_frame(bytes(frame))


def test_decode_truncated(codec):
    with pytest.raises(TruncatedFrameError, match="empty"):
        codec.decode_frame(b"")
    with pytest.raises(TruncatedFrameError, match="header"):
        codec.decode_frame(REQUEST[:13])
    with pytest.raises(TruncatedFrameError, match="25 of 26"):
        codec.decode_frame(REQUEST[:-1])


def test_decode_trailing_bytes(codec):
    with pytest.raises(FrameError, match="1 unexpected"):
        codec.decode_frame(REQUEST + b"\x00")


def header_with_length(codec, length: int) -> bytes:
    """A header with a valid checksum announcing ``length`` bytes of frame data."""
    head = b"\xaa\x00" + (1).to_bytes(4, "little") + (501).to_bytes(4, "little")
    head += length.to_bytes(2, "little")
    return head + codec.checksum(head[1:])


@pytest.mark.parametrize("length", [0, 1, 1035, 0xFFFF])  # 2..9 are short frames (issue 10)
def test_decode_impossible_length(codec, length):
    head = header_with_length(codec, length)
    with pytest.raises(LengthError, match=str(length)):
        codec.decode_frame(head + bytes(12))
    with pytest.raises(LengthError):
        codec.frame_size(head)


def test_largest_frame(codec):
    frame = codec.encode_request(1, 1, 3000, 1, bytes(1024))
    assert len(frame) == 1050
    assert codec.decode_frame(frame).data == bytes(1024)
    with pytest.raises(LengthError, match="1035"):
        codec.encode_request(1, 1, 3000, 1, bytes(1025))


def test_frame_size(codec):
    assert codec.frame_size(RESPONSE) == 30
    assert codec.frame_size(RESPONSE[:14]) == 30
    assert codec.frame_size(RESPONSE[:13]) == 0
    assert codec.frame_size(b"") == 0
    assert codec.frame_size(b"xx" + RESPONSE, 2) == 30
    assert codec.frame_size(RESPONSE, 30) == 0
    assert codec.frame_size(RESPONSE, 10**30) == 0
    with pytest.raises(StartByteError):
        codec.frame_size(RESPONSE, 1)
    with pytest.raises(ValueError, match="offset"):
        codec.frame_size(RESPONSE, -1)
    with pytest.raises(TypeError):
        codec.frame_size(RESPONSE, 1.0)


# --- Encoding arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("frame_flags", 256),
        ("service_flags", -1),
        ("src", 2**32),
        ("dst", -5),
    ],
)
def test_encode_rejects_out_of_range_fields(codec, field, bad):
    with pytest.raises(ValueError, match=field):
        codec.encode_frame(1, 1, 3000, 1, **{field: bad})


def test_encode_rejects_out_of_range_positionals(codec):
    with pytest.raises(ValueError, match="service_id"):
        codec.encode_request(256, 1, 3000, 1)
    with pytest.raises(ValueError, match="object_type"):
        codec.encode_request(1, 0x10000, 3000, 1)
    with pytest.raises(ValueError, match="object_id"):
        codec.encode_request(1, 1, 2**32, 1)
    with pytest.raises(ValueError, match="property_id"):
        codec.encode_request(1, 1, 3000, -1)
    with pytest.raises(TypeError, match="object_id"):
        codec.encode_request(1, 1, 3000.0, 1)


def test_encode_accepts_integer_likes(codec):
    expected = codec.encode_request(1, 1, 3000, 1, src=1, dst=101)
    assert (
        codec.encode_request(True, np.uint16(1), np.int64(3000), Property.VALUE, src=1, dst=101)
        == expected
    )


def test_error_response(codec):
    wire = codec.encode_response(
        Service.READ, ObjectType.PARAMETER, 9999, Property.VALUE_QSP, b"ignored",
        src=101, error_code=ErrorCode.OBJECT_ID_NOT_FOUND,
    )  # fmt: skip
    frame = codec.decode_frame(wire)
    assert frame.is_response and frame.is_error
    assert frame.error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    assert frame.data == b"\x22\x00"
    with pytest.raises(ValueError, match="error_code"):
        codec.encode_response(1, 1, 1, 1, src=101, error_code=0x10000)


def test_error_code_of_success_and_short_error():
    from xcomlog.records import Frame

    assert Frame(0, 1, 2, 0x02, 1, 1, 3000, 1, b"\x00\x00\x80\x3f").error_code is None
    assert Frame(0, 1, 2, 0x03, 1, 1, 3000, 1, b"").error_code == 0


# --- Values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "wire"),
    [
        (Format.BOOL, True, b"\x01"),
        (Format.BOOL, False, b"\x00"),
        (Format.FORMAT, 6, b"\x06\x00"),
        (Format.SHORT_ENUM, 0xFFFF, b"\xff\xff"),
        (Format.ERROR, 0x22, b"\x22\x00"),
        (Format.LONG_ENUM, 0xFFFFFFFF, b"\xff\xff\xff\xff"),
        (Format.INT32, -2, b"\xfe\xff\xff\xff"),
        (Format.INT32, 821, (821).to_bytes(4, "little")),  # 13:41 in minutes (4.5.7)
        (Format.FLOAT, 12.0, bytes.fromhex("00 00 40 41")),
        (Format.FLOAT, -0.5, bytes.fromhex("00 00 00 BF")),
        (Format.STRING, "Sion €", "Sion €".encode("iso8859_15")),
        (Format.BYTE_STREAM, b"\x00\xaa", b"\x00\xaa"),
    ],
)
def test_value_round_trip(codec, fmt, value, wire):
    assert codec.pack_value(fmt, value) == wire
    assert codec.unpack_value(fmt, wire) == value
    assert type(codec.unpack_value(fmt, wire)) is type(value)


def test_string_is_iso_8859_15(codec):
    assert codec.pack_value(Format.STRING, "€") == b"\xa4"  # 0xA4 is the euro sign in -15
    assert codec.unpack_value(Format.STRING, bytes(range(256))) == bytes(range(256)).decode(
        "iso8859_15"
    )
    with pytest.raises(ValueFormatError):
        codec.pack_value(Format.STRING, "日本")


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        (Format.BOOL, 2),
        (Format.BOOL, "1"),
        (Format.BOOL, 0.5),
        (Format.SHORT_ENUM, -1),
        (Format.SHORT_ENUM, 0x10000),
        (Format.SHORT_ENUM, True),
        (Format.INT32, 2**31),
        (Format.INT32, 1.5),
        (Format.LONG_ENUM, float("nan")),
        (Format.LONG_ENUM, 10**30),
        (Format.FLOAT, "1.0"),
        (Format.FLOAT, 1e39),
        (Format.FLOAT, 10**400),
        (Format.FLOAT, False),
        (Format.STRING, b"bytes"),
        (Format.BYTE_STREAM, "text"),
        (Format.DYNAMIC, 1),
        (99, 1),
        ("FLOAT", 1.0),
    ],
)
def test_pack_value_refuses(codec, fmt, value):
    with pytest.raises(ValueFormatError):
        codec.pack_value(fmt, value)


def test_float_specials(codec):
    assert math.isnan(codec.unpack_value(Format.FLOAT, codec.pack_value(Format.FLOAT, math.nan)))
    assert codec.unpack_value(Format.FLOAT, codec.pack_value(Format.FLOAT, -math.inf)) == -math.inf
    biggest = 3.4028234663852886e38
    assert codec.unpack_value(Format.FLOAT, codec.pack_value(Format.FLOAT, biggest)) == biggest
    assert codec.pack_value(Format.FLOAT, np.float32(1.5)) == codec.pack_value(Format.FLOAT, 1.5)
    assert codec.pack_value(Format.INT32, 7.0) == codec.pack_value(Format.INT32, 7)


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        (Format.BOOL, b""),
        (Format.BOOL, b"\x02"),
        (Format.SHORT_ENUM, b"\x01"),
        (Format.INT32, b"\x01\x02\x03"),
        (Format.FLOAT, b"\x00" * 5),
        (Format.DYNAMIC, b"\x00"),
        (0, b"\x00"),
    ],
)
def test_unpack_value_refuses(codec, fmt, data):
    with pytest.raises(ValueFormatError):
        codec.unpack_value(fmt, data)


# --- Multi infos and messages -------------------------------------------------------------------


def test_multi_info_request_round_trip(codec):
    items = [(3000, 0xFD), (7002, 0), (15010, 0xFE)]
    frame = codec.decode_frame(codec.encode_multi_info_request(items))
    assert (frame.object_type, frame.object_id, frame.property_id) == (ObjectType.MULTI_INFO, 1, 1)
    assert frame.data == bytes.fromhex("B80B FD 5A1B 00 A23A FE")
    assert codec.unpack_multi_info_request(frame.data) == items


@pytest.mark.parametrize(
    "items", [[], [(3000, 0)] * 77, [(70000, 0)], [(3000, 256)], [(3000, -1)], [(1, 2, 3)]]
)
def test_multi_info_request_refuses(codec, items):
    with pytest.raises(ValueError):
        codec.pack_multi_info_request(items)


@pytest.mark.parametrize("size", [0, 2, 3 * 77, 4])
def test_unpack_multi_info_request_refuses(codec, size):
    with pytest.raises(ValueFormatError):
        codec.unpack_multi_info_request(bytes(size))


def test_multi_info_response_round_trip(codec):
    data = codec.pack_multi_info_response(
        0x1A0, 1_700_000_000, [3000, 7002], [0xFD, 0], [52.5, 87.0]
    )
    assert len(data) == 8 + 2 * 7
    info = codec.decode_multi_info(data)
    assert (info.flags, info.timestamp) == (0x1A0, 1_700_000_000)
    assert info.ids.dtype == np.uint16 and info.aggregations.dtype == np.uint8
    assert info.values.dtype == np.float32
    assert info.ids.tolist() == [3000, 7002] and info.aggregations.tolist() == [0xFD, 0]
    assert info.values.tolist() == [52.5, 87.0]
    empty = codec.decode_multi_info(codec.pack_multi_info_response(0, 0, [], [], []))
    assert empty.ids.size == 0


@pytest.mark.parametrize(
    "args",
    [
        (0, 0, [1], [], [1.0]),
        (0, 0, [70000], [0], [1.0]),
        (0, 0, [1], [300], [1.0]),
        (0, 0, [1], [0], ["x"]),
        (0, 0, [1], [0], [1e39]),
        (-1, 0, [], [], []),
        (0, 2**32, [], [], []),
        (0, 0, [1] * 77, [0] * 77, [0.0] * 77),
    ],
)
def test_multi_info_response_refuses(codec, args):
    with pytest.raises(ValueError):
        codec.pack_multi_info_response(*args)


@pytest.mark.parametrize("size", [0, 7, 9, 8 + 6, 8 + 8])
def test_decode_multi_info_refuses(codec, size):
    with pytest.raises(ValueFormatError):
        codec.decode_multi_info(bytes(size))


def test_message_round_trip(codec):
    data = codec.pack_message(-1, 65535, -2, -3, b"\x01\x02\x03\x04")
    assert codec.decode_message(data) == (-1, 65535, -2, -3, b"\x01\x02\x03\x04")
    with pytest.raises(ValueFormatError):
        codec.decode_message(data[:-1])
    with pytest.raises(ValueFormatError):
        codec.pack_message(2**31, 1, 1, 1)
    with pytest.raises(ValueFormatError):
        codec.pack_message(1, 1, 1, 1, b"\x00")
    with pytest.raises(TypeError):
        codec.pack_message(1.5, 1, 1, 1)


def test_records_are_ordinary_frames(codec):
    """Records equal, hash and pickle like Frame(...) built in Python, whatever allocated them."""
    import gc
    import pickle

    from xcomlog.records import Frame

    frame = codec.decode_frame(RESPONSE)
    reference = Frame(0x34, 101, 1, 2, 1, 1, 3000, 1, RESPONSE[24:28])
    assert type(frame) is Frame
    assert frame == reference and hash(frame) == hash(reference) == hash(tuple(reference))
    assert repr(frame) == repr(reference)
    assert pickle.loads(pickle.dumps(frame)) == reference
    assert {frame: 1}[reference] == 1
    assert frame._replace(src=5).src == 5
    gc.collect()  # records left off the GC lists must still be freed and counted correctly
    assert codec.StreamDecoder().feed(RESPONSE * 3) == [reference] * 3


def test_compiled_records_take_the_fast_path():
    """On this interpreter the import-time self-check enables direct record allocation."""
    from conftest import NO_EXTENSIONS, load_codec

    if NO_EXTENSIONS:
        pytest.skip("compiled codec disabled")
    assert load_codec("c")._direct_records()
