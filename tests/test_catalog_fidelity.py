"""Field errata, 12/24/48 V systems and quantities in the catalog (issue 10 and 12)."""

from __future__ import annotations

import pytest
from catalog_support import load_generator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xcomlog.catalog import (
    DATA_DIR,
    STATISTICS,
    load_catalog,
    read_corrections,
    scale_to_system_voltage,
)
from xcomlog.cli import main
from xcomlog.exceptions import CatalogError, ValidationError
from xcomlog.protocol import Family


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


@pytest.fixture(scope="module")
def gen():
    return load_generator()


# --- field errata ----------------------------------------------------------------------


def test_bms_minigrid_soc_is_7072_with_its_evidence(cat):
    dp = cat.get(7072, family="bms")
    assert dp.name == "Minigrid State of Charge" and dp.unit == "%"
    assert not cat.find(7022, family="bms")  # the appendix's typo is gone
    (c,) = cat.corrections(dp)
    assert (c.family, c.number, c.field, c.appendix, c.value) == (
        Family.XCOM_CAN_BMS,
        7022,
        "number",
        7022,
        7072,
    )
    assert "7072" in c.evidence and c.source
    assert cat.corrections(cat.get(7002, family="bms")) == []
    assert cat.meta.get("corrections") == len(cat.corrections())


def test_catalog_show_prints_the_erratum(capsys):
    assert main(["catalog", "show", "7072"]) == 0
    out = capsys.readouterr().out
    assert "erratum       number 7072 (the appendix V1.6.42 says 7022)" in out
    assert "evidence" in out and "out of sequence" in out


def test_every_correction_in_the_file_is_applied(cat):
    corrections = read_corrections(DATA_DIR / "corrections.toml")
    assert corrections == cat.corrections()
    for c in corrections:
        number = int(c.value) if c.field == "number" else c.number
        dp = cat.get(number, family=c.family)
        assert getattr(dp, c.field) == c.value


def rows(gen):
    """Parsed datapoints as the generator's build() makes them (no PDF needed)."""
    info = {
        "kind": "info",
        "level": "",
        "short_name": "",
        "rcc_unit": "",
        "format": "FLOAT",
        "format_text": "FLOAT",
        "default": None,
        "minimum": None,
        "maximum": None,
        "increment": None,
        "options": {},
        "description": "",
    }
    return [
        {**info, "family": "bms", "number": 7071, "name": "State of Charge for end of charge"},
        {**info, "family": "bms", "number": 7022, "name": "Minigrid State of Charge"},
        {**info, "family": "bsp", "number": 7002, "name": "State of Charge", "unit": "%"},
        {**info, "family": "bsp", "number": 7032, "name": "State of Charge (minute avg)"},
        {**info, "family": "vt", "number": 11004, "name": "Power of the PV generator"},
        {**info, "family": "vt", "number": 11043, "name": "PV power (minute avg)"},
        {**info, "family": "vs", "number": 15011, "name": "PV1 power"},
        {**info, "family": "vs", "number": 15056, "name": "Battery voltage (minute min)"},
    ]


def test_generator_applies_corrections_and_quantities(gen, tmp_path):
    corrections = tmp_path / "corrections.toml"
    corrections.write_text(
        '[[correction]]\nfamily = "bms"\nnumber = 7022\nfield = "number"\nappendix = 7022\n'
        'value = 7072\nsource = "a test"\nevidence = "seen"\n\n'
        '[[quantity]]\nfamily = "vt"\nnumbers = [11004]\nquantity = "PV power"\n',
        encoding="utf-8",
    )
    files = gen.finish(rows(gen), [], {"source": "test"}, corrections)
    data = {(r["family"], r["number"]): r for r in gen.iter_rows(files, "datapoints.csv")}
    assert ("bms", "7022") not in data and data[("bms", "7072")]["name"].startswith("Minigrid")
    assert data[("bsp", "7002")]["quantity"] == data[("bsp", "7032")]["quantity"]
    assert (data[("bsp", "7002")]["statistic"], data[("bsp", "7032")]["statistic"]) == (
        "instant",
        "minute avg",
    )
    assert data[("vt", "11004")]["quantity"] == data[("vt", "11043")]["quantity"] == "PV power"
    assert data[("vs", "15011")]["part_of"] == "PV power"
    assert data[("vs", "15056")]["quantity"] == "Battery voltage"
    assert data[("vs", "15056")]["statistic"] == "minute min"


def test_generator_refuses_a_stale_or_unknown_correction(gen, tmp_path):
    stale = tmp_path / "stale.toml"
    stale.write_text(
        '[[correction]]\nfamily = "bsp"\nnumber = 7002\nfield = "name"\n'
        'appendix = "SoC"\nvalue = "State of charge"\nsource = "x"\nevidence = "y"\n',
        encoding="utf-8",
    )
    with pytest.raises(gen.AppendixError, match="now shows name"):
        gen.finish(rows(gen), [], {}, stale)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(
        '[[quantity]]\nfamily = "vt"\nnumbers = [99999]\nquantity = "PV power"\n', encoding="utf-8"
    )
    with pytest.raises(gen.AppendixError, match="no such user info"):
        gen.finish(rows(gen), [], {}, unknown)
    partial = tmp_path / "partial.toml"
    partial.write_text('[[correction]]\nfamily = "bsp"\nnumber = 7002\n', encoding="utf-8")
    with pytest.raises(gen.AppendixError, match="lacks"):
        gen.finish(rows(gen), [], {}, partial)


# --- quantities -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,instant,minute",
    [
        ("bsp", 7002, 7032),
        ("bms", 7002, 7032),
        ("vt", 11004, 11043),
        ("vs", 15010, 15061),
        ("xt", 3000, 3092),
        ("xt", 3139, 3098),
        ("xt", 3136, 3101),
        ("vt", 11002, 11041),
        ("vs", 15011, 15062),
    ],
)
def test_instant_and_minute_average_pairs(cat, family, instant, minute):
    a = cat.get(instant, family=family)
    b = cat.get(minute, family=family)
    assert a.quantity == b.quantity and a.unit == b.unit
    assert (a.statistic, b.statistic) == ("instant", "minute avg")
    same = cat.same_quantity(a)
    assert same[0] == a and b in same
    assert all(d.statistic == "instant" for d in same[: same.index(b)])


def test_every_minute_statistic_has_its_instant_info(cat):
    """The pairing is systematic: every "(minute ...)" info finds the instantaneous info of
    its family, except the electronics temperatures, of which the appendix has no instant."""
    unpaired = set()
    for dp in cat.datapoints(kind="info"):
        if dp.statistic in ("minute avg", "minute min", "minute max"):
            instant = [o for o in cat.same_quantity(dp) if o.statistic == "instant"]
            if not instant:
                unpaired.add(dp.quantity)
    assert unpaired == {"Electronic temperature 1", "Electronic temperature 2"}
    assert {dp.statistic for dp in cat.datapoints(kind="info")} == set(STATISTICS)


def test_measuring_orders_sources_and_names_mistakes(cat):
    soc = cat.measuring("state of charge", family="bsp")
    assert [(d.number, d.statistic) for d in soc] == [(7002, "instant"), (7032, "minute avg")]
    pv = cat.measuring("PV power")
    assert [(d.family.value, d.number) for d in pv] == [
        ("vt", 11004),
        ("vt", 11043),
        ("vs", 15010),
        ("vs", 15061),
    ]
    # "less accurate than info 3136": the more accurate one first
    assert [d.number for d in cat.measuring("Output active power")] == [3136, 3087, 3101]
    with pytest.raises(CatalogError, match="did you mean 'PV power'"):
        cat.measuring("PV powr")


# --- 12 / 24 / 48 V --------------------------------------------------------------------


def test_floating_voltage_on_24_and_48_volt_systems(cat):
    assert cat.validate(1140, 27.2, system_voltage=24) == pytest.approx(27.2)
    with pytest.raises(ValidationError, match=r"below the minimum 37\.9 Vdc.*48 V system"):
        cat.validate(1140, 27.2)
    with pytest.raises(
        ValidationError, match=r"above the maximum 36 Vdc \(range 19\.\.36 Vdc on a 24 V"
    ):
        cat.validate(1140, 54.4, system_voltage=24)
    cat24 = cat.for_system_voltage(24)
    assert cat24.validate(cat.get(1140), 27.2) == pytest.approx(27.2)  # a 48 V Datapoint works
    assert cat24.validate(1140, 54.4, system_voltage=48) == pytest.approx(54.4)


@pytest.mark.parametrize(
    "family,number,volts,expected",
    [
        ("xt", 1108, 24, (23.2, 18.0, 36.0)),  # 46.3 / 2 = 23.15: half up, as the RCC lists it
        ("xt", 1108, 12, (11.6, 9.0, 18.0)),
        ("xt", 1140, 12, (13.6, 9.5, 18.0)),
        ("xt", 1298, 24, (0.25, 0.0, 0.7)),  # increment 0.01: two decimals
        ("vt", 10005, 24, (27.2, 19.0, 34.1)),
        ("vs", 14005, 12, (13.6, 9.5, 17.1)),
        ("bsp", 6024, 24, (26.4, 16.0, 35.1)),  # unit "V": still the battery
        ("xt", 1140, 48, (54.4, 37.9, 72.0)),
    ],
)
def test_scaled_battery_voltage_parameters(cat, family, number, volts, expected):
    dp = cat.get(number, family=family, system_voltage=volts)
    assert (dp.default, dp.minimum, dp.maximum) == pytest.approx(expected)
    assert dp.increment == cat.get(number, family=family).increment


@pytest.mark.parametrize(
    "family,number", [("vt", 10103), ("vt", 10350), ("vs", 14044), ("vs", 14177), ("xt", 1139)]
)
def test_pv_and_per_cell_voltages_do_not_scale(cat, family, number):
    base = cat.get(number, family=family)
    for volts in (12, 24):
        dp = cat.get(number, family=family, system_voltage=volts)
        assert (dp.default, dp.minimum, dp.maximum) == (base.default, base.minimum, base.maximum)
    assert not base.scales_with_system_voltage


def test_which_parameters_scale(cat):
    scaling = [dp for dp in cat.datapoints(kind="parameter") if dp.scales_with_system_voltage]
    assert len(scaling) == 66
    assert {dp.family for dp in scaling} == {
        Family.XTENDER,
        Family.VARIOTRACK,
        Family.VARIOSTRING,
        Family.BSP,
    }
    assert all(dp.maximum <= 74.4 for dp in scaling)  # all within a 48 V battery's range


def test_bad_system_voltage(cat):
    for bad in (36, "x", None):
        with pytest.raises(ValidationError, match="system voltage must be one of 12, 24, 48 V"):
            cat.for_system_voltage(bad)
    assert cat.for_system_voltage(48) is cat
    assert cat.for_system_voltage(24) is cat.for_system_voltage(24)
    assert cat.for_system_voltage(24).for_system_voltage(48) is cat


def test_show_with_system_voltage(capsys):
    assert main(["catalog", "show", "1140", "--system-voltage", "12"]) == 0
    out = capsys.readouterr().out
    assert "default       13.6" in out and "12 V values" in out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(volts=st.sampled_from([12, 24]), index=st.integers(0, 65))
def test_scaled_defaults_are_valid_and_ordered(volts, index):
    cat = load_catalog()
    scaling = [dp for dp in cat.datapoints(kind="parameter") if dp.scales_with_system_voltage]
    dp = cat.get(scaling[index].number, family=scaling[index].family, system_voltage=volts)
    assert dp.minimum <= dp.default <= dp.maximum
    assert cat.validate(
        dp.number if dp.family is Family.XTENDER else dp, dp.default, system_voltage=volts
    ) == pytest.approx(dp.default)
    assert scale_to_system_voltage(scaling[index].maximum, volts, dp.increment) == dp.maximum


# --- search count (issue 16) -------------------------------------------------------------


def test_search_says_how_many_more_and_all_shows_them(capsys):
    assert main(["catalog", "search", "battery", "voltage"]) == 0
    out, err = capsys.readouterr()
    shown = len(out.splitlines()) - 2
    assert shown == 20
    total = len(load_catalog().search("battery voltage", limit=None))
    assert total > 20
    assert f"20 of {total} matches shown; {total - 20} more" in err and "--all" in err
    assert main(["catalog", "search", "battery", "voltage", "--all"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) - 2 == total and err == ""
    assert main(["catalog", "search", "battery", "voltage", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_data_files_without_quantity_columns_still_load(tmp_path):
    """A catalog generated before quantities existed reads, with empty quantities."""
    import csv

    from xcomlog.catalog import read_catalog

    with open(DATA_DIR / "datapoints.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    old = [c for c in rows[0] if c not in ("quantity", "statistic", "part_of")]
    with open(tmp_path / "datapoints.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, old, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    cat = read_catalog(tmp_path)
    assert len(cat) == len(load_catalog())
    assert cat.get(7002, family="bsp").quantity == "" and cat.corrections() == []
