"""Device types from the appendix's identification codes (xcomlog.models)."""

from __future__ import annotations

import re

import pytest
from catalog_support import BMS, BSP, RCC, VS, VT, XT
from hypothesis import given
from hypothesis import strategies as st

from xcomlog.catalog import load_catalog
from xcomlog.exceptions import ValidationError
from xcomlog.models import IDENTIFICATION_INFOS, describe_device, model_codes


@pytest.mark.parametrize(
    "family,codes,description",
    [
        # The codes as the appendix V1.6.42 prints them.
        (XT, {3124: 1.0, 3125: 8000.0, 3127: 48.0}, "XTH 8000-48"),
        (XT, {3124: 256.0, 3125: 4000.0, 3127: 48.0}, "XTM 4000-48"),
        (XT, {3124: 512.0, 3125: 1200.0, 3127: 24.0}, "XTS 1200-24"),
        (XT, {3124: 1.0}, "XTH"),
        (XT, {3124: 1.0, 3127: 12.0}, "XTH 12 V"),
        (VS, {15074: 12801.0}, "VarioString VS-120"),
        (VS, {15074: 13057.0}, "VarioString VS-70"),
        (VT, {11047: 9729.0, 11015: 1.0}, "VarioTrack VT-65"),  # 0x2601
        (VT, {11047: 9079.0, 11015: 0.0}, "VarioTrack VT-80"),  # the decimal as printed
        (VT, {11047: 9729.0}, "VarioTrack"),
        (BSP, {7034: 10241.0, 7035: 48.0}, "BSP"),
        (BMS, {7067: 2.0}, "Xcom-CAN BMS (PYLON)"),
        (BMS, {}, "Xcom-CAN BMS"),
        (RCC, {}, "RCC / Xcom-232i"),
    ],
)
def test_describe_device_from_appendix_codes(family, codes, description):
    device = describe_device(family, codes)
    assert device.description == description and device.known
    assert device.family is family and dict(device.codes) == codes


def test_xtender_fields_and_strings():
    device = describe_device("xt", {3124: 256.0, 3125: 3500.0, 3127: 24.0})
    assert (device.series, device.power_va, device.battery_voltage) == ("XTM", 3500, 24)
    assert str(device) == "XTM 3500-24"


@pytest.mark.parametrize(
    "family,codes,text",
    [
        (XT, {3124: 7.0, 3125: 8000.0}, "Xtender (ID type 7) 8000"),
        (VS, {15074: 1.0}, "VarioString (ID type 1)"),
        (VT, {11047: 5.0}, "VarioTrack (ID type 5)"),
        (BSP, {7034: 3.0}, "BSP (ID type 3)"),
    ],
)
def test_unknown_codes_are_said_with_their_value(family, codes, text):
    device = describe_device(family, codes)
    assert device.description == text and not device.known


def test_nan_and_missing_codes():
    assert describe_device(XT, {3124: float("nan")}).description == "Xtender"
    assert describe_device(XT, {}).description == "Xtender"


def test_identification_infos_are_catalog_infos():
    cat = load_catalog()
    for family, numbers in IDENTIFICATION_INFOS.items():
        for number in numbers:
            dp = cat.get(number, family=family)
            assert dp.kind == "info"
    # the appendix's text for the codes we decode
    assert "XTH family = 1, XTM family = 256 et XTS family = 512" in cat.get(3124).description
    assert "VS120 = 12801d (0x3201), VS70 = 13057d (0x3301)" in cat.get(15074).description
    assert "10241d (0x2801)" in cat.get(7034).description
    assert "(0x2601)" in cat.get(11047).description
    assert cat.get(7067, family="bms").options == {0: "OTHERS", 1: "BYD", 2: "PYLON", 3: "WECO"}
    assert cat.get(11015).options == {0: "VT-80", 1: "VT-65", 2: "VT-40", 3: "VT-HV"}


MODELS = [
    "XTH 8000-48",
    "XTH 6000-48",
    "XTM 4000-48",
    "XTM 2400-24",
    "XTS 900-12",
    "VT-80",
    "VT-65",
    "VT-40",
    "VT-HV",
    "VS-120",
    "VS-70",
    "Xcom-CAN BMS",
    "Xcom-CAN BMS BYD",
]


@given(model=st.sampled_from(MODELS))
def test_model_codes_describe_back_to_the_model(model):
    m = re.search(r"-(12|24|48)$", model)
    volts = int(m.group(1)) if m else 24
    family, codes = model_codes(model, volts)
    device = describe_device(family, codes)
    text = model.replace("Xcom-CAN BMS BYD", "Xcom-CAN BMS (BYD)")
    assert device.description.endswith(text)
    if family is not BMS:
        assert device.battery_voltage == volts


def test_bsp_gateway_and_bad_models():
    assert model_codes("BSP 500") == (BSP, {7034: 10241.0, 7035: 48.0})
    assert model_codes("Xcom-LAN") == (RCC, {})
    with pytest.raises(ValidationError, match="unknown device model 'XTX 1'"):
        model_codes("XTX 1")
    with pytest.raises(ValidationError, match="battery maker must be one of"):
        model_codes("Xcom-CAN BMS ACME")
    with pytest.raises(ValidationError, match="24 V Xtender, the installation is 48 V"):
        model_codes("XTM 2400-24", 48)
