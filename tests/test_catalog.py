"""The datapoint catalog API: lookups, spot checks against the appendix, decode, validate."""

from __future__ import annotations

import math
import pickle
import struct

import pytest
from catalog_support import BMS, BSP, RCC, VS, VT, XT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xcomlog.catalog import (
    DATA_DIR,
    Catalog,
    Datapoint,
    MessageInfo,
    load_catalog,
    read_catalog,
)
from xcomlog.exceptions import CatalogError, ValidationError, XcomError
from xcomlog.protocol import AccessLevel, Format, ObjectType


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


# --- spot checks: values read by hand from the appendix V1.6.42 -----------------------

# (family, number, kind, name, unit, format, default, minimum, maximum, increment, level)
SPOT_VALUES = [
    (XT, 1138, "parameter", "Battery charge current", "Adc", Format.FLOAT, 60, 0, 200, 1, "Basic"),
    (
        XT,
        1107,
        "parameter",
        "Maximum current of AC source (Input limit)",
        "Aac",
        Format.FLOAT,
        32,
        2,
        50,
        1,
        "Basic",
    ),
    (
        XT,
        1139,
        "parameter",
        "Temperature compensation",
        "mV/°C/cell",
        Format.FLOAT,
        -3,
        -8,
        0,
        1,
        "Expert",
    ),
    (
        XT,
        1206,
        "parameter",
        "Start hour (AUX 1)",
        "Minutes",
        Format.INT32,
        420,
        0,
        1440,
        1,
        "Expert",
    ),
    (
        XT,
        1432,
        "parameter",
        "Absolute max limit for input voltage",
        "Vac",
        Format.FLOAT,
        270,
        235,
        290,
        1,
        "Installer",
    ),
    (
        XT,
        1298,
        "parameter",
        "Increment step of the adaptive low voltage",
        "Vdc",
        Format.FLOAT,
        0.5,
        0,
        1.4,
        0.01,
        "Expert",
    ),
    (XT, 3000, "info", "Battery voltage", "V", Format.FLOAT, None, None, None, None, ""),
    (XT, 3136, "info", "Output active power", "kW", Format.FLOAT, None, None, None, None, ""),
    (RCC, 5002, "parameter", "Date", "Seconds", Format.INT32, 0, 0, 0, 1, "Basic"),
    (
        RCC,
        5009,
        "parameter",
        "Backlight switch off after",
        "sec",
        Format.FLOAT,
        120,
        5,
        120,
        5,
        "Basic",
    ),
    (BSP, 6001, "parameter", "Nominal capacity", "Ah", Format.FLOAT, 110, 20, 20000, 10, "Basic"),
    (
        BSP,
        6023,
        "parameter",
        "Peukert's exponent",
        "",
        Format.FLOAT,
        1.2,
        1,
        1.5,
        0.0100098,
        "Expert",
    ),
    (BSP, 7004, "info", "Remaining autonomy", "minutes", Format.FLOAT, None, None, None, None, ""),
    (
        BMS,
        6070,
        "parameter",
        "SOC level under which battery discharge is stopped",
        "%",
        Format.FLOAT,
        15,
        0,
        100,
        1,
        "Expert",
    ),
    (
        BMS,
        6100,
        "parameter",
        "Delays for forcing activation of the minigrid genset",
        "Minutes",
        Format.INT32,
        1080,
        0,
        1440,
        1,
        "Installer",
    ),
    (
        BMS,
        7055,
        "info",
        "Nominal or remaining battery capacity (see battery documentation)",
        "Ah",
        Format.FLOAT,
        None,
        None,
        None,
        None,
        "",
    ),
    (VT, 10002, "parameter", "Battery charge current", "Adc", Format.FLOAT, 80, 0, 80, 2, "Expert"),
    (
        VT,
        10334,
        "parameter",
        "Battery undervoltage",
        "Vdc",
        Format.FLOAT,
        40,
        34,
        68.2,
        0.1,
        "Expert",
    ),
    (
        VT,
        11004,
        "info",
        "Power of the PV generator",
        "kW",
        Format.FLOAT,
        None,
        None,
        None,
        None,
        "",
    ),
    (
        VS,
        14001,
        "parameter",
        "Battery charge current (VS-120)",
        "Adc",
        Format.FLOAT,
        120,
        0,
        120,
        2,
        "Expert",
    ),
    (
        VS,
        14045,
        "parameter",
        "Ratio of PV open circuit voltage",
        "",
        Format.FLOAT,
        0.7,
        0.5,
        1,
        0.010009766,
        "Expert",
    ),
    (VS, 15010, "info", "PV power", "kW", Format.FLOAT, None, None, None, None, ""),
]


@pytest.mark.parametrize(
    "family,number,kind,name,unit,fmt,default,minimum,maximum,increment,level",
    SPOT_VALUES,
    ids=[f"{row[0].value}{row[1]}" for row in SPOT_VALUES],
)
def test_spot_values(
    cat, family, number, kind, name, unit, fmt, default, minimum, maximum, increment, level
):
    dp = cat.get(number, family=family)
    assert (dp.family, dp.number, dp.kind, dp.name) == (family, number, kind, name)
    assert dp.unit == unit
    assert dp.format is fmt
    assert dp.default == default
    assert dp.minimum == minimum
    assert dp.maximum == maximum
    assert dp.increment == increment
    assert dp.level == level


# (family, number, format, options that must be present, default)
SPOT_OPTIONS = [
    (XT, 1126, Format.BOOL, {0: "No", 1: "Yes"}, 1),
    (XT, 1552, Format.LONG_ENUM, {1: "Slow", 2: "Tolerant", 4: "Fast"}, 2),
    (
        XT,
        1202,
        Format.LONG_ENUM,
        {1: "Automatic", 2: "Reversed automatic", 4: "Manual ON", 8: "Manual OFF"},
        1,
    ),
    (XT, 1497, Format.LONG_ENUM, {0: "Any (Function OR)", 1: "All (Function AND)"}, 0),
    (
        XT,
        3010,
        Format.SHORT_ENUM,
        {0: "Invalid value", 1: "Bulk", 4: "Floating", 8: "Forming"},
        None,
    ),
    (
        XT,
        3028,
        Format.SHORT_ENUM,
        {0: "Invalid value", 1: "Inverter", 2: "Charger", 3: "Boost", 4: "Injection"},
        None,
    ),
    (RCC, 5101, Format.LONG_ENUM, {1: "Automatic", 2: "Yes", 4: "No"}, 1),
    (RCC, 5038, Format.LONG_ENUM, {1: "English", 2: "French", 64: "Italian", 128: "Slovak"}, 2),
    (RCC, 5032, Format.LONG_ENUM, {1: "Automatic", 2: ";", 4: ","}, 1),
    (BSP, 6057, Format.LONG_ENUM, {1: "Automatic", 2: "12V", 4: "24V", 8: "48V"}, 1),
    (BMS, 7068, Format.SHORT_ENUM, {0: "UNK. SOC", 9: "FULL", 10: "NORMAL"}, None),
    (BMS, 7067, Format.SHORT_ENUM, {0: "OTHERS", 1: "BYD", 2: "PYLON", 3: "WECO"}, None),
    (VT, 10001, Format.LONG_ENUM, {1: "Automatic", 2: "12V", 4: "24V", 8: "48V"}, 1),
    (VT, 11016, Format.SHORT_ENUM, {0: "Night", 9: "Charge V", 12: "Ch. Ibsp"}, None),
    (
        VS,
        14040,
        Format.LONG_ENUM,
        {1: "No control", 2: "Bat+ grounded", 4: "Bat- grounded", 8: "Bat floating"},
        1,
    ),
    (VS, 15049, Format.SHORT_ENUM, {0: "None", 14: "Cabling", 15: "Other"}, None),
]


@pytest.mark.parametrize(
    "family,number,fmt,options,default",
    SPOT_OPTIONS,
    ids=[f"{row[0].value}{row[1]}" for row in SPOT_OPTIONS],
)
def test_spot_options(cat, family, number, fmt, options, default):
    dp = cat.get(number, family=family)
    assert dp.format is fmt
    for key, label in options.items():
        assert dp.options[key] == label
        assert cat.label(dp, key) == label
    assert dp.default == default


def test_enum_options_are_complete(cat):
    # Counted in the appendix: 3010 lists 0-8, 15049 lists 0-15, 5038 eight languages.
    assert sorted(cat.get(3010).options) == list(range(9))
    assert sorted(cat.get(15049).options) == list(range(16))
    assert sorted(cat.get(5038).options) == [1, 2, 4, 8, 16, 32, 64, 128]


def test_menus_signals_and_special_rows(cat):
    menu = cat.get(1100, family=XT)
    assert (menu.kind, menu.only_level, menu.format, menu.name) == (
        "menu",
        True,
        None,
        "BASIC SETTINGS",
    )
    assert not menu.is_readable and not menu.is_writable
    signal = cat.get(1395)
    assert signal.is_signal and signal.format is Format.INT32 and signal.default is None
    assert signal.name == "Restore default settings"
    day = cat.get(1205)
    assert (
        day.bit_field and day.format is Format.LONG_ENUM and (day.minimum, day.maximum) == (0, 127)
    )
    level = cat.get(5012)  # "Not supported" format, view-only
    assert level.kind == "parameter" and level.format is None and level.level == "View only"
    assert level.format_text == "Not supported"
    assert cat.get(1206).default_text == "420=07:00"


def test_120v_variants(cat):
    variants = {dp.number for dp in cat.datapoints(family=XT) if dp.has_120v_variant}
    assert variants == {1286, 1560, 1309, 1433, 1199, 1200, 1432}
    dp = cat.get(1286)
    assert (dp.default, dp.minimum, dp.maximum) == (230, 110, 280)
    assert (dp.default_120v, dp.min_120v, dp.max_120v) == (120, 55, 140)
    assert cat.get(1432).min_120v == 117.5
    assert cat.validate(dp, 60, variant_120v=True) == 60.0
    with pytest.raises(ValidationError, match="below the minimum 110"):
        cat.validate(dp, 60)
    with pytest.raises(ValidationError, match="above the maximum 140"):
        cat.validate(dp, 230, variant_120v=True)


def test_menu_tree(cat):
    dp = cat.get(1191)
    assert [m.number for m in cat.path(dp)] == [1137, 1568, 1531]
    # Listed under BASIC SETTINGS too, but its own menu is the main parent.
    assert cat.get(1138).parent == 1137 and cat.get(1138).other_parents == (1100,)
    assert cat.get(1107, family=XT).parent == 1197
    assert cat.get(10002).parent == 10003
    assert cat.get(6070, family=BMS).parent == 6083
    assert cat.get(6103, family=BMS).parent == 6096
    top = [dp.number for dp in cat.datapoints(family=XT, kind="menu") if dp.parent is None]
    assert top[:4] == [1100, 1137, 1186, 1197]
    assert 1138 in [c.number for c in cat.children(cat.get(1100))]
    for dp in cat:
        for parent in (dp.parent, *dp.other_parents):
            if parent is not None:
                assert cat.get(parent, family=dp.family).kind == "menu", dp
        if dp.kind == "info":
            assert dp.parent is None


# --- lookups -----------------------------------------------------------------------------


def test_loaded_once(cat):
    assert load_catalog() is cat
    assert len(cat) == len(list(cat)) > 1300
    assert cat.version.startswith("V1.6")


def test_get_ambiguous_and_family(cat):
    with pytest.raises(CatalogError, match="ambiguous") as info:
        cat.get(7002)
    assert "bsp" in str(info.value) and "bms" in str(info.value)
    assert isinstance(info.value, LookupError)
    assert cat.get(7002, family=BSP).family is BSP
    assert cat.get(7002, family="bms").family is BMS
    assert cat.get("3000").number == 3000
    assert {dp.family for dp in cat.find(7002)} == {BSP, BMS}
    assert cat.find(3000, family=VT) == []
    assert cat.families(6004) == [BSP, BMS]
    assert (BSP, 7002) in cat and 3000 in cat and 99999 not in cat


@pytest.mark.parametrize("bad", [99999, -1, "abc", None])
def test_get_unknown(cat, bad):
    with pytest.raises(CatalogError):
        cat.get(bad)


def test_get_wrong_family_names_the_right_one(cat):
    with pytest.raises(CatalogError, match="exists for xt"):
        cat.get(3000, family=VT)
    with pytest.raises(CatalogError, match="unknown family"):
        cat.get(3000, family="toaster")


def test_object_type_from_catalog_not_range(cat):
    assert cat.object_type(3000) is ObjectType.USER_INFO
    assert cat.object_type(1138) is ObjectType.PARAMETER
    assert cat.object_type(10002) is ObjectType.PARAMETER  # VarioTrack parameter above 10000
    assert cat.object_type(14001) is ObjectType.PARAMETER
    assert cat.object_type(11004) is ObjectType.USER_INFO
    assert cat.object_type(7002) is ObjectType.USER_INFO  # BSP and BMS agree
    assert cat.object_type(6004) is ObjectType.PARAMETER
    with pytest.raises(CatalogError):
        cat.object_type(12345)
    for dp in cat:
        expected = ObjectType.USER_INFO if dp.kind == "info" else ObjectType.PARAMETER
        assert cat.object_type(dp.number, family=dp.family) is expected


def test_datapoints_filters(cat):
    infos = cat.datapoints(family=VS, kind="info")
    assert infos and all(dp.family is VS and dp.kind == "info" for dp in infos)
    assert len(cat.datapoints(kind="parameter")) + len(cat.datapoints(kind="info")) + len(
        cat.datapoints(kind="menu")
    ) == len(cat)
    assert cat.datapoints(family=RCC, kind="info") == []
    with pytest.raises(CatalogError):
        cat.datapoints(kind="value")


def test_datapoint_record(cat):
    dp = cat.get(3000)
    assert dp.key == (XT, 3000)
    assert hash(dp) == hash(cat.get(3000))
    assert str(dp) == "xt 3000 Battery voltage [V]"
    assert cat.get(1138).access_level is AccessLevel.BASIC
    assert cat.get(1287).access_level is AccessLevel.INSTALLER
    assert dp.access_level is None
    with pytest.raises(AttributeError):
        dp.number = 1  # type: ignore[misc]
    enum = cat.get(1552)
    copy = pickle.loads(pickle.dumps(enum))  # loaded rows behave like constructed ones
    assert copy == enum and copy.options == enum.options and copy.format is Format.LONG_ENUM


def test_resolve(cat):
    assert cat.resolve("xt:3000").number == 3000
    assert cat.resolve("bms 7002").family is BMS
    assert cat.resolve("Low Voltage Disconect").number == 3008
    with pytest.raises(CatalogError, match="several"):
        cat.resolve("Battery voltage")
    with pytest.raises(CatalogError, match="did you mean"):
        cat.resolve("Batery charge curent")


# --- search ------------------------------------------------------------------------------


def test_search_exact_first(cat):
    found = cat.search("battery voltage", limit=20)
    assert found[0].number == 3000
    exact = {(dp.family, dp.number) for dp in found[:5]}
    assert exact == {(XT, 3000), (BSP, 7000), (BMS, 7000), (VT, 11000), (VS, 15000)}
    assert all("battery voltage" in dp.name.lower() for dp in found[:10])


def test_search_fuzzy_and_filters(cat):
    assert cat.search("batery voltge", limit=3)[0].name == "Battery voltage"
    assert cat.search("SOC", limit=1)[0].short_name == "SOC"
    found = cat.search("battery voltage", family="vs", kind="info")
    assert found and all(dp.family is VS and dp.kind == "info" for dp in found)
    assert len(cat.search("voltage", limit=3)) == 3
    assert cat.search("   ") == []
    assert cat.search("zzzzqqqq") == []


# --- decode and label --------------------------------------------------------------------


def test_decode_every_readable_datapoint(cat, codec):
    samples = {
        Format.BOOL: True,
        Format.SHORT_ENUM: 3,
        Format.LONG_ENUM: 8,
        Format.INT32: -5,
        Format.FLOAT: 52.5,
    }
    count = 0
    for dp in cat:
        if not dp.is_readable:
            continue
        data = codec.pack_value(dp.format, samples[dp.format])
        assert cat.decode(dp, data) == samples[dp.format]
        count += 1
    assert count > 1200


def test_decode_enum_info_sent_as_float(cat):
    dp = cat.get(3010)
    assert cat.decode(dp, struct.pack("<H", 4)) == 4
    assert cat.decode(dp, struct.pack("<f", 4.0)) == 4
    assert cat.label(dp, cat.decode(dp, struct.pack("<f", 4.0))) == "Floating"


def test_decode_refuses(cat):
    with pytest.raises(CatalogError):
        cat.decode(cat.get(1100), b"\0\0\0\0")
    with pytest.raises(XcomError):
        cat.decode(cat.get(3000), b"\0\0")


def test_label(cat):
    assert cat.label(1126, True) == "Yes"
    assert cat.label(1126, 0) == "No"
    assert cat.label(3010, 4.0) == "Floating"
    assert cat.label(3010, 99) is None
    assert cat.label(3010, 4.5) is None
    assert cat.label(3010, math.nan) is None
    assert cat.label(3000, 1) is None
    assert cat.format_value(3010, 4) == "Floating (4)"
    assert cat.format_value(3000, 52.5) == "52.5 V"


# --- validate ----------------------------------------------------------------------------


def test_validate_accepts_and_normalizes(cat):
    assert cat.validate(1138, 30) == 30.0 and isinstance(cat.validate(1138, 30), float)
    assert cat.validate(1138, "45.5") == 45.5
    assert cat.validate(1126, "Yes") is True
    assert cat.validate(1126, 0) is False
    assert cat.validate(1126, "off") is False
    assert cat.validate(1552, "Fast") == 4
    assert cat.validate(1552, 2.0) == 2
    assert cat.validate(1206, 821) == 821
    assert cat.validate(1205, 0b1010101) == 85  # bit field: any value in range
    assert cat.validate(1395, 1) == 1  # signal
    assert cat.validate(5002, 1_700_000_000) == 1_700_000_000  # no real range given


@pytest.mark.parametrize(
    "number,value,message",
    [
        (1138, 200.5, "above the maximum 200"),
        (1138, -1, "below the minimum 0"),
        (1138, "abc", "not a number"),
        (1138, math.inf, "not a finite number"),
        (1126, 2, "0/1"),
        (1552, 3, "not an option"),
        (1552, "Medium", "not a number"),
        (1206, 1441, "above the maximum 1440"),
        (1206, 1.5, "integer"),
        (1205, 128, "above the maximum 127"),
        (1395, 0, "signal"),
        (3000, 50, "read-only"),
        (1100, 1, "menu"),
        (5012, 16, "Not supported"),
    ],
)
def test_validate_refuses(cat, number, value, message):
    dp = cat.get(number, family=XT) if number < 5000 else cat.get(number)
    with pytest.raises(ValidationError, match=message):
        cat.validate(dp, value)


def test_every_default_is_valid(cat):
    """The appendix's own defaults pass validation: format, options and range agree."""
    checked = 0
    for dp in cat.datapoints(kind="parameter"):
        if not dp.is_writable or dp.is_signal or dp.default is None:
            continue
        value = cat.validate(dp, dp.default)
        assert value == dp.default, dp
        if dp.has_120v_variant:
            assert cat.validate(dp, dp.default_120v, variant_120v=True) == dp.default_120v
        checked += 1
    assert checked > 750


FLOAT_PARAMS = [
    dp
    for dp in load_catalog().datapoints(kind="parameter")
    if dp.format is Format.FLOAT and dp.minimum is not None and dp.minimum < dp.maximum
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(FLOAT_PARAMS) - 1),
    fraction=st.floats(min_value=-1.0, max_value=2.0, allow_nan=False),
)
def test_float_range_property(index, fraction):
    cat = load_catalog()
    dp = FLOAT_PARAMS[index]
    value = dp.minimum + fraction * (dp.maximum - dp.minimum)
    inside = dp.minimum <= value <= dp.maximum
    if inside:
        assert cat.validate(dp, value) == value
    else:
        # validate allows float32 round trips: 1e-6 of the range's magnitude (3000 -> 0.003)
        margin = max(1e-3, 2e-6 * max(1.0, abs(dp.minimum), abs(dp.maximum)))
        if dp.minimum - margin <= value <= dp.maximum + margin:
            return
        with pytest.raises(ValidationError):
            cat.validate(dp, value)


# --- messages and addresses --------------------------------------------------------------


def test_messages(cat):
    assert len(cat.messages) == 189
    assert cat.messages[16] == MessageInfo(16, "Fan error detected", "Warning")
    assert cat.message(8) == MessageInfo(8, "Inverter overload SC", "Halted")
    assert cat.message(50).severity == "Error"
    assert cat.message(3) == MessageInfo(3, "AC-In synchronization in progress", "")
    assert cat.message(235).text == "Communication lost with Xcom-CAN"
    assert cat.message(21).text == "Transfer not authorized, AC-Out current is higher {1107}"
    assert {m.severity for m in cat.messages.values()} == {"", "Warning", "Halted", "Error"}
    assert cat.message_text(16) == "Warning (016): Fan error detected"
    assert "unknown" in cat.message_text(66)
    with pytest.raises(CatalogError):
        cat.message(66)


def test_addresses(cat):
    assert cat.addresses(VS, 3) == [701, 702, 703]
    assert cat.addresses("xt") == list(range(101, 110))
    assert cat.addresses(BSP, 1) == [601]
    assert cat.addresses(RCC, 1) == [501]
    assert cat.addresses_for(15000, 2) == [701, 702]
    assert cat.addresses_for(cat.get(11000), 1) == [301]
    assert cat.addresses_for(7002, 1, family=BMS) == [601]
    assert cat.family_addresses(VT) == (300, 301, 315)
    with pytest.raises(ValidationError, match="0..15"):
        cat.addresses(VS, 16)
    assert cat.at(3000, 101).family is XT
    assert cat.at(11000, 300).family is VT
    with pytest.raises(CatalogError, match="ambiguous"):
        cat.at(7002, 601)
    with pytest.raises(CatalogError, match="no datapoint 3000"):
        cat.at(3000, 701)


# --- reading data files ------------------------------------------------------------------


def test_read_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match="no catalog data"):
        read_catalog(tmp_path)
    lines = (DATA_DIR / "datapoints.csv").read_text(encoding="utf-8").splitlines()
    broken = lines[:5] + [lines[5].replace("xt,", "zz,", 1)]
    (tmp_path / "datapoints.csv").write_text("\n".join(broken) + "\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"datapoints.csv:6"):
        read_catalog(tmp_path)
    (tmp_path / "datapoints.csv").write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    small = read_catalog(tmp_path)
    assert len(small) == 4 and small.messages == {}


def test_catalog_rejects_duplicates():
    dp = Datapoint(XT, "info", 1, None, "", "x", "", "", Format.FLOAT, "FLOAT")
    with pytest.raises(CatalogError, match="twice"):
        Catalog([dp, dp])
