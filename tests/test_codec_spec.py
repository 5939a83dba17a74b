"""Every frame printed in sections 5.3-5.8 and 6.1 (and 6.2.5) of the specification, byte for byte."""

from __future__ import annotations

import re

import numpy as np
import pytest
from spec_frames import (
    DIRECTORY_LISTING,
    FILE_FINISH_RESPONSE_5_7_2,
    FILE_START_REQUEST_5_7_2,
    GUID,
    MULTI_INFO_ITEMS_5_8,
    MULTI_INFO_REQUEST_5_8,
    MULTI_INFO_RESPONSE_5_8,
    MULTI_INFO_RESPONSE_SERVICE_5_8,
    SCREEN_RESPONSE_HEADER_6_2_5,
    SPEC_BY_NAME,
    SPEC_FRAMES,
    SpecFrame,
)

from xcomlog.exceptions import DataChecksumError, FrameError, ValueFormatError
from xcomlog.protocol import (
    Aggregation,
    Format,
    MultiInfoFlag,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
)

IDS = [f"{f.section} {f.name}" for f in SPEC_FRAMES]


def encode(codec, frame: SpecFrame) -> bytes:
    """Encode a spec frame through the public request/response helpers where they apply."""
    if not frame.is_response and frame.frame_flags == 0:
        return codec.encode_request(
            frame.service_id,
            frame.object_type,
            frame.object_id,
            frame.property_id,
            frame.data,
            src=frame.src,
            dst=frame.dst,
        )
    return codec.encode_response(
        frame.service_id,
        frame.object_type,
        frame.object_id,
        frame.property_id,
        frame.data,
        src=frame.src,
        dst=frame.dst,
        frame_flags=frame.frame_flags,
    )


@pytest.mark.parametrize("frame", SPEC_FRAMES, ids=IDS)
def test_spec_frame_encodes_byte_for_byte(codec, frame):
    assert encode(codec, frame) == frame.wire
    generic = codec.encode_frame(
        frame.service_id,
        frame.object_type,
        frame.object_id,
        frame.property_id,
        frame.data,
        src=frame.src,
        dst=frame.dst,
        service_flags=frame.service_flags,
        frame_flags=frame.frame_flags,
    )
    assert generic == frame.wire


@pytest.mark.parametrize("frame", SPEC_FRAMES, ids=IDS)
def test_spec_frame_decodes_field_for_field(codec, frame):
    decoded = codec.decode_frame(frame.wire)
    assert decoded == (
        frame.frame_flags,
        frame.src,
        frame.dst,
        frame.service_flags,
        frame.service_id,
        frame.object_type,
        frame.object_id,
        frame.property_id,
        frame.data,
    )
    assert decoded.is_response == frame.is_response
    assert not decoded.is_error and decoded.error_code is None
    assert codec.frame_size(frame.wire) == len(frame.wire)


@pytest.mark.parametrize("frame", SPEC_FRAMES, ids=IDS)
def test_spec_frame_checksums(codec, frame):
    wire = frame.wire
    assert codec.checksum(wire[1:12]) == wire[12:14]
    assert codec.checksum(wire[14:-2]) == wire[-2:]


def test_spec_frames_in_one_stream_and_batch(codec):
    stream = b"".join(f.wire for f in SPEC_FRAMES)
    frames = codec.StreamDecoder().feed(stream)
    assert [f.data for f in frames] == [f.data for f in SPEC_FRAMES]
    batch = codec.decode_batch(stream)
    assert batch.count == len(SPEC_FRAMES)
    assert list(batch.object_id) == [f.object_id for f in SPEC_FRAMES]
    assert batch.stats["skipped_bytes"] == 0 and batch.stats["pending"] == 0


def test_spec_values(codec):
    """The values the examples' tables spell out in words."""
    value = codec.unpack_value
    assert value(Format.FLOAT, SPEC_BY_NAME["read user info 3000 response"].data) == 12.359375
    assert value(Format.FLOAT, SPEC_BY_NAME["read parameter 1138 value_qsp response"].data) == 60.0
    assert value(Format.FLOAT, SPEC_BY_NAME["write parameter 1138 value_qsp request"].data) == 12.0
    assert codec.pack_value(Format.FLOAT, 12.0) == bytes.fromhex("00 00 40 41")
    assert codec.pack_value(Format.FLOAT, 60) == bytes.fromhex("00 00 70 42")


def test_spec_message_5_6(codec):
    frame = codec.decode_frame(SPEC_BY_NAME["read message 0 response"].wire)
    message = codec.decode_message(frame.data)
    assert message == (976, 16, 105, 1503571330, b"\0\0\0\0")
    assert codec.pack_message(976, 16, 105, 1503571330) == frame.data


def test_spec_directory_listing_5_7_1(codec):
    frame = codec.decode_frame(SPEC_BY_NAME["read directory finish response"].wire)
    assert frame.object_type == ObjectType.DATALOG_TRANSFER
    assert frame.property_id == Property.SD_FINISH
    names = codec.unpack_value(Format.STRING, frame.data).split("\n")
    assert names == ["LG171010.CSV", "LG171011.CSV", ""]
    assert frame.data == DIRECTORY_LISTING


def test_spec_guid_6_1(codec):
    frame = codec.decode_frame(SPEC_BY_NAME["read GUID response"].wire)
    assert frame.object_type == ObjectType.GUID
    assert codec.unpack_value(Format.BYTE_STREAM, frame.data) == GUID
    # Erratum: the binary row reads 00110100 (0x34) but the printed byte is 0x23 and the
    # header checksum 33 4B belongs to 0x23; with 0x34 it would differ.
    assert frame.frame_flags == 0x23
    wire = bytearray(SPEC_BY_NAME["read GUID response"].wire)
    wire[1] = 0x34
    assert codec.checksum(bytes(wire[1:12])) != bytes(wire[12:14])


def test_erratum_5_7_2_request_header(codec):
    """The request carries 23 bytes of frame_data under a header copied from 5.7.1."""
    printed = FILE_START_REQUEST_5_7_2.printed
    service_and_name = printed[14:-2]
    assert len(service_and_name) == 23  # "14+23+2 = 39" is consistent with the fields
    correct = codec.encode_request(
        Service.READ,
        ObjectType.DATALOG_TRANSFER,
        2,
        Property.SD_START,
        b"LG171010.CSV\n",
        src=1,
        dst=501,
    )
    assert len(correct) == 39 == len(printed)
    assert correct[14:-2] == service_and_name  # service header and file name as printed
    assert correct[:12] == bytes.fromhex("AA 00 01000000 F5010000 1700")
    assert printed[10:14] == bytes.fromhex("0A 00 00 D6")  # 5.7.1's length and checksum
    assert codec.decode_frame(correct).data == b"LG171010.CSV\n"
    with pytest.raises(FrameError):  # the printed header announces a 26-byte frame
        codec.decode_frame(printed)
    decoder = codec.StreamDecoder()
    assert decoder.feed(printed) == []
    assert decoder.stats()["data_errors"] == 1


def test_erratum_5_7_2_response_checksum(codec):
    """Same frame as 5.7.1 but for object_id 2, with 5.7.1's data checksum."""
    printed = FILE_FINISH_RESPONSE_5_7_2.printed
    with pytest.raises(DataChecksumError):
        codec.decode_frame(printed)
    correct = codec.encode_response(
        Service.READ,
        ObjectType.DATALOG_TRANSFER,
        2,
        Property.SD_FINISH,
        DIRECTORY_LISTING,
        src=501,
        dst=1,
        frame_flags=0x27,
    )
    assert correct[:-2] == printed[:-2]
    assert correct[-2:] == bytes.fromhex("EF E9")
    assert printed[-2:] == SPEC_BY_NAME["read directory finish response"].wire[-2:]


def test_erratum_5_8_request(codec):
    """Items unprinted: check the service header and the stated minimum/maximum sizes."""
    printed = MULTI_INFO_REQUEST_5_8.printed
    frame = codec.encode_multi_info_request(MULTI_INFO_ITEMS_5_8, src=1, dst=501)
    assert frame[:10] == printed[:10]  # start, flags, src, dst
    assert frame[14:24] == printed[14:24]  # service header: read multi infos, id 1, value
    assert frame[10:12] == (10 + 3 * 24).to_bytes(2, "little")
    decoded = codec.decode_frame(frame)
    assert codec.unpack_multi_info_request(decoded.data) == MULTI_INFO_ITEMS_5_8
    one = codec.encode_multi_info_request([(3000, Aggregation.AVERAGE)], src=1, dst=501)
    most = codec.encode_multi_info_request([(3000, 0)] * 76, src=1, dst=501)
    assert (len(one), len(most)) == (29, 254)  # "min 14+10+3+2 = 29 ... max 254 bytes"
    with pytest.raises(ValueError):
        codec.encode_multi_info_request([(3000, 0)] * 77)


def test_erratum_5_8_response(codec):
    """Checksums unprinted and data_length 114 impossible: check what is consistent."""
    printed = MULTI_INFO_RESPONSE_5_8.printed
    flags = int(MultiInfoFlag.XT_PRESENT | MultiInfoFlag.BSP_PRESENT | MultiInfoFlag.VT_PRESENT)
    ids = [i for i, _ in MULTI_INFO_ITEMS_5_8]
    aggs = [a for _, a in MULTI_INFO_ITEMS_5_8]
    values = [float(v) for v in np.arange(24, dtype=np.float32) * 1.5]

    def response(ids: list[int], aggs: list[int], values: list[float]) -> bytes:
        data = codec.pack_multi_info_response(flags, 1503571330, ids, aggs, values)
        return codec.encode_response(
            Service.READ,
            ObjectType.MULTI_INFO,
            1,
            Property.VALUE,
            data,
            src=501,
            dst=1,
            frame_flags=0x37,
        )

    assert len(response(ids[:1], aggs[:1], values[:1])) == 41  # "min 14+10+2x4+7+2 = 41"
    most = response((ids * 4)[:76], (aggs * 4)[:76], (values * 4)[:76])
    assert len(most) == 566  # "max 14+10+2x4+76x7+2 = 566 bytes"
    wire = response(ids, aggs, values)
    assert wire[:10] == printed[:10]
    assert wire[14:24] == MULTI_INFO_RESPONSE_SERVICE_5_8
    decoded = codec.decode_multi_info(codec.decode_frame(wire).data)
    assert decoded.flags == flags and decoded.timestamp == 1503571330
    assert list(decoded.ids) == ids and list(decoded.aggregations) == aggs
    np.testing.assert_array_equal(decoded.values, np.array(values, dtype=np.float32))
    # The printed header prefix is what the encoder writes for data_length 0x72 ...
    forced = codec.encode_response(
        Service.READ, ObjectType.MULTI_INFO, 1, 1, bytes(104), src=501, dst=1, frame_flags=0x37
    )
    assert forced[:12] == printed
    # ... but 104 bytes of property data is not 8 + 7 * N, so it cannot be decoded.
    with pytest.raises(ValueFormatError):
        codec.decode_multi_info(codec.decode_frame(forced).data)


def test_screen_response_header_6_2_5(codec):
    """Only the header of the 1050-byte screen response is printed."""
    wire = codec.encode_response(
        Service.READ, ObjectType.SCREEN, 0, 0, bytes(1024), src=501, dst=1, frame_flags=0x22
    )
    assert wire[:14] == SCREEN_RESPONSE_HEADER_6_2_5
    assert codec.frame_size(SCREEN_RESPONSE_HEADER_6_2_5) == 1050 == len(wire)


def test_examples_flag_byte_meaning():
    """Section 5: 0x34 = SD card present, new datalog file, datalogger supported."""
    from xcomlog.protocol import FrameFlag

    assert FrameFlag(0x34) == (
        FrameFlag.SD_CARD_PRESENT | FrameFlag.NEW_DATALOG_FILE | FrameFlag.DATALOGGER_SUPPORTED
    )
    assert ServiceFlag.RESPONSE == 0x02


@pytest.mark.parametrize("frame", SPEC_FRAMES, ids=IDS)
def test_spec_frame_matches_reference_text(reference_dir, frame):
    """The transcribed header bytes appear in the specification text itself."""
    text = (reference_dir / "xtender-serial-protocol-V1.6.32.txt").read_text(errors="replace")
    flat = re.sub(r"\s+", " ", text)
    header = " ".join(f"{b:02X}" for b in frame.wire[:14])
    assert header in flat
    checksum = " ".join(f"{b:02X}" for b in frame.wire[-2:])
    assert checksum in flat


# What the tables say in words, independent of the transcribed bytes.
MEANINGS = {
    "read user info 3000 request": (1, 101, Service.READ, ObjectType.USER_INFO, 3000, 1),
    "read user info 3000 response": (101, 1, Service.READ, ObjectType.USER_INFO, 3000, 1),
    "read parameter 1138 value_qsp request": (1, 101, 1, ObjectType.PARAMETER, 1138, 5),
    "read parameter 1138 value_qsp response": (101, 1, 1, ObjectType.PARAMETER, 1138, 5),
    "write parameter 1138 value_qsp request": (1, 101, Service.WRITE, 2, 1138, 5),
    "write parameter 1138 value_qsp response": (101, 1, Service.WRITE, 2, 1138, 5),
    "read message 0 request": (1, 501, 1, ObjectType.MESSAGE, 0, 0),
    "read message 0 response": (501, 1, 1, ObjectType.MESSAGE, 0, 0),
    "read directory start request": (1, 501, 1, ObjectType.DATALOG_TRANSFER, 1, 0x21),
    "read directory finish response": (501, 1, 1, ObjectType.DATALOG_TRANSFER, 1, 0x26),
    "read GUID request": (1, 501, 1, ObjectType.GUID, 0, 0),
    "read GUID response": (501, 1, 1, ObjectType.GUID, 0, 0),
    "read screen request": (1, 501, 1, ObjectType.SCREEN, 0, 0),
}


@pytest.mark.parametrize("name", sorted(MEANINGS))
def test_spec_frame_meaning(codec, name):
    frame = codec.decode_frame(SPEC_BY_NAME[name].wire)
    fields = (frame.src, frame.dst, frame.service_id, frame.object_type, frame.object_id)
    assert fields + (frame.property_id,) == MEANINGS[name]
    assert frame.is_response == name.endswith("response")
    assert frame.frame_flags == (0 if name.endswith("request") else frame.frame_flags)
