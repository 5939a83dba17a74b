"""Short frames (issue 10) and encoders given hostile objects (issue 15 item 10), on both codecs.

A frame whose data is only the 2-byte service header, or anything from 2 to 9 bytes, is a
valid frame: Studer's own C library accepts ``data_length >= 2``. Both codecs decode it with
the object fields 0 and ``data`` the bytes after the service flags and service id.
"""

from __future__ import annotations

import gc
import math

import pytest
from spec_frames import SPEC_BY_NAME, spec_checksum

from xcomlog.exceptions import LengthError
from xcomlog.protocol import ErrorCode, Format, ObjectType, Service, ServiceFlag

RESPONSE = SPEC_BY_NAME["read user info 3000 response"].wire


def short_frame(frame_data: bytes, *, src: int = 501, dst: int = 1, frame_flags: int = 0x36):
    """A frame of ``frame_data`` (2..9 bytes), checksums by the specification's loop."""
    head = bytes([0xAA, frame_flags]) + src.to_bytes(4, "little") + dst.to_bytes(4, "little")
    head += len(frame_data).to_bytes(2, "little")
    return head + spec_checksum(head[1:]) + frame_data + spec_checksum(frame_data)


ERROR_RESPONSE = int(ServiceFlag.RESPONSE | ServiceFlag.ERROR)
#: The service header alone: an error response to a read, 2 bytes of frame data.
SERVICE_ONLY = short_frame(bytes([ERROR_RESPONSE, Service.READ]))
#: Service header and an error code: 4 bytes of frame data.
WITH_CODE = short_frame(
    bytes([ERROR_RESPONSE, Service.READ]) + int(ErrorCode.INVALID_FRAME).to_bytes(2, "little")
)


def test_two_byte_service_frame_decodes(codec):
    frame = codec.decode_frame(SERVICE_ONLY)
    assert tuple(frame) == (0x36, 501, 1, ERROR_RESPONSE, Service.READ, 0, 0, 0, b"")
    assert frame.is_response and frame.is_error
    assert frame.error_code == 0  # no code carried
    assert codec.frame_size(SERVICE_ONLY) == len(SERVICE_ONLY) == 18


@pytest.mark.parametrize("size", range(2, 10))
def test_every_short_length_decodes(codec, size):
    data = bytes([0x02, 0x01]) + bytes(range(0x10, 0x10 + size - 2))
    wire = short_frame(data)
    frame = codec.decode_frame(wire)
    assert (frame.service_flags, frame.service_id) == (0x02, 0x01)
    assert (frame.object_type, frame.object_id, frame.property_id) == (0, 0, 0)
    assert frame.data == data[2:]
    assert codec.frame_size(wire) == 16 + size


def test_short_error_frame_carries_its_code(codec):
    frame = codec.decode_frame(WITH_CODE)
    assert frame.error_code == ErrorCode.INVALID_FRAME


@pytest.mark.parametrize("length", [0, 1])
def test_shorter_than_the_service_header_is_refused(codec, length):
    wire = short_frame(bytes(2))
    head = bytearray(wire[:12])
    head[10:12] = length.to_bytes(2, "little")
    head += spec_checksum(bytes(head[1:]))
    with pytest.raises(LengthError, match=f"impossible data_length {length} .must be 2..1034"):
        codec.decode_frame(bytes(head) + bytes(4))


def test_stream_decoder_finds_short_frames_between_frames(codec):
    stream = RESPONSE + SERVICE_ONLY + b"\x00junk" + WITH_CODE + RESPONSE
    for step in (1, 5, len(stream)):
        decoder = codec.StreamDecoder()
        frames = []
        for pos in range(0, len(stream), step):
            frames += decoder.feed(stream[pos : pos + step])
        assert [f.data for f in frames] == [
            codec.decode_frame(RESPONSE).data,
            b"",
            int(ErrorCode.INVALID_FRAME).to_bytes(2, "little"),
            codec.decode_frame(RESPONSE).data,
        ]
        stats = decoder.stats()
        assert stats["frames"] == 4
        assert stats["skipped_bytes"] == stats["junk_bytes"] == 5
        assert stats["length_errors"] == stats["data_errors"] == stats["header_errors"] == 0


def test_decode_batch_reads_short_frames(codec):
    short_ok = short_frame(bytes([0x02, Service.READ, 0x00, 0x00, 0x80, 0x3F]))  # no property
    stream = SERVICE_ONLY + RESPONSE + WITH_CODE + short_ok
    batch = codec.decode_batch(stream)
    assert batch.count == 4
    assert batch.service_flags.tolist() == [ERROR_RESPONSE, 0x02, ERROR_RESPONSE, 0x02]
    assert batch.object_type.tolist() == [0, ObjectType.USER_INFO, 0, 0]
    assert batch.object_id.tolist() == [0, 3000, 0, 0]
    assert batch.error_code.tolist() == [0, 0, ErrorCode.INVALID_FRAME, 0]
    assert batch.data_length.tolist() == [0, 4, 2, 4]
    # A short frame has no property: no value, even when its bytes would fit the format.
    assert math.isnan(batch.value[0]) and math.isnan(batch.value[2])
    assert math.isnan(batch.value[3])
    assert batch.value[1] == codec.unpack_value(Format.FLOAT, codec.decode_frame(RESPONSE).data)
    for i, frame in enumerate(codec.StreamDecoder().feed(stream)):
        assert batch.property_data(stream, i) == frame.data


def test_decode_multi_info_batch_counts_short_frames_as_other(codec):
    data = codec.pack_multi_info_response(0, 7, [3000], [0], [1.5])
    multi = codec.encode_response(Service.READ, ObjectType.MULTI_INFO, 1, 1, data, src=501, dst=1)
    batch = codec.decode_multi_info_batch(SERVICE_ONLY + multi + WITH_CODE)
    assert batch.ids.tolist() == [3000]
    assert batch.stats["multi_info_frames"] == 1
    assert batch.stats["other_frames"] == 2
    assert batch.stats["frames"] == 3


# --- Encoders given objects that run Python code (issue 15 item 10) ---------------------------


class Growing:
    """A pair whose unpacking appends 200 pairs to every list that holds it: the caller's,
    and any copy the encoder made (found through the garbage collector, as an attacker can)."""

    def __init__(self, pair: tuple[int, int] = (3000, 0)):
        self.pair = pair

    def __iter__(self):
        for holder in gc.get_referrers(self):
            if type(holder) is list:
                holder.extend((1, 0) for _ in range(200))
        return iter(self.pair)


class LyingLength(list):
    """A list that reports fewer items than it holds."""

    def __len__(self):
        return 1


def test_pack_multi_info_request_with_items_that_lengthen_the_list(codec):
    items = [Growing() for _ in range(3)]
    assert codec.pack_multi_info_request(items) == bytes.fromhex("B80B00") * 3
    assert len(items) == 3 + 600  # the caller's list did grow; the encoder did not follow it


def test_pack_multi_info_request_from_a_generator_that_grows_its_source(codec):
    source = [(3000, 0), (3001, 1)]

    def pairs():
        for pair in source:
            if len(source) < 500:
                source.append((1, 0))
            yield pair

    with pytest.raises(ValueError, match="got 500"):
        codec.pack_multi_info_request(pairs())


def test_pack_multi_info_response_with_sequences_that_lie(codec):
    ids = LyingLength([3000, 3001, 3002])
    with pytest.raises(ValueError, match="same length"):
        codec.pack_multi_info_response(0, 0, ids, [0], [1.0])
    ids2: list = []
    ids2.append(Index(ids2, 3000))
    packed = codec.pack_multi_info_response(1, 2, ids2, [0], [1.0])
    assert len(packed) == 8 + 7
    assert codec.decode_multi_info(packed).ids.tolist() == [3000]


class Index:
    """An integer whose __index__ lengthens a list the encoder was given."""

    def __init__(self, target: list, value: int):
        self.target = target
        self.value = value

    def __index__(self):
        self.target.extend([1] * 500)
        return self.value
