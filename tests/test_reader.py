"""xcomlog.read: values back as written, wide labels, filters and partition pruning."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

pd = pytest.importorskip("pandas")

import xcomlog  # noqa: E402
from xcomlog.dataset import (  # noqa: E402
    META_DATAPOINTS,
    VALUES_SCHEMA,
    DatasetWriter,
    labels_metadata,
    partition_dir,
    write_parquet_atomic,
)
from xcomlog.reader import column_label, dataset_files, to_utc  # noqa: E402

DAY0 = dt.date(2024, 6, 10)
T0 = int(dt.datetime(2024, 6, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
DAY_MS = 86_400_000
LABELS = [
    (101, 3000, "Battery voltage", "Vdc", "xt"),
    (101, 3136, "Output active power", "kW", "xt"),
    (601, 7002, "State of Charge", "%", "bsp"),
]


def make_dataset(out, sites=("home",), days=3, step_s=600, seed=0):
    """Every ``step_s`` seconds: xt1 3000/3136 at t, bsp 7002 at t+20 ms. Returns the long
    frame of what was written, to compare with what comes back."""
    rng = np.random.default_rng(seed)
    rows = []
    with DatasetWriter(out) as w:
        for site in sites:
            w.describe(site, LABELS)
            for t in range(T0, T0 + days * DAY_MS, step_s * 1000):
                v = rng.normal(50, 2, 2).astype(np.float32)
                soc = np.float32(rng.uniform(0, 100))
                w.append_values(site, t, 101, [3000, 3136], v)
                w.append_values(site, t + 20, 601, 7002, soc)
                rows += [(site, t, 101, 3000, v[0]), (site, t, 101, 3136, v[1])]
                rows.append((site, t + 20, 601, 7002, soc))
    df = pd.DataFrame(rows, columns=["site", "time", "address", "number", "value"])
    df["time"] = pd.to_datetime(df["time"], unit="ms", utc=True)
    return df


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    written = make_dataset(out, sites=("home", "cabin"))
    return out, written


def test_long_values_equal_what_was_written(dataset):
    out, written = dataset
    df = xcomlog.read(out, wide=False)
    assert len(df) == len(written)
    key = ["site", "time", "address", "number"]
    got = df[[*key, "value"]].astype({"site": str}).sort_values(key).reset_index(drop=True)
    exp = written.sort_values(key).reset_index(drop=True)
    assert (got["time"] == exp["time"]).all()
    np.testing.assert_array_equal(got["address"].to_numpy(), exp["address"].to_numpy())
    np.testing.assert_array_equal(got["number"].to_numpy(), exp["number"].to_numpy())
    np.testing.assert_array_equal(got["value"].to_numpy(), exp["value"].to_numpy("float32"))
    assert str(df["time"].dt.tz) == "UTC"
    first = df[(df["number"] == 3000)].iloc[0]
    assert (first["device"], first["name"], first["unit"]) == ("xt1", "Battery voltage", "Vdc")


def test_wide_one_site_has_labelled_columns(dataset):
    out, written = dataset
    wide = xcomlog.read(out, site="home")
    assert list(wide.columns) == [
        "xt1 3000 Battery voltage [Vdc]",
        "xt1 3136 Output active power [kW]",
        "bsp 7002 State of Charge [%]",
    ]
    assert wide.index.name == "time" and wide.index.is_monotonic_increasing
    home = written[written["site"] == "home"]
    soc = home[home["number"] == 7002].set_index("time")["value"]
    np.testing.assert_array_equal(
        wide["bsp 7002 State of Charge [%]"].dropna().to_numpy(), soc.to_numpy()
    )
    info = wide.attrs["datapoints"]["bsp 7002 State of Charge [%]"]
    assert info["address"] == 601 and info["number"] == 7002 and info["unit"] == "%"


def test_wide_several_sites_prefix_the_site(dataset):
    out, _ = dataset
    wide = xcomlog.read(out, numbers=3000)
    assert sorted(wide.columns) == [
        "cabin xt1 3000 Battery voltage [Vdc]",
        "home xt1 3000 Battery voltage [Vdc]",
    ]


def test_freq_aligns_values_polled_apart(dataset):
    out, _ = dataset
    raw = xcomlog.read(out, site="home", start="2024-06-10", end="2024-06-11")
    aligned = xcomlog.read(out, site="home", start="2024-06-10", end="2024-06-11", freq="1min")
    assert len(raw) == 2 * len(aligned)  # 20 ms apart -> same minute
    assert not aligned.isna().any().any()


def test_time_range_is_half_open(dataset):
    out, written = dataset
    start, end = "2024-06-11 00:00", dt.datetime(2024, 6, 11, 1, tzinfo=dt.timezone.utc)
    df = xcomlog.read(out, start=start, end=end, site="home", wide=False)
    home = written[written["site"] == "home"]
    t0, t1 = to_utc(start), to_utc(end)
    expected = home[(home["time"] >= t0) & (home["time"] < t1)]
    assert len(df) == len(expected) > 0
    assert df["time"].min() == t0 and df["time"].max() < t1


def test_numbers_and_addresses_by_name(dataset):
    out, _ = dataset
    df = xcomlog.read(out, addresses="bsp", wide=False)
    assert set(df["number"]) == {7002} and set(df["address"]) == {601}
    df = xcomlog.read(out, addresses=["xt1"], numbers=[3136, 9999], wide=False)
    assert set(df["number"]) == {3136}


def test_one_day_of_one_site_touches_only_that_days_files(tmp_path):
    make_dataset(tmp_path, sites=("home", "cabin"), days=3, step_s=3600)
    day = DAY0 + dt.timedelta(days=1)
    files = dataset_files(tmp_path, site="home", start=day, end=day + dt.timedelta(days=1))
    assert files and all(f"date={day}" in str(f) and "site=home" in str(f) for f in files)
    # corrupt every other file: reading the chosen day must not open them
    for f in (tmp_path / "values").rglob("*.parquet"):
        if f not in files:
            f.write_bytes(b"garbage, not parquet")
    df = xcomlog.read(tmp_path, site="home", start=day, end=day + dt.timedelta(days=1))
    assert len(df) == 24 * 2  # xt1 rows at t and bsp rows at t + 20 ms, hourly
    assert (df.index.date == day).all()
    with pytest.raises((pa.ArrowInvalid, OSError)):
        xcomlog.read(tmp_path, site="home")  # the whole site does read the broken files


def test_end_at_midnight_excludes_that_day(dataset):
    out, _ = dataset
    files = dataset_files(out, site="home", start="2024-06-10", end="2024-06-11")
    assert {f.parent.name for f in files} == {"date=2024-06-10"}


def test_other_tables_read_long(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.append_values("s", T0, 101, 3000, 1.0)
        w.append_events("s", [{"time_ms": T0 + 1, "kind": "timeout", "address": 101}])
    events = xcomlog.read(tmp_path, table="events")
    assert events["kind"].tolist() == ["timeout"]
    assert xcomlog.read(tmp_path, table="messages").empty  # table never written


def test_empty_selection_keeps_columns(dataset):
    out, _ = dataset
    df = xcomlog.read(out, start="2030-01-01", wide=False)
    assert df.empty and {"time", "address", "number", "value"} <= set(df.columns)
    assert xcomlog.read(out, start="2030-01-01").empty


def test_tz_converts_for_display(dataset):
    out, _ = dataset
    # a naive bound is in ``tz`` too (issue 12): 03:00 in Zurich is 01:00 UTC
    df = xcomlog.read(out, site="home", numbers=3000, tz="Europe/Zurich", end="2024-06-10 03:00")
    assert str(df.index.tz) == "Europe/Zurich"
    assert df.index[0] == pd.Timestamp("2024-06-10 02:00", tz="Europe/Zurich")


def test_labels_from_file_metadata_without_datapoints_table(tmp_path):
    """An SD-card import writes values files directly: their metadata carries the labels."""
    table = pa.table(
        {
            "time": pa.array([T0, T0 + 60000], pa.int64()).cast(VALUES_SCHEMA.field("time").type),
            "address": pa.array([701, 701], pa.uint16()),
            "number": pa.array([15010, 15010], pa.uint16()),
            "value": pa.array([1.5, 2.5], pa.float32()),
        },
        schema=VALUES_SCHEMA,
    )
    meta = {META_DATAPOINTS: labels_metadata([(701, 15010, "PV power", "kW", "vs")])}
    write_parquet_atomic(
        table, partition_dir(tmp_path, "values", "x", DAY0) / "sd.parquet", metadata=meta
    )
    wide = xcomlog.read(tmp_path)
    assert list(wide.columns) == ["vs1 15010 PV power [kW]"]
    assert wide.iloc[:, 0].tolist() == [1.5, 2.5]


def test_table_folder_can_be_given_directly(dataset):
    out, _ = dataset
    assert len(xcomlog.read(out / "values", wide=False)) == len(xcomlog.read(out, wide=False))


def test_bad_arguments_are_clear(tmp_path, dataset):
    out, _ = dataset
    with pytest.raises(FileNotFoundError, match="no dataset"):
        xcomlog.read(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not an xcomlog dataset"):
        xcomlog.read(tmp_path)
    with pytest.raises(ValueError, match="start: cannot read"):
        xcomlog.read(out, start="not a date")
    with pytest.raises(ValueError, match="must be after start"):
        xcomlog.read(out, start="2024-06-11", end="2024-06-10")
    with pytest.raises(ValueError, match="unknown table"):
        xcomlog.read(out, table="nope")
    with pytest.raises(ValueError, match="unknown device"):
        xcomlog.read(out, addresses="toaster")


def test_column_label():
    assert (
        column_label(None, 101, 3000, "Battery voltage", "Vdc") == "xt1 3000 Battery voltage [Vdc]"
    )
    assert column_label("home", 601, 7002) == "home bsp 7002"


def test_datapoints_table(dataset):
    out, _ = dataset
    labels = xcomlog.read(out, table="datapoints", site="home")
    assert labels[["address", "number", "name", "unit"]].values.tolist() == [
        [a, n, name, unit] for a, n, name, unit, _ in LABELS
    ]
    assert set(labels["device"]) == {"xt1", "bsp"}
    assert set(xcomlog.read(out, table="datapoints")["site"]) == {"home", "cabin"}


def test_unknown_site_is_an_error_naming_the_sites(dataset):
    out, _ = dataset
    with pytest.raises(ValueError, match=r"no site 'hom' in the dataset .*sites are: cabin, home"):
        xcomlog.read(out, site="hom")
    with pytest.raises(ValueError, match="no site 'attic'"):
        xcomlog.read(out, site=["home", "attic"], table="events")
    assert len(xcomlog.read(out, site=["home", "cabin"], wide=False)) > 0


def test_unknown_table_is_an_error_naming_the_tables(dataset):
    out, _ = dataset
    with pytest.raises(ValueError, match=r"unknown table 'value'; tables are values, .*datapoints"):
        xcomlog.read(out, table="value")


def test_a_local_day_is_a_local_day(dataset):
    """start/end without a zone are in ``tz``: a Zurich day is 22:00 to 22:00 UTC in June."""
    out, written = dataset
    day = xcomlog.read(
        out, start="2024-06-11", end="2024-06-12", tz="Europe/Zurich", site="home", wide=False
    )
    utc0 = pd.Timestamp("2024-06-10 22:00", tz="UTC")
    utc1 = pd.Timestamp("2024-06-11 22:00", tz="UTC")
    home = written[written["site"] == "home"]
    expected = home[(home["time"] >= utc0) & (home["time"] < utc1)]
    assert len(day) == len(expected) > 0
    assert (
        day["time"].min() == expected["time"].min() and day["time"].max() == expected["time"].max()
    )
    assert str(day["time"].dt.tz) == "Europe/Zurich"
    assert day["time"].min().strftime("%Y-%m-%d %H:%M") == "2024-06-11 00:00"
    # aware bounds stay absolute; a dt.date is a local midnight too
    same = xcomlog.read(
        out, start=dt.date(2024, 6, 11), end=utc1, tz="Europe/Zurich", site="home", wide=False
    )
    assert len(same) == len(day)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        xcomlog.read(out, start="2024-06-11", tz="Mars/Olympus", site="home")
