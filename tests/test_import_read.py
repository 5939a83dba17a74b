"""Imported SD-card days and live-logged days read back as ONE table with ``xcomlog.read``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import xcomlog
from xcomlog import importer
from xcomlog.dataset import DatasetWriter

pd = pytest.importorskip("pandas")

ZONE = "Europe/Zurich"


def ms(text: str) -> int:
    return int(np.datetime64(text, "ms").astype(np.int64))


@pytest.mark.timeout(60)
def test_imported_and_live_days_are_one_table(sd_datalog_dir, tmp_path):
    out = tmp_path / "data"
    summary = importer.import_paths(
        [sd_datalog_dir / "LG181231.CSV", sd_datalog_dir / "LG190101.CSV"],
        site="home",
        tz=ZONE,
        out=out,
        progress=False,
    )
    # The live logger then runs on 2 January (its own day) and, once, on an imported day.
    live_times = np.array([ms("2019-01-02T10:00:00"), ms("2019-01-02T10:01:00")])
    with DatasetWriter(out, flush_interval=0.2) as writer:
        writer.describe("home", [(101, 3000, "Battery voltage", "Vdc", "xt")])
        writer.append_values("home", live_times, 101, 3000, np.array([51.5, 51.6], np.float32))
        writer.append_values("home", ms("2018-12-31T12:00:30"), 601, 7002, np.float32(88.0))

    long = xcomlog.read(out, site="home", wide=False)
    assert len(long) == summary.values + 3
    assert long["time"].is_monotonic_increasing
    assert str(long["time"].dt.tz) == "UTC"
    # One SD value, one live value, same columns and types.
    sd = long[(long["address"] == 601) & (long["number"] == 7033)]
    assert len(sd) == 1440 + 1439
    live = long[(long["address"] == 101) & (long["number"] == 3000)]
    assert live["value"].tolist() == pytest.approx([51.5, 51.6])
    assert set(long["device"].astype(str)) >= {"xt1", "bsp", "vs1", "gateway"}

    # A time range across the boundary between imported and live data.
    window = xcomlog.read(
        out, start="2019-01-01T22:58", end="2019-01-02T10:01", numbers=[3000, 7033], wide=False
    )
    assert set(window["number"]) == {3000, 7033}
    assert window["time"].min() == pd.Timestamp("2019-01-01T22:58", tz="UTC")

    wide = xcomlog.read(out, site="home", numbers=[7033, 3000], freq="1min")
    assert wide.index.min() == pd.Timestamp("2018-12-30T23:00", tz="UTC")
    assert wide.index.max() == pd.Timestamp("2019-01-02T10:01", tz="UTC")
    assert wide.shape[1] == 2  # bsp 7033 (imported) and xt1 3000 (live)


def test_reimport_after_live_logging_keeps_live_rows(sd_datalog_dir, tmp_path):
    out = tmp_path / "data"
    with DatasetWriter(out, flush_interval=0.2) as writer:
        writer.append_values("home", ms("2018-12-31T12:00:30"), 601, 7002, np.float32(88.0))
    for _ in range(2):
        importer.import_paths([sd_datalog_dir / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    long = xcomlog.read(out, site="home", numbers=7002, wide=False)
    at_noon = long[long["time"] == pd.Timestamp(dt.datetime(2018, 12, 31, 12, 0, 30), tz="UTC")]
    assert at_noon["value"].tolist() == [88.0]


@pytest.mark.timeout(120)
def test_every_imported_number_has_its_catalog_name_and_unit(sd_datalog_dir, tmp_path):
    """Issue 12 item 3: data columns, trailer day counters (I3081 ... I15017) and parameters
    come back named, with the catalog's unit wherever the catalog gives one."""
    from xcomlog.catalog import load_catalog
    from xcomlog.protocol import family_of_address

    out = tmp_path / "data"
    summary = importer.import_paths([sd_datalog_dir], site="home", tz=ZONE, out=out)
    assert summary.files == 5
    catalog = load_catalog()

    def catalog_unit(address: int, number: int, kind: str) -> str:
        family = family_of_address(address)
        units = {
            dp.unit
            for dp in catalog.find(number)
            if dp.kind == kind and (family is None or dp.family is family)
        }
        return units.pop() if len(units) == 1 else ""

    wide = xcomlog.read(out)
    info = wide.attrs["datapoints"]
    assert set(info) == set(wide.columns)
    counters = {3081, 3083, 7007, 7008, 11006, 11007, 15016, 15017}
    assert counters <= {d["number"] for d in info.values()}
    for column, d in info.items():
        assert d["name"], f"{column} has no name"
        expected = catalog_unit(d["address"], d["number"], "info")
        if expected:
            assert d["unit"] == expected, column
            assert f"[{expected}]" in column
    named = {d["number"]: d["name"] for d in info.values() if d["number"] in counters}
    assert named[3081] == "Energy AC-In from the current day"
    assert named[15017] == "Production PV in (kWh) for the current day"

    long = xcomlog.read(out, wide=False)
    assert (long["name"].astype(str) != "").all()
    table = xcomlog.read(out, table="datapoints")
    assert (table["name"] != "").all()
    for row in table.itertuples():
        expected = catalog_unit(row.address, row.number, row.kind)
        if expected:
            assert row.unit == expected, (row.address, row.number)
