"""The fleet layout and `xcomlog compact` on a local folder: same rows as the home layout,
one file per table and day, site-sorted row groups; DuckDB and Polars read both layouts with
UTC timestamps and the date partition (Spark's pruning is checked in test_spark.py)."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest
from fleet_data import DAYS, ROWS_PER_SITE_DAY, SITES, make_layouts

import xcomlog
from xcomlog.cli import main
from xcomlog.storage.table_schemas import TIME_TYPE

pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return make_layouts(tmp_path_factory.mktemp("layouts"))


def test_compact_relays_every_day_into_one_site_sorted_file(layouts, tmp_path):
    home, fleet = layouts
    files = sorted((fleet / "values").rglob("*.parquet"))
    assert [f.parent.name for f in files] == [f"date={d}" for d in DAYS]
    assert not list((fleet / "values").glob("site=*"))
    meta = pq.read_metadata(files[0])
    assert meta.schema.column(0).name == "site"
    sites = pq.read_table(files[0], columns=["site"]).column("site").to_pylist()
    assert sites == sorted(sites)
    a = xcomlog.read(home, wide=False).sort_values(["site", "time", "number"], ignore_index=True)
    b = xcomlog.read(fleet, wide=False).sort_values(["site", "time", "number"], ignore_index=True)
    assert len(a) == len(b) == len(SITES) * len(DAYS) * ROWS_PER_SITE_DAY
    assert (a["value"].to_numpy() == b["value"].to_numpy()).all()
    assert list(a["site"].astype(str)) == list(b["site"].astype(str))
    one = xcomlog.read(fleet, site="beta", start=DAYS[1], end=DAYS[2], wide=False)
    assert len(one) == ROWS_PER_SITE_DAY and set(one["site"]) == {"beta"}
    # idempotent: a second run changes nothing
    before = {f: f.stat().st_mtime_ns for f in files}
    assert main(["compact", str(fleet), "--before", "2030-01-01"]) == 0
    assert {
        f: f.stat().st_mtime_ns for f in sorted((fleet / "values").rglob("*.parquet"))
    } == before


def test_compact_leaves_days_still_written_alone(tmp_path):
    from xcomlog.dataset import DatasetWriter

    out = tmp_path / "d"
    now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    with DatasetWriter(out) as writer:
        writer.append_values("a", [now_ms], 101, 3000, [1.0])
    assert main(["compact", str(out)]) == 0  # default --before: yesterday
    assert list((out / "values").glob("site=a/date=*/*.parquet"))


def test_duckdb_reads_both_layouts(layouts):
    duckdb = pytest.importorskip("duckdb")
    for root in layouts:
        con = duckdb.connect()
        rel = f"read_parquet('{root}/values/**/*.parquet', hive_partitioning = true, union_by_name = true)"
        types = dict(
            con.execute(f"describe select * from {rel}").fetchall()[i][:2] for i in range(6)
        )
        assert types["time"] == "TIMESTAMP WITH TIME ZONE"
        assert types["site"] == "VARCHAR"
        total = con.execute(f"select count(*) from {rel}").fetchone()[0]
        assert total == len(SITES) * len(DAYS) * ROWS_PER_SITE_DAY
        day = con.execute(f"select count(*) from {rel} where date = '{DAYS[0]}'").fetchone()[0]
        assert day == len(SITES) * ROWS_PER_SITE_DAY
        site = con.execute(f"select count(*) from {rel} where site = 'gamma'").fetchone()[0]
        assert site == len(DAYS) * ROWS_PER_SITE_DAY


def test_polars_reads_both_layouts(layouts):
    pl = pytest.importorskip("polars")
    for root in layouts:
        lazy = pl.scan_parquet(f"{root}/values/**/*.parquet", hive_partitioning=True)
        df = lazy.filter(pl.col("site") == "alpha").collect()
        assert df.schema["time"] == pl.Datetime(TIME_TYPE.unit, "UTC")
        assert len(df) == len(DAYS) * ROWS_PER_SITE_DAY


@pytest.mark.parametrize("layout", ["home", "fleet"])
def test_several_writers_share_a_local_folder(tmp_path, layout):
    """Writers with their own journals publish into one folder; restarting one with the same
    journal keeps its id and its files; every row is there once."""
    import numpy as np

    from xcomlog.storage.published_writer import PublishedDatasetWriter

    out = tmp_path / "shared"
    start = int(dt.datetime(2024, 6, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
    expected = 0
    for round_ in range(2):  # a second run of each writer (a restart) adds more rows
        for name in ("w1", "w2"):
            writer = PublishedDatasetWriter(out, tmp_path / f"journal-{name}", layout=layout)
            for site in (f"{name}-a", f"{name}-b"):
                t = start + round_ * DAY_MS + np.arange(0, 3_600_000, 1000, dtype=np.int64)
                writer.append_values(site, t, 101, 3000, np.ones(len(t), np.float32))
                expected += len(t)
            writer.close()
    df = xcomlog.read(out, wide=False)
    assert len(df) == expected
    assert not df.duplicated(["site", "time", "address", "number"]).any()
    assert set(df["site"]) == {"w1-a", "w1-b", "w2-a", "w2-b"}
    names = [p.name for p in (out / "values").rglob("*.parquet")]
    assert not [n for n in names if n.endswith(".tmp")]
    if layout == "fleet":
        assert all(p.parent.name.startswith("date=") for p in (out / "values").rglob("*.parquet"))
        writers = {n.split("-", 1)[1].rsplit("-", 1)[0] for n in names}  # <kind>-<writer>-<id>
    else:
        writers = {n.split(".")[1] for n in names}  # <name>.<writer>[.<merge id>].parquet
    assert len(writers) == 2


DAY_MS = 86_400_000


@pytest.mark.parametrize("layout", ["home", "fleet"])
def test_publisher_crash_after_a_put_adds_no_second_copy(tmp_path, layout):
    """A writer killed between a put and the record of it puts the same file again under the
    same name on its next start: a plain reader of the folder counts every row once."""
    import numpy as np
    import pyarrow.dataset as pads

    from xcomlog.dataset import DatasetWriter
    from xcomlog.storage.filesystem import open_location
    from xcomlog.storage.publisher import DatasetPublisher

    work, out = tmp_path / "work", tmp_path / "out"
    now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    with DatasetWriter(work) as writer:
        for site in ("a", "b"):
            writer.append_values(site, now_ms + np.arange(500), 101, 3000, np.ones(500, np.float32))
    crashing = DatasetPublisher(work, open_location(out), "w1", layout)

    def crash() -> None:
        raise KeyboardInterrupt("killed")

    crashing._save = crash
    with pytest.raises(KeyboardInterrupt):
        crashing.sync()
    assert list((out / "values").rglob("*.parquet"))  # the put happened, its record did not
    DatasetPublisher(work, open_location(out), "w1", layout).sync()
    plain = pads.dataset(out / "values", format="parquet", partitioning="hive").to_table()
    assert plain.num_rows == 1000
