"""XcomClient and the session logic against an in-process fake gateway (no sockets).

Every fault is scripted request by request, so each test proves one behaviour:
matching, retries, busy waits, device errors, multi-info splitting and fallback,
the message walk, file transfers with lost blocks, scan, and flash-safety of writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from test_client_support import FakeGateway, FakeTransport, VirtualClock, default_gateway

from xcomlog import codec
from xcomlog.client import AsyncXcomClient, XcomClient
from xcomlog.engine import PolitePolicy, Request
from xcomlog.exceptions import (
    CatalogError,
    DeviceError,
    LinkError,
    ValidationError,
    XcomTimeout,
)
from xcomlog.protocol import (
    AccessLevel,
    ErrorCode,
    Family,
    Format,
    FrameFlag,
    ObjectType,
    Property,
    Service,
)

pytestmark = pytest.mark.timeout(30)


def make_client(
    gw: FakeGateway | None = None, **options
) -> tuple[XcomClient, FakeGateway, FakeTransport]:
    gw = gw or default_gateway()
    clock = VirtualClock()
    link = FakeTransport(gw, clock)
    options.setdefault("backoff", 0.0)
    options.setdefault("busy_delay", 0.0)
    client = XcomClient(link, clock=clock, **options)
    client.open()
    return client, gw, link


# --- reads and writes ---------------------------------------------------------------------


def test_read_info_typed_through_catalog():
    client, gw, _ = make_client()
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert client.read_info(3000, address=102) == 12.5
    state = client.read_info(3028, address=101)  # a SHORT ENUM info the device sends as FLOAT
    assert state == 3 and isinstance(state, int)
    req = gw.requests[-1]
    assert (req.object_type, req.object_id, req.property_id, req.dst) == (
        ObjectType.USER_INFO,
        3028,
        Property.VALUE,
        101,
    )


def test_read_info_default_address_is_first_device_of_family():
    client, gw, _ = make_client()
    assert client.read_info(11000) == 48.0
    assert gw.requests[-1].dst == 301


def test_ambiguous_number_needs_an_address():
    client, gw, _ = make_client()
    with pytest.raises(CatalogError):
        client.read_info(7002)  # BSP and Xcom-CAN BMS both define it
    assert gw.requests == []
    assert client.read_info(7002, address=601) == 87.5


def test_unknown_number_is_refused_before_sending_unless_fmt_given():
    client, gw, _ = make_client()
    gw.add_info(101, 3999, 7.0)
    with pytest.raises(CatalogError):
        client.read_info(3999, address=101)
    assert gw.requests == []
    assert client.read_info(3999, address=101, fmt=Format.FLOAT) == 7.0


def test_read_param_properties():
    client, gw, _ = make_client()
    assert client.read_param(1138, address=101) == 60.0
    assert gw.requests[-1].property_id == Property.VALUE_QSP
    assert client.read_param(1138, address=101, prop=Property.MIN_QSP) == 0.0
    assert client.read_param(1138, address=101, prop=Property.MAX_QSP) == 100.0
    assert client.read_param(1138, address=101, prop=Property.LEVEL_QSP) is AccessLevel.BASIC
    assert client.read_param(1552, address=101) == 1


def test_write_defaults_to_ram_and_flash_only_when_asked():
    client, gw, _ = make_client()
    for value in (10.0, 11.0, 12.0):
        client.write_param(1138, value, address=101)
    assert gw.flash_writes == {}
    assert gw.ram_writes[(101, 1138)] == 3
    assert client.read_param(1138, address=101, prop=Property.UNSAVED_VALUE_QSP) == 12.0
    assert client.read_param(1138, address=101) == 60.0  # flash value untouched
    client.write_param(1138, 20.0, address=101, flash=True)
    assert gw.flash_writes == {(101, 1138): 1}
    assert client.read_param(1138, address=101) == 20.0


def test_write_is_validated_before_anything_is_sent():
    client, gw, _ = make_client()
    with pytest.raises(ValidationError):
        client.write_param(1138, 500.0, address=101)  # above the catalog maximum (200)
    with pytest.raises(ValidationError):
        client.write_param(1552, 3, address=101)  # not an option of the enum
    with pytest.raises(ValidationError):
        client.write_param(3000, 1.0, address=101)  # an info, not a parameter... unknown as param
    assert gw.requests == []
    client.write_param(1552, "Fast", address=101)  # an option label
    assert gw.params[(101, 1552)] == (Format.LONG_ENUM, 1)
    assert gw.ram[(101, 1552)] == 4


def test_device_error_raises_with_code_and_no_retry():
    client, gw, _ = make_client()
    with pytest.raises(DeviceError) as info:
        client.read_info(3000, address=105)  # no such device
    assert info.value.code == ErrorCode.DEVICE_NOT_FOUND
    assert info.value.name == "DEVICE_NOT_FOUND"
    assert len(gw.requests) == 1
    with pytest.raises(DeviceError) as info:
        client.read_info(3001, address=101, fmt=Format.FLOAT)
    assert info.value.code == ErrorCode.OBJECT_ID_NOT_FOUND


# --- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["foreign", "wrong_object", "junk", "split"])
def test_foreign_frames_and_junk_are_skipped_and_counted(fault):
    client, gw, _ = make_client()
    gw.script.append(fault)
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert len(gw.requests) == 1
    stats = client.stats
    if fault in ("foreign", "wrong_object"):
        assert stats["unmatched_frames"] == 1
    if fault == "junk":
        assert stats["decoder_junk_bytes"] > 0


def test_answer_of_another_device_is_not_taken():
    client, gw, link = make_client(retries=0)
    other = codec.encode_response(
        Service.READ,
        ObjectType.USER_INFO,
        3000,
        Property.VALUE,
        codec.pack_value(Format.FLOAT, 99.0),
        src=102,
    )
    original_send = link.send

    def send(data):
        original_send(data)
        link.queue.append(other)  # xt2's answer for the same object arrives instead

    link.send = send
    gw.script.append("drop")
    with pytest.raises(XcomTimeout):
        client.read_info(3000, address=101)
    assert client.stats["unmatched_frames"] == 1


def test_late_answer_is_discarded_before_the_next_request():
    client, gw, link = make_client(retries=0)
    gw.script.append("drop")
    with pytest.raises(XcomTimeout):
        client.read_info(3000, address=101)
    late = codec.encode_response(
        Service.READ,
        ObjectType.USER_INFO,
        3000,
        Property.VALUE,
        codec.pack_value(Format.FLOAT, 1.0),
        src=101,
    )
    link.queue.append(late)  # the answer to the timed-out request, arriving now
    gw.add_info(101, 3000, 13.0)  # meanwhile the value changed
    assert client.read_info(3000, address=101) == 13.0
    assert client.stats["stale_frames"] == 1


# --- timeouts, retries, busy --------------------------------------------------------------


def test_timeout_retries_then_raises_with_bounded_tries():
    client, gw, _ = make_client(retries=2, timeout=0.5)
    gw.script.extend(["drop"] * 3)
    with pytest.raises(XcomTimeout):
        client.read_info(3000, address=101)
    assert len(gw.requests) == 3
    assert client.stats["timeouts"] == 3
    assert client.stats["retries"] == 2


@pytest.mark.parametrize("fault", ["drop", "corrupt", "device_timeout"])
def test_one_lost_answer_is_recovered_by_a_retry(fault):
    client, gw, _ = make_client(retries=1)
    gw.script.append(fault)
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert len(gw.requests) == 2


def test_busy_gateway_is_waited_out_without_using_retries():
    client, gw, _ = make_client(retries=0)
    gw.script.extend(["busy"] * 5)
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert len(gw.requests) == 6
    assert client.stats["busy"] == 5


def test_busy_forever_ends_with_the_busy_error():
    clock = VirtualClock()
    gw = default_gateway()
    link = FakeTransport(gw, clock)

    class Ticking:
        def __call__(self):
            clock.now += 1.0
            return clock.now

    client = XcomClient(link, clock=Ticking(), busy_delay=0.0, busy_timeout=10.0)
    client.open()
    gw.script.extend(["busy"] * 100)
    with pytest.raises(DeviceError) as info:
        client.read_info(3000, address=101)
    assert info.value.code == ErrorCode.SCOM_ERROR_GATEWAY_BUSY
    assert 2 < len(gw.requests) < 100


def test_broken_link_is_reconnected_and_the_request_retried():
    client, gw, link = make_client(retries=2)
    link.fail_next_send = 1
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert link.reconnects == 1
    assert client.stats["link_errors"] == 1


def test_link_that_stays_broken_raises_link_error():
    client, gw, link = make_client(retries=1)
    link.fail_next_send = 5
    with pytest.raises(LinkError):
        client.read_info(3000, address=101)


def test_frame_flags_of_every_answer_are_exposed():
    client, gw, _ = make_client()
    gw.frame_flags = FrameFlag.MESSAGE_PENDING | FrameFlag.SD_CARD_PRESENT
    client.read_info(3000, address=101)
    assert client.last_frame_flags == FrameFlag.MESSAGE_PENDING | FrameFlag.SD_CARD_PRESENT
    assert client.messages_pending and client.session.sd_card_present
    gw.frame_flags = FrameFlag.RESTARTED
    client.read_info(3000, address=101)
    assert client.session.restarted and not client.messages_pending


def test_raw_request_returns_the_matching_frame():
    client, gw, _ = make_client()
    frame = client.request(
        codec.encode_request(Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, dst=101)
    )
    assert frame.is_response and frame.src == 101
    assert codec.unpack_value(Format.FLOAT, frame.data) == pytest.approx(12.359375)
    with pytest.raises(ValueError):
        client.request(frame_bytes_of_response())


def frame_bytes_of_response() -> bytes:
    return codec.encode_response(
        Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, b"\0\0\0\0", src=101
    )


def test_request_matching_rules():
    req = Request(Service.READ, ObjectType.USER_INFO, 3000, Property.VALUE, dst=101)

    def answer(**over):
        fields = dict(src=101, dst=1, property_id=Property.VALUE, object_id=3000)
        fields.update(over)
        return codec.decode_frame(
            codec.encode_response(
                Service.READ,
                ObjectType.USER_INFO,
                fields["object_id"],
                fields["property_id"],
                b"\0\0\0\0",
                src=fields["src"],
                dst=fields["dst"],
            )
        )

    assert req.matches(answer())
    assert not req.matches(answer(src=102))
    assert not req.matches(answer(dst=2))
    assert not req.matches(answer(object_id=3001))
    assert not req.matches(answer(property_id=Property.VALUE_QSP))
    assert not req.matches(codec.decode_frame(req.frame))  # our own request echoed
    multicast = Request(Service.WRITE, ObjectType.PARAMETER, 1138, Property.VALUE_QSP, b"", dst=100)
    ok = codec.encode_response(
        Service.WRITE, ObjectType.PARAMETER, 1138, Property.VALUE_QSP, src=101
    )
    assert multicast.matches(codec.decode_frame(ok))
    vt = codec.encode_response(
        Service.WRITE, ObjectType.PARAMETER, 1138, Property.VALUE_QSP, src=301
    )
    assert not multicast.matches(codec.decode_frame(vt))


# --- multi-info ---------------------------------------------------------------------------


def test_read_infos_splits_into_frames_of_at_most_76():
    gw = default_gateway()
    for n in range(1, 10):
        for number in range(3000, 3020):
            gw.add_info(100 + n, number, float(number + n))
    client, gw, _ = make_client(gw)
    items = [(number, 100 + n) for n in range(1, 10) for number in range(3000, 3020)]
    assert len(items) == 180
    values = client.read_infos(items)
    assert gw.multi_info_requests == 3
    counts = [len(codec.unpack_multi_info_request(r.data)) for r in gw.requests]
    assert max(counts) <= 76 and sum(counts) == 180
    assert values == {(n, a): float(n + a - 100) for n, a in items}
    assert list(values) == items  # the request's keys, in its order


def test_read_infos_types_enums_and_matches_aggregations():
    client, gw, _ = make_client()
    values = client.read_infos([(3000, 101), (3028, 101), (7002, 601), (11000, 301)])
    assert values[(3028, 101)] == 3 and isinstance(values[(3028, 101)], int)
    assert values[(7002, 601)] == 87.5
    items = codec.unpack_multi_info_request(gw.requests[-1].data)
    assert items == [(3000, 1), (3028, 1), (7002, 1), (11000, 1)]


def test_read_infos_rejects_another_clients_multi_info_answer():
    client, gw, link = make_client()
    foreign = codec.encode_response(
        Service.READ,
        ObjectType.MULTI_INFO,
        1,
        Property.VALUE,
        codec.pack_multi_info_response(0, 0, [3000], [2], [99.0]),
        src=501,
    )
    link.queue.append(foreign)
    gw.script.append("ok")
    # The foreign answer arrives first, in the same wait: it must not be taken.
    link.queue.clear()
    original_send = link.send

    def send(data):
        original_send(data)
        link.queue.appendleft(foreign)

    link.send = send
    values = client.read_infos([(3000, 101)])
    assert values == {(3000, 101): pytest.approx(12.359375)}
    assert client.stats["unmatched_frames"] == 1


def test_read_infos_falls_back_to_single_reads_without_multi_info():
    client, gw, _ = make_client()
    gw.multi_info = False
    items = [(3000, 101), (3000, 102), (11000, 301)]
    assert client.read_infos(items) == {
        (3000, 101): 12.359375,
        (3000, 102): 12.5,
        (11000, 301): 48.0,
    }
    assert client.session.multi_info_supported is False
    before = gw.multi_info_requests
    client.read_infos(items)
    assert gw.multi_info_requests == before  # not asked again
    with pytest.raises(DeviceError):
        client.read_infos([(3000, 104)])
    assert client.read_infos([(3000, 104), (3000, 101)], on_error="skip") == {
        (3000, 101): 12.359375
    }


# --- messages, GUID, datalog field --------------------------------------------------------


def test_read_messages_walks_the_log_newest_first():
    gw = default_gateway()
    base = 1_503_571_330
    gw.messages = [(16, 105, base + i * 60) for i in range(5)]
    gw.messages[-1] = (0, 101, base + 1000)
    client, gw, _ = make_client(gw)
    msgs = client.read_messages()
    assert [m.index for m in msgs] == [0, 1, 2, 3, 4]
    assert msgs[0].number == 0 and msgs[0].text == "Battery low" and msgs[0].device == "xt1"
    assert msgs[1].text == "Fan error detected" and msgs[1].severity == "Warning"
    assert msgs[1].device == "xt5"
    assert msgs[4].time == dt.datetime(2017, 8, 24, 10, 42, 10)
    assert [m.index for m in client.read_messages(count=2)] == [0, 1]
    since = client.read_messages(since=base + 120)
    assert [m.timestamp for m in since] == [base + 1000, base + 180, base + 120]


def test_read_messages_of_an_empty_log():
    client, gw, _ = make_client()
    assert client.read_messages() == []


def test_guid_and_datalog_field():
    client, gw, _ = make_client()
    gw.guid = bytes.fromhex("3AD01B0B58C932BAEC4D3528613D7D40")  # section 6.1.5
    guid = client.read_guid()
    # One 128-bit little-endian integer (6.1.4): a valid version-4 UUID, not bytes_le's.
    assert str(guid) == "407d3d61-2835-4dec-ba32-c9580b1bd03a" and guid.version == 4
    assert guid != uuid.UUID(bytes_le=gw.guid)
    client.write_datalog_field("#STU:,Service datalog text")
    assert gw.datalog_field == b"#STU:,Service datalog text"
    with pytest.raises(ValidationError):
        client.write_datalog_field("x" * 251)


# --- file transfer ------------------------------------------------------------------------


def _csv(blocks: int) -> bytes:
    lines = [
        f"2024.06.{i // 1440 + 1:02d} {i // 60 % 24:02d}:{i % 60:02d};{i * 0.5:.2f};{i % 7}\r\n"
        for i in range(blocks * 20)
    ]
    return "".join(lines).encode()


def test_directory_and_file_download():
    client, gw, _ = make_client()
    content = _csv(10)
    gw.files = {"LG240601.CSV": content, "LG240602.CSV": b"short"}
    assert client.list_datalog_files() == ["LG240601.CSV", "LG240602.CSV"]
    assert client.download_datalog_file("LG240601.CSV") == content
    assert client.download_datalog_file("LG240602.CSV") == b"short"
    with pytest.raises(DeviceError) as info:
        client.download_datalog_file("LG990101.CSV")
    assert info.value.code == ErrorCode.FILE_OR_DIR_NOT_PRESENT


@pytest.mark.parametrize(
    "script",
    [
        ["ok", "drop_after", "ok"],  # a block's answer lost: NACK gets it again
        ["ok", "corrupt", "ok"],  # a block corrupted: NACK
        ["ok", "ok", "drop", "ok", "ok"],  # the ACK lost (handled as answer lost here)
        ["drop"],  # the START's answer lost
        ["ok", "busy", "ok"],
    ],
)
def test_download_survives_lost_and_bad_blocks(script):
    client, gw, _ = make_client()
    content = _csv(6)
    gw.files = {"LG240601.CSV": content}
    gw.script.extend(script)
    assert client.download_datalog_file("LG240601.CSV") == content


def test_download_when_the_ack_never_arrives():
    """The gateway resends the old block after our NACK: it must not be stored twice."""
    client, gw, link = make_client()
    content = _csv(4)
    gw.files = {"LG240601.CSV": content}
    original = gw.handle
    state = {"n": 0}

    def handle(request):
        frame = codec.decode_frame(request)
        state["n"] += 1
        if frame.property_id == Property.SD_ACK_CONTINUE and state["n"] == 3:
            return []  # the ACK itself is lost: the gateway never saw it
        return original(request)

    gw.handle = handle
    link.gateway = gw
    assert client.download_datalog_file("LG240601.CSV") == content


# --- scan -----------------------------------------------------------------------------------


def test_scan_finds_devices_and_firmware_without_retrying_absent_ones():
    gw = FakeGateway()
    for address in (101, 102):
        gw.add_info(address, 3130, float(1 << 8))  # 1.x
        gw.add_info(address, 3131, float((6 << 8) | 30))  # x.6.30
        gw.add_info(address, 3124, 1.0)
    gw.add_info(301, 11050, float(1 << 8))
    gw.add_info(301, 11051, float((6 << 8) | 24))
    client, gw, _ = make_client(gw, retries=2)
    devices = client.scan()
    assert [(d.address, d.family, d.firmware) for d in devices] == [
        (101, Family.XTENDER, "1.6.30"),
        (102, Family.XTENDER, "1.6.30"),
        (301, Family.VARIOTRACK, "1.6.24"),
    ]
    assert devices[0].name == "xt1" and devices[0].id_type == 1
    not_found = [r for r in gw.requests if r.dst in (103, 302, 701, 601)]
    assert len(not_found) == 4  # one request each, no retries
    assert client.stats["retries"] == 0


# --- polite mode ----------------------------------------------------------------------------


def test_polite_quiet_window_and_duty_cycle():
    policy = PolitePolicy.parse("23:50-00:20", duty_cycle=0.25)
    assert policy.quiet_remaining(dt.datetime(2024, 6, 1, 23, 55)) == 25 * 60
    assert policy.quiet_remaining(dt.datetime(2024, 6, 2, 0, 10)) == 10 * 60
    assert policy.quiet_remaining(dt.datetime(2024, 6, 2, 12, 0)) == 0
    assert policy.idle_after(1.0) == pytest.approx(3.0)
    day = PolitePolicy.parse(["10:00-11:00"])
    assert day.quiet_remaining(dt.datetime(2024, 6, 2, 10, 30)) == 30 * 60
    with pytest.raises(ValueError):
        PolitePolicy.parse("25:00-01:00")
    with pytest.raises(ValueError):
        PolitePolicy(duty_cycle=0)


def test_polite_duty_cycle_spaces_requests(monkeypatch):
    slept = []
    monkeypatch.setattr("xcomlog.engine.driving.time.sleep", lambda s: slept.append(s))
    clock = VirtualClock()
    gw = default_gateway()
    link = FakeTransport(gw, clock)
    original = link.receive

    def slow_receive(timeout):
        clock.now += 0.1  # every answer takes 100 ms
        return original(timeout)

    link.receive = slow_receive
    client = XcomClient(link, clock=clock, polite=PolitePolicy(quiet=(), duty_cycle=0.5))
    client.open()
    client.read_info(3000, address=101)
    client.read_info(3000, address=101)
    # each exchange kept the link busy 0.1 s: at a 50 % duty cycle, 0.1 s of silence follows
    assert slept and slept[-1] == pytest.approx(0.1, abs=0.02)


# --- asyncio --------------------------------------------------------------------------------


def test_async_client_shares_the_same_logic():
    async def main():
        gw = default_gateway()
        clock = VirtualClock()
        link = FakeTransport(gw, clock).as_async()
        async with AsyncXcomClient(link, clock=clock, backoff=0.0) as client:
            assert await client.read_info(3000, address=101) == pytest.approx(12.359375)
            gw.script.extend(["drop", "foreign"])
            assert await client.read_info(3000, address=102) == 12.5
            await client.write_param(1138, 15.0, address=101)
            values = await client.read_infos([(3000, 101), (3000, 102)])
            msgs = await client.read_messages()
            results = await asyncio.gather(*(client.read_info(3000, address=101) for _ in range(5)))
        assert gw.flash_writes == {} and gw.ram[(101, 1138)] == 15.0
        assert values == {(3000, 101): 12.359375, (3000, 102): 12.5}
        assert msgs == []
        assert results == [pytest.approx(12.359375)] * 5
        assert client.stats["retries"] == 1

    asyncio.run(main())


def test_download_when_acks_never_get_through_ends_with_a_timeout():
    client, gw, _ = make_client(retries=1)
    gw.files = {"LG240601.CSV": _csv(3)}
    original = gw.handle

    def handle(request):
        if codec.decode_frame(request).property_id == Property.SD_ACK_CONTINUE:
            return []  # every ACK is lost
        return original(request)

    gw.handle = handle
    with pytest.raises(XcomTimeout):
        client.download_datalog_file("LG240601.CSV")


def test_polite_quiet_window_pauses_before_the_request(monkeypatch):
    slept = []
    monkeypatch.setattr("xcomlog.engine.driving.time.sleep", lambda s: slept.append(s))
    policy = PolitePolicy.parse("00:00-23:59")
    monkeypatch.setattr(policy, "quiet_remaining", lambda now=None: 42.0)
    client, gw, _ = make_client(polite=policy)
    assert client.read_info(3000, address=101) == pytest.approx(12.359375)
    assert slept[0] == 42.0 and client.stats["polite_wait_s"] == 42.0
