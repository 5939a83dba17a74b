"""The polling plan: user infos packed into multi-info frames, parameters as single reads."""

from __future__ import annotations

import pytest

from xcomlog import codec
from xcomlog.catalog import load_catalog
from xcomlog.exceptions import ConfigError
from xcomlog.logger.config import ESSENTIAL_INFOS, config_from_dict, parse_device_spec
from xcomlog.logger.plan import INFO, MULTI, PARAM, compile_plan, multi_info_wire_bytes
from xcomlog.protocol import (
    ADDRESS_GATEWAY,
    MULTI_INFO_MAX_ITEMS,
    Family,
    ObjectType,
    Property,
    Service,
    device_index,
)

DEVICES = [parse_device_spec(d) for d in ("xt1", "xt2", "vt1", "vs1", "vs2", "bsp")]


def site(groups, **extra):
    table = {"site": [{"name": "s", "link": "tcp://127.0.0.1:1", "group": groups, **extra}]}
    return config_from_dict(table).sites[0]


def one_group(points, devices=DEVICES, **group):
    cfg = site([{"name": "g", "interval": 1, "points": points, **group}])
    return compile_plan(cfg, devices, load_catalog())


def decoded_items(request):
    frame = codec.decode_frame(request.frame)
    assert frame.service_id == Service.READ
    assert frame.object_type == ObjectType.MULTI_INFO and frame.dst == ADDRESS_GATEWAY
    return codec.unpack_multi_info_request(frame.data)


def test_essential_packs_every_device_into_multi_info():
    plan = one_group(["essential"])
    (group,) = plan.groups
    cat = load_catalog()
    expected = set()
    for device in DEVICES:
        for number in ESSENTIAL_INFOS[device.family]:
            if any(dp.family is device.family for dp in cat.find(number)):
                expected.add((device.address, number))
    got = {(p.address, p.number) for r in group.requests for p in r.points}
    assert got == expected
    assert all(r.kind == MULTI for r in group.requests)
    for request in group.requests:
        items = decoded_items(request)
        assert len(items) <= MULTI_INFO_MAX_ITEMS
        # the aggregation selects the device: its index within the family
        assert items == [(p.number, device_index(p.address)) for p in request.points]
        assert request.ids.tolist() == [i for i, _ in items]
        assert request.addresses.tolist() == [p.address for p in request.points]


def test_all_infos_split_evenly_at_76():
    plan = one_group(["all-infos"], devices=DEVICES[:2])
    (group,) = plan.groups
    cat = load_catalog()
    total = 2 * len(cat.datapoints(family=Family.XTENDER, kind="info"))
    assert group.values == total
    sizes = [r.values for r in group.requests]
    assert sum(sizes) == total and max(sizes) <= MULTI_INFO_MAX_ITEMS
    assert len(sizes) == -(-total // MULTI_INFO_MAX_ITEMS)  # fewest frames
    assert max(sizes) - min(sizes) <= 1  # filled evenly
    assert group.wire_bytes == sum(multi_info_wire_bytes(n) for n in sizes)


def test_parameters_are_single_reads_of_value_qsp():
    plan = one_group(["xt1:1107", "bsp:6001"])
    requests = plan.groups[0].requests
    assert [r.kind for r in requests] == [PARAM, PARAM]
    for request, (address, number) in zip(requests, [(101, 1107), (601, 6001)], strict=True):
        frame = codec.decode_frame(request.frame)
        assert (frame.dst, frame.object_type, frame.object_id) == (
            address,
            ObjectType.PARAMETER,
            number,
        )
        assert frame.property_id == Property.VALUE_QSP


def test_unsaved_parameter_property():
    cfg = site([{"name": "g", "points": ["xt1:1107"]}], parameter_property="unsaved")
    plan = compile_plan(cfg, DEVICES, load_catalog())
    frame = codec.decode_frame(plan.groups[0].requests[0].frame)
    assert frame.property_id == Property.UNSAVED_VALUE_QSP


def test_mixed_group_and_src_address():
    cfg = site([{"name": "g", "points": ["essential", "xt:1107"]}], src=7)
    plan = compile_plan(cfg, DEVICES, load_catalog())
    kinds = [r.kind for r in plan.groups[0].requests]
    assert kinds.count(PARAM) == 2 and MULTI in kinds
    for request in plan.groups[0].requests:
        assert codec.decode_frame(request.frame).src == 7


def test_single_reads_when_multi_info_is_missing():
    plan = one_group(["essential"])
    group = plan.groups[0]
    values = group.values
    group.infos_without_multi()
    assert group.values == values
    assert all(r.kind == INFO for r in group.requests)
    for request in group.requests:
        frame = codec.decode_frame(request.frame)
        point = request.points[0]
        assert (frame.dst, frame.object_type, frame.object_id) == (
            point.address,
            ObjectType.USER_INFO,
            point.number,
        )
        assert frame.property_id == Property.VALUE


def test_frames_encoded_once_and_deterministic():
    a = one_group(["all-infos"])
    b = one_group(["all-infos"])
    assert [r.frame for r in a.groups[0].requests] == [r.frame for r in b.groups[0].requests]
    assert all(isinstance(r.frame, bytes) for r in a.groups[0].requests)


def test_names_and_device_scopes():
    plan = one_group(
        ["Battery voltage"], devices=[parse_device_spec("xt1"), parse_device_spec("bsp")]
    )
    assert {(p.address, p.number) for p in plan.points.values()} == {(101, 3000), (601, 7000)}
    plan = one_group(["xt2:3000", "vs:Battery voltage"])
    assert {(p.address, p.number) for p in plan.points.values()} == {
        (102, 3000),
        (701, 15000),
        (702, 15000),
    }
    cfg = site([{"name": "g", "points": ["essential"], "devices": ["vt", "xt2"]}])
    plan = compile_plan(cfg, DEVICES, load_catalog())
    assert {p.address for p in plan.points.values()} == {102, 301}


def test_duplicates_dropped_and_labels():
    plan = one_group(["essential", 3000, "xt1:Battery voltage"])
    keys = [(p.address, p.number) for r in plan.groups[0].requests for p in r.points]
    assert len(keys) == len(set(keys))
    labels = {(row[0], row[1]): row for row in plan.labels}
    assert labels[(101, 3000)][2:] == ("Battery voltage", "V", "xt", "info")
    assert labels[(601, 7002)][2:5] == ("State of Charge", "%", "bsp")


def test_bms_and_bsp_share_an_address():
    plan = one_group(["7002"], devices=[parse_device_spec("bms")])
    (point,) = plan.points.values()
    assert (point.address, point.family) == (601, Family.XCOM_CAN_BMS)


def test_unknown_points_are_errors():
    with pytest.raises(ConfigError, match="no user info or parameter 2999"):
        one_group([2999])
    with pytest.raises(ConfigError, match="no datapoint named 'Batery voltag'.*did you mean"):
        one_group(["Batery voltag"])


def test_points_for_missing_families_are_skipped_with_a_warning():
    plan = one_group(["essential", "vt:11004"], devices=[parse_device_spec("xt1")])
    assert all(p.address == 101 for p in plan.points.values())
    plan = one_group(["essential", 11004], devices=[parse_device_spec("xt1")])
    assert any("11004" in w for w in plan.warnings)
    with pytest.raises(ConfigError, match="nothing to log"):
        one_group([11004], devices=[parse_device_spec("xt1")])


def test_no_devices():
    cfg = site([{"name": "g", "points": ["essential"]}])
    with pytest.raises(ConfigError, match="no devices"):
        compile_plan(cfg, [], load_catalog())


def test_message_request():
    plan = one_group(["essential"])
    request = plan.message_request(0)
    assert plan.message_request(0) is request  # encoded once
    frame = codec.decode_frame(request.frame)
    assert (frame.dst, frame.object_type, frame.object_id) == (
        ADDRESS_GATEWAY,
        ObjectType.MESSAGE,
        0,
    )
