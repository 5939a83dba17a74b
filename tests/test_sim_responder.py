"""Simulator.handle in process: the specification's example frames byte for byte, every
service, addressing rule and error code."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import DIRECTORY_LISTING, MESSAGE_DATA, SPEC_BY_NAME

from xcomlog import codec
from xcomlog.exceptions import DeviceError
from xcomlog.protocol import (
    FLASH_SAVE_PARAMETERS,
    PARAM_CLEAR_RESTART_FLAG,
    PARAM_DATE,
    SPEC_GUID_EXAMPLE,
    AccessLevel,
    Aggregation,
    ErrorCode,
    Family,
    Format,
    FrameFlag,
    MultiInfoFlag,
    ObjectType,
    Property,
    Service,
    phase,
    vs,
    vt,
    xt,
)
from xcomlog.sim import FaultConfig, Installation, Simulator

QUIET = dict(messages=0)  # no message history: the pending flag stays off


def make(installation: Installation | None = None, **kw) -> Simulator:
    kw.setdefault("message_every_s", 0)
    kw.setdefault("restarted", False)
    return Simulator(installation or Installation(**QUIET), **kw)


def ask(sim: Simulator, *args, **kw):
    """Send one request, return the decoded single response frame."""
    out = sim.handle(codec.encode_request(*args, **kw))
    assert len(out) == 1
    return codec.decode_frame(out[0])


def read_info(sim, dst, number, prop=Property.VALUE):
    return ask(sim, Service.READ, ObjectType.USER_INFO, number, prop, dst=dst)


def read_param(sim, dst, number, prop=Property.VALUE_QSP):
    return ask(sim, Service.READ, ObjectType.PARAMETER, number, prop, dst=dst)


def write_param(sim, dst, number, fmt, value, prop=Property.VALUE_QSP):
    data = codec.pack_value(fmt, value)
    return ask(sim, Service.WRITE, ObjectType.PARAMETER, number, prop, data, dst=dst)


def as_float(frame) -> float:
    return struct.unpack("<f", frame.data)[0]


# --- the specification's example frames ---------------------------------------------------


def test_spec_5_3_read_user_info_byte_for_byte():
    sim = make()
    sim.set_value(xt(1), 3000, 12.359375)
    request = SPEC_BY_NAME["read user info 3000 request"].wire
    assert sim.handle(request) == [SPEC_BY_NAME["read user info 3000 response"].wire]


def test_spec_5_4_and_5_5_parameter_read_write_byte_for_byte():
    sim = make()
    assert sim.handle(SPEC_BY_NAME["read parameter 1138 value_qsp request"].wire) == [
        SPEC_BY_NAME["read parameter 1138 value_qsp response"].wire
    ]
    assert sim.handle(SPEC_BY_NAME["write parameter 1138 value_qsp request"].wire) == [
        SPEC_BY_NAME["write parameter 1138 value_qsp response"].wire
    ]
    assert sim.value(xt(1), 1138) == 12.0
    assert sim.flash_writes == {(xt(1), 1138): 1}


def test_spec_5_6_read_message_byte_for_byte():
    sim = make(Installation(xtenders=5, **QUIET))
    for i in range(976):
        sim.add_message(i % 30, xt(1 + i % 5), 1503000000 + i)
    sim.add_message(16, 105, 1503571330)
    assert sim.frame_flags & FrameFlag.MESSAGE_PENDING
    response = sim.handle(SPEC_BY_NAME["read message 0 request"].wire)
    assert response == [SPEC_BY_NAME["read message 0 response"].wire]
    assert codec.decode_frame(response[0]).data == MESSAGE_DATA
    assert not sim.frame_flags & FrameFlag.MESSAGE_PENDING  # index 0 clears it


def test_spec_5_7_1_directory_byte_for_byte():
    start = dt.datetime(2017, 10, 12, 9, 0, tzinfo=dt.timezone.utc).timestamp()
    sim = make(Installation(sd_days=2, messages=1), start_time=start, restarted=True)
    sim.sdcard.new_file = False  # the printed flags 0x27 have no new-file bit
    response = sim.handle(SPEC_BY_NAME["read directory start request"].wire)
    assert response == [SPEC_BY_NAME["read directory finish response"].wire]
    assert codec.decode_frame(response[0]).data == DIRECTORY_LISTING


def test_spec_6_1_5_guid_byte_for_byte():
    # The configured GUID is the text a client shows; on the wire it is the spec's bytes.
    inst = Installation(sd_card=False, messages=1, guid=SPEC_GUID_EXAMPLE)
    sim = make(inst, restarted=True)
    assert sim.handle(SPEC_BY_NAME["read GUID request"].wire) == [
        SPEC_BY_NAME["read GUID response"].wire
    ]


def test_screen_object_is_not_supported():
    frame = codec.decode_frame(make().handle(SPEC_BY_NAME["read screen request"].wire)[0])
    assert frame.error_code == ErrorCode.SCOM_ERROR_OBJECT_NOT_SUPPORTED


# --- frames, user infos, addressing -------------------------------------------------------


def test_response_copies_addresses_and_service_header():
    sim = make()
    f = ask(sim, Service.READ, ObjectType.USER_INFO, 11004, Property.VALUE, src=7, dst=vt(1))
    assert (f.src, f.dst, f.service_id, f.object_type, f.object_id, f.property_id) == (
        vt(1),
        7,
        Service.READ,
        ObjectType.USER_INFO,
        11004,
        Property.VALUE,
    )
    assert f.is_response and not f.is_error


def test_bad_checksums_get_no_answer():
    sim = make()
    good = bytearray(codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, 1, dst=xt(1)))
    for pos in (5, len(good) - 4, len(good) - 1):
        bad = bytearray(good)
        bad[pos] ^= 0x40
        assert sim.handle(bytes(bad)) == []


def test_responses_are_not_answered():
    sim = make()
    response = sim.handle(
        codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, 1, dst=xt(1))
    )[0]
    assert sim.handle(response) == []


@pytest.mark.parametrize("prop", [Property.VALUE, Property.VALUE_QSP, Property.UNSAVED_VALUE_QSP])
def test_user_info_properties_the_libraries_send(prop):
    sim = make()
    f = read_info(sim, xt(1), 3000, prop)
    assert not f.is_error and len(f.data) == 4
    assert 30.0 < as_float(f) < 70.0


def test_user_info_errors():
    sim = make()
    assert (
        read_info(sim, xt(1), 3000, Property.MIN_QSP).error_code == ErrorCode.PROPERTY_NOT_SUPPORTED
    )
    assert read_info(sim, xt(1), 2999).error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    assert read_info(sim, xt(1), 11004).error_code == ErrorCode.OBJECT_ID_NOT_FOUND  # a VT info
    assert read_info(sim, xt(3), 3000).error_code == ErrorCode.DEVICE_NOT_FOUND  # only 2 XT
    assert read_info(sim, 400, 3000).error_code == ErrorCode.DEVICE_NOT_FOUND
    write = ask(sim, Service.WRITE, ObjectType.USER_INFO, 3000, 1, b"\0\0\0\0", dst=xt(1))
    assert write.error_code == ErrorCode.PROPERTY_IS_READ_ONLY
    assert ask(sim, 0x07, ObjectType.USER_INFO, 3000, 1, dst=xt(1)).error_code == (
        ErrorCode.SERVICE_NOT_SUPPORTED
    )
    assert (
        ask(sim, Service.READ, 0x0042, 3000, 1, dst=xt(1)).error_code
        == ErrorCode.TYPE_NOT_SUPPORTED
    )


def test_enum_info_is_a_valid_option():
    sim = make()
    from xcomlog.catalog import load_catalog

    dp = load_catalog().get(3010, family=Family.XTENDER)
    f = read_info(sim, xt(1), 3010)
    assert len(f.data) == 2
    assert codec.unpack_value(Format.SHORT_ENUM, f.data) in dp.options


def test_multicast_read_first_device_or_strict_error():
    sim = make()
    sim.set_value(vt(1), 11004, 1.5)
    f = read_info(sim, 300, 11004)
    assert as_float(f) == 1.5 and f.src == 300
    strict = make(strict=True)
    assert (
        read_info(strict, 300, 11004).error_code
        == ErrorCode.SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED
    )
    # xcom-proto reads BSP infos at 100 by default? No: it reads at the family multicast.
    assert read_info(sim, 600, 7000).is_error is False
    assert read_info(sim, 700, 15010).is_error is False


def test_multicast_without_devices_is_device_not_found():
    sim = make(Installation(variotracks=0, **QUIET))
    assert read_info(sim, 300, 11004).error_code == ErrorCode.DEVICE_NOT_FOUND


def test_phase_read_returns_the_phase_master():
    sim = make(Installation(xtenders=4, phases=(1, 2, 2, 3), **QUIET))
    for address, value in ((xt(1), 1.0), (xt(2), 2.0), (xt(3), 3.0), (xt(4), 4.0)):
        sim.set_value(address, 3000, value)
    assert [as_float(read_info(sim, phase(n), 3000)) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    empty = make(Installation(xtenders=1, **QUIET))
    assert read_info(empty, phase(2), 3000).error_code == ErrorCode.DEVICE_NOT_FOUND


# --- parameters ---------------------------------------------------------------------------


def test_parameter_properties():
    sim = make()
    assert as_float(read_param(sim, xt(1), 1138, Property.MIN_QSP)) == 0.0
    assert as_float(read_param(sim, xt(1), 1138, Property.MAX_QSP)) == 200.0
    level = read_param(sim, xt(1), 1138, Property.LEVEL_QSP)
    assert int.from_bytes(level.data, "little") == AccessLevel.BASIC
    assert as_float(read_param(sim, xt(1), 1138, Property.UNSAVED_VALUE_QSP)) == 60.0
    assert (
        read_param(sim, xt(1), 1138, Property.VALUE).error_code == ErrorCode.PROPERTY_NOT_SUPPORTED
    )
    assert read_param(sim, xt(1), 3000).error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    # A menu has a level but no value.
    assert not read_param(sim, xt(1), 1100, Property.LEVEL_QSP).is_error
    assert read_param(sim, xt(1), 1100).error_code == ErrorCode.PROPERTY_NOT_SUPPORTED


def test_parameter_write_errors():
    sim = make()
    assert write_param(sim, xt(1), 1138, Format.FLOAT, -1.0).error_code == ErrorCode.DATA_TOO_SMALL
    assert write_param(sim, xt(1), 1138, Format.FLOAT, 250.0).error_code == ErrorCode.DATA_TOO_BIG
    short = ask(sim, Service.WRITE, ObjectType.PARAMETER, 1138, 5, b"\0\0", dst=xt(1))
    assert short.error_code == ErrorCode.INVALID_DATA_LENGTH
    assert write_param(sim, xt(1), 1552, Format.LONG_ENUM, 3).error_code == ErrorCode.INVALID_DATA
    bad_bool = ask(sim, Service.WRITE, ObjectType.PARAMETER, 1126, 5, b"\x02", dst=xt(1))
    assert bad_bool.error_code == ErrorCode.INVALID_DATA
    assert write_param(sim, xt(1), 1138, Format.FLOAT, 10.0, Property.MIN_QSP).error_code == (
        ErrorCode.PROPERTY_IS_READ_ONLY
    )
    assert write_param(sim, xt(1), 1395, Format.INT32, 2).error_code == ErrorCode.INVALID_DATA
    assert sim.flash_writes == {}
    assert sim.value(xt(1), 1138) == 60.0  # nothing refused was stored


def test_view_only_and_access_level():
    sim = make()
    # {5012} is the one "View only" parameter of the appendix (format not supported).
    assert ask(
        sim, Service.WRITE, ObjectType.PARAMETER, 5012, 5, b"\0\0\0\0", dst=501
    ).error_code in (ErrorCode.PROPERTY_IS_READ_ONLY, ErrorCode.PROPERTY_NOT_SUPPORTED)
    basic = make(access_level=AccessLevel.BASIC)
    assert write_param(basic, xt(1), 1138, Format.FLOAT, 20.0).is_error is False  # Basic level
    # 1550 is an Installer parameter: refused at user level Basic.
    assert write_param(basic, xt(1), 1550, Format.BOOL, 0).error_code == ErrorCode.ACCESS_DENIED


def test_flash_counting_1550_and_unsaved_value():
    sim = make()
    a = xt(1)
    save = FLASH_SAVE_PARAMETERS[Family.XTENDER]
    write_param(sim, a, 1138, Format.FLOAT, 30.0)
    assert sim.flash_writes[(a, 1138)] == 1
    # unsaved_value_qsp: RAM only, never the flash.
    for v in (31.0, 32.0, 33.0):
        assert not write_param(sim, a, 1138, Format.FLOAT, v, Property.UNSAVED_VALUE_QSP).is_error
    assert sim.flash_writes[(a, 1138)] == 1
    assert sim.parameter(a, 1138) == (30.0, 33.0)
    assert as_float(read_param(sim, a, 1138)) == 30.0
    assert as_float(read_param(sim, a, 1138, Property.UNSAVED_VALUE_QSP)) == 33.0
    # {1550} = no: written to flash the first time only; later writes of any parameter stay in RAM.
    for _ in range(5):
        assert not write_param(sim, a, save, Format.BOOL, 0).is_error
    assert sim.flash_writes[(a, save)] == 1
    for v in (40.0, 41.0, 42.0):
        write_param(sim, a, 1138, Format.FLOAT, v)
    assert sim.flash_writes[(a, 1138)] == 1
    assert sim.parameter(a, 1138) == (30.0, 42.0)  # reads give the value before {1550} = no
    # "yes" is written every time.
    write_param(sim, a, save, Format.BOOL, 1)
    write_param(sim, a, save, Format.BOOL, 1)
    assert sim.flash_writes[(a, save)] == 3


def test_multicast_and_phase_writes_reach_every_device():
    sim = make(Installation(xtenders=3, phases=(1, 2, 2), variostrings=3, **QUIET))
    f = write_param(sim, 100, 1138, Format.FLOAT, 20.0)
    assert not f.is_error and f.src == 100
    assert [sim.value(xt(i), 1138) for i in (1, 2, 3)] == [20.0, 20.0, 20.0]
    write_param(sim, phase(2), 1138, Format.FLOAT, 25.0)
    assert [sim.value(xt(i), 1138) for i in (1, 2, 3)] == [20.0, 25.0, 25.0]
    assert sim.flash_writes[(xt(1), 1138)] == 1 and sim.flash_writes[(xt(2), 1138)] == 2
    write_param(sim, 700, 14069, Format.BOOL, 0)
    assert all(sim.parameter(vs(i), 14069)[1] is False for i in (1, 2, 3))


def test_restart_flag_cleared_by_signal():
    sim = make(restarted=True)
    assert sim.frame_flags & FrameFlag.RESTARTED
    f = write_param(sim, 501, PARAM_CLEAR_RESTART_FLAG, Format.INT32, 1)
    assert not f.is_error
    assert not f.frame_flags & FrameFlag.RESTARTED
    assert sim.flash_writes == {}


def test_date_parameter_reads_and_sets_the_clock():
    start = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    sim = make(start_time=start, speed=0.0)
    f = read_param(sim, 501, PARAM_DATE)
    assert codec.unpack_value(Format.INT32, f.data) == int(start)
    write_param(sim, 501, PARAM_DATE, Format.INT32, int(start) + 3600)
    f = read_param(sim, 501, PARAM_DATE)
    assert codec.unpack_value(Format.INT32, f.data) == int(start) + 3600


# --- multi infos --------------------------------------------------------------------------


def multi(sim, items, prop=Property.VALUE, src=1):
    out = sim.handle(codec.encode_multi_info_request(items, src=src, property_id=prop))
    return codec.decode_frame(out[0])


def test_multi_info_aggregations():
    sim = make(Installation(xtenders=3, variostrings=2, **QUIET))
    for i, v in ((1, 10.0), (2, 20.0), (3, 40.0)):
        sim.set_value(xt(i), 3136, v)
    items = [
        (3136, Aggregation.MASTER),
        (3136, 1),
        (3136, 2),
        (3136, 3),
        (3136, Aggregation.AVERAGE),
        (3136, Aggregation.SUM),
    ]
    f = multi(sim, items)
    assert not f.is_error
    info = codec.decode_multi_info(f.data)
    assert list(info.ids) == [3136] * 6
    assert list(info.aggregations) == [a for _, a in items]
    assert [float(v) for v in info.values] == pytest.approx([10, 10, 20, 40, 70 / 3, 70])
    assert info.flags == MultiInfoFlag.XT_PRESENT | MultiInfoFlag.VT_PRESENT | (
        MultiInfoFlag.VS_PRESENT | MultiInfoFlag.BSP_PRESENT
    )
    assert abs(info.timestamp - sim.device_time()) <= 2


def test_multi_info_76_items_echoes_property_id():
    sim = make()
    sim.set_time(1_700_000_000.0, speed=0.0)  # frozen: the multi read and the single reads agree
    from xcomlog.catalog import load_catalog

    numbers = [dp.number for dp in load_catalog().datapoints(family=Family.XTENDER, kind="info")][
        :76
    ]
    items = [(n, Aggregation.SUM) for n in numbers]
    f = multi(sim, items, prop=0x1234)
    assert f.property_id == 0x1234 and not f.is_error
    info = codec.decode_multi_info(f.data)
    assert len(info.values) == 76
    assert list(info.ids) == numbers
    # Sum of both Xtenders, as each single read gives it.
    expected = sum(as_float(read_info(sim, xt(i), numbers[0])) for i in (1, 2))
    assert float(info.values[0]) == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_multi_info_spec_5_8_items_and_errors():
    from spec_frames import MULTI_INFO_ITEMS_5_8

    sim = make()
    f = multi(sim, MULTI_INFO_ITEMS_5_8)
    assert not f.is_error and len(codec.decode_multi_info(f.data).values) == 24
    assert multi(sim, [(2999, 0)]).error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    assert multi(sim, [(3000, 0x10)]).error_code == ErrorCode.INVALID_SERVICE_ARGUMENT
    assert multi(sim, [(3000, 9)]).error_code == ErrorCode.DEVICE_NOT_FOUND
    bad_len = ask(sim, Service.READ, ObjectType.MULTI_INFO, 1, 1, b"\xb8\x0b", dst=501)
    assert bad_len.error_code == ErrorCode.INVALID_DATA_LENGTH
    too_many = ask(sim, Service.READ, ObjectType.MULTI_INFO, 1, 1, b"\xb8\x0b\x00" * 77, dst=501)
    assert too_many.error_code == ErrorCode.INVALID_DATA_LENGTH
    wrong_object = ask(sim, Service.READ, ObjectType.MULTI_INFO, 2, 1, b"\xb8\x0b\x00", dst=501)
    assert wrong_object.error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    at_device = ask(sim, Service.READ, ObjectType.MULTI_INFO, 1, 1, b"\xb8\x0b\x00", dst=xt(1))
    assert at_device.error_code == ErrorCode.TYPE_NOT_SUPPORTED


def test_multi_info_bms_answers_7xxx():
    sim = make(Installation(battery="bms", **QUIET))
    f = multi(sim, [(7002, 0), (7061, 0)])  # 7061: a BMS-only info
    assert not f.is_error
    assert read_info(sim, 601, 7061).is_error is False


# --- messages, GUID, custom datalog field -------------------------------------------------


def test_message_log_semantics():
    sim = make()
    msg = lambda i: ask(sim, Service.READ, ObjectType.MESSAGE, i, 0, dst=501)  # noqa: E731
    assert msg(0).error_code == ErrorCode.OBJECT_ID_NOT_FOUND  # empty log
    for i in range(3):
        sim.add_message(10 + i, xt(1), 1000 + i)
    first = codec.decode_message(msg(0).data)
    assert (first.total, first.message_type, first.timestamp) == (2, 12, 1002)
    sim.add_message(99, vt(1), 2000)  # arrives after the index-0 read
    assert sim.frame_flags & FrameFlag.MESSAGE_PENDING
    older = [codec.decode_message(msg(i).data) for i in (1, 2)]
    assert [(m.total, m.message_type) for m in older] == [(1, 11), (0, 10)]
    assert msg(3).error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    newest = codec.decode_message(msg(0).data)
    assert (newest.total, newest.message_type, newest.source) == (3, 99, vt(1))
    assert not sim.frame_flags & FrameFlag.MESSAGE_PENDING
    assert ask(sim, Service.READ, ObjectType.MESSAGE, 0, 0, dst=xt(1)).error_code == (
        ErrorCode.TYPE_NOT_SUPPORTED
    )


def test_messages_appear_over_time():
    start = 1_700_000_000.0
    sim = make(start_time=start, speed=0.0, message_every_s=60)
    before = len(sim.messages)
    sim.set_time(start + 3600, speed=0.0)
    assert len(sim.messages) > before
    assert sim.frame_flags & FrameFlag.MESSAGE_PENDING


def test_guid_and_custom_datalog_field():
    sim = make(Installation(guid="00112233445566778899aabbccddeeff", **QUIET))
    f = ask(sim, Service.READ, ObjectType.GUID, 0, 0, dst=501)
    # One 128-bit little-endian integer on the wire (section 6.1.4).
    assert f.data == bytes.fromhex("00112233445566778899aabbccddeeff")[::-1]
    text = "#STU:,Service datalog text,,Long:46.2,Lat:7.3"
    w = ask(sim, Service.WRITE, ObjectType.CUSTOM_DATALOG_FIELD, 0, 1, text.encode(), dst=501)
    assert not w.is_error and sim.custom_datalog_field == text
    too_long = ask(sim, Service.WRITE, ObjectType.CUSTOM_DATALOG_FIELD, 0, 1, b"x" * 251, dst=501)
    assert too_long.error_code == ErrorCode.DATA_TOO_BIG
    read = ask(sim, Service.READ, ObjectType.CUSTOM_DATALOG_FIELD, 0, 1, dst=501)
    assert read.error_code == ErrorCode.SERVICE_NOT_SUPPORTED
    assert sim.custom_datalog_field == text  # the refused write lost nothing


# --- SD-card file transfer -------------------------------------------------------------------


def transfer(sim, object_id, prop, data=b""):
    return ask(sim, Service.READ, ObjectType.DATALOG_TRANSFER, object_id, prop, data, dst=501)


def test_file_transfer_blocks_ack_nack_finish():
    start = dt.datetime(2024, 6, 20, 8, 0, tzinfo=dt.timezone.utc).timestamp()
    sim = make(Installation(sd_days=2, **QUIET), start_time=start)
    assert sim.frame_flags & FrameFlag.NEW_DATALOG_FILE
    listing = transfer(sim, 1, Property.SD_START)
    assert listing.property_id == Property.SD_FINISH
    assert listing.data == b"LG240618.CSV\nLG240619.CSV\n"
    first = transfer(sim, 2, Property.SD_START, b"LG240619.CSV\n")
    assert first.property_id == Property.SD_DATABLOCK and len(first.data) == 512
    again = transfer(sim, 2, Property.SD_NACK_RETRY)
    assert again.data == first.data and again.property_id == Property.SD_DATABLOCK
    content = bytearray(first.data)
    while True:
        block = transfer(sim, 2, Property.SD_ACK_CONTINUE)
        assert not block.is_error
        content += block.data
        if block.property_id == Property.SD_FINISH:
            break
        assert block.property_id == Property.SD_DATABLOCK and len(block.data) == 512
    assert bytes(content) == sim.sdcard.read("LG240619.CSV", sim.now())
    assert not sim.frame_flags & FrameFlag.NEW_DATALOG_FILE  # reset by the download
    assert (
        transfer(sim, 2, Property.SD_ACK_CONTINUE).error_code == ErrorCode.OBJECT_PROPERTY_INVALID
    )
    text = bytes(content).decode("latin-1")
    assert text.startswith("v7.0,") and "19.06.2024 23:59," in text


def test_file_transfer_abort_and_errors():
    sim = make(Installation(sd_days=1, **QUIET))
    assert (
        transfer(sim, 2, Property.SD_ACK_CONTINUE).error_code == ErrorCode.OBJECT_PROPERTY_INVALID
    )
    missing = transfer(sim, 2, Property.SD_START, b"LG000101.CSV")
    assert missing.error_code == ErrorCode.FILE_OR_DIR_NOT_PRESENT
    name = sim.sdcard.names(sim.now())[0].encode()
    assert transfer(sim, 2, Property.SD_START, name).property_id == Property.SD_DATABLOCK
    aborted = transfer(sim, 2, Property.SD_ABORT)
    assert aborted.property_id == Property.SD_FINISH and aborted.data == b""
    assert transfer(sim, 2, Property.SD_NACK_RETRY).error_code == ErrorCode.OBJECT_PROPERTY_INVALID
    assert transfer(sim, 3, Property.SD_START).error_code == ErrorCode.OBJECT_ID_NOT_FOUND
    no_card = make(Installation(sd_card=False, **QUIET))
    assert transfer(no_card, 1, Property.SD_START).error_code == ErrorCode.FILE_OR_DIR_NOT_PRESENT
    assert not no_card.frame_flags & FrameFlag.SD_CARD_PRESENT


# --- public helpers and faults in handle -------------------------------------------------------


def test_value_helper_and_unknown_addresses():
    sim = make()
    sim.set_time(1_700_000_000.0, speed=0.0)  # frozen: both reads see the same instant
    assert sim.value(100, 3000) == sim.value(xt(1), 3000)
    with pytest.raises(DeviceError):
        sim.value(109, 3000)


def test_busy_and_drop_faults_are_seeded():
    def run(seed):
        sim = make(faults=FaultConfig(busy=0.3, drop=0.2), seed=seed)
        request = codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, 1, dst=xt(1))
        outcome = []
        for _ in range(60):
            out = sim.handle(request)
            outcome.append("drop" if not out else codec.decode_frame(out[-1]).error_code)
        return outcome

    first = run(5)
    assert first == run(5)
    assert "drop" in first and ErrorCode.SCOM_ERROR_GATEWAY_BUSY in first and None in first


# --- any well-formed request gets exactly one well-formed answer ------------------------------

_FUZZ_SIM = make(Installation(xtenders=3, phases=(1, 2, 3), battery="bms", sd_days=1, **QUIET))
_ADDRESSES = [
    0,
    1,
    100,
    101,
    103,
    104,
    191,
    192,
    193,
    300,
    301,
    302,
    501,
    600,
    601,
    700,
    701,
    702,
    999,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    service=st.sampled_from([1, 2, 0, 3, 0xFF]),
    object_type=st.sampled_from([1, 2, 3, 4, 5, 10, 0x100, 0x101, 0, 7, 0xFFFF]),
    object_id=st.one_of(
        st.sampled_from([0, 1, 2, 3000, 1138, 1550, 5104, 7002, 11004, 15010]),
        st.integers(0, 2**32 - 1),
    ),
    property_id=st.sampled_from(
        [0, 1, 5, 6, 7, 8, 0xD, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xFFFF]
    ),
    data=st.binary(max_size=40),
    dst=st.sampled_from(_ADDRESSES),
)
def test_any_request_gets_one_well_formed_response(
    service, object_type, object_id, property_id, data, dst
):
    request = codec.encode_request(
        service, object_type, object_id, property_id, data, src=1, dst=dst
    )
    out = _FUZZ_SIM.handle(request)
    assert len(out) == 1
    frame = codec.decode_frame(out[0])
    assert frame.is_response and frame.dst == 1 and frame.src == dst
    assert (frame.service_id, frame.object_type, frame.object_id) == (
        service,
        object_type,
        object_id,
    )
    if frame.is_error:
        assert len(frame.data) == 2 and frame.error_code in set(ErrorCode)
