"""SD-card import into the dataset: tables, partitions, idempotence, truncated copies, CLI."""

from __future__ import annotations

import datetime as dt
import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from xcomlog import dataset, importer, sdcard
from xcomlog.cli import main
from xcomlog.exceptions import ConfigError, DatalogError

ZONE = "Europe/Zurich"


def read_table(out, table: str, site: str = "home") -> pa.Table:
    root = out / table / f"site={site}"
    files = sorted(root.rglob("*.parquet"))
    if not files:
        return dataset.SCHEMAS[table].empty_table()
    return pa.concat_tables(pq.read_table(f, schema=dataset.SCHEMAS[table]) for f in files)


def files_of(out, table: str = "values") -> list[str]:
    return sorted(str(p.relative_to(out / table)) for p in (out / table).rglob("*.parquet"))


@pytest.fixture
def samples(sd_datalog_dir, tmp_path):
    """A private copy of the samples (tests cut and rename files)."""
    folder = tmp_path / "LOG"
    shutil.copytree(sd_datalog_dir, folder, ignore=shutil.ignore_patterns("*.txt"))
    return folder


def test_import_every_sample(samples, tmp_path):
    out = tmp_path / "data"
    summary = importer.import_paths([samples], site="home", tz=ZONE, out=out, progress=False)
    assert summary.ok and summary.files == 5
    logs = [sdcard.read_datalog(p) for p in sorted(samples.glob("LG*.CSV"))]
    assert summary.rows == sum(log.rows for log in logs)
    cells = sum(int((~np.isnan(log.data)).sum()) for log in logs)
    counters = sum(len(log.counters) for log in logs)
    values = read_table(out, "values")
    assert values.num_rows == summary.values == cells + counters
    assert values.schema.equals(dataset.VALUES_SCHEMA)
    assert read_table(out, "parameters").num_rows == summary.parameters
    assert sum(len(log.parameters) for log in logs) == summary.parameters
    assert read_table(out, "devices").num_rows == summary.devices
    assert summary.reasons()["incomplete row at end of file (file truncated)"] == 1
    assert sum(1 for _, i in summary.issues if "fields instead of" in i.reason) == 1


def test_local_day_lands_in_two_utc_partitions(samples, tmp_path):
    out = tmp_path / "data"
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    assert files_of(out) == [
        "site=home/date=2018-12-30/sd-LG181231.parquet",
        "site=home/date=2018-12-31/sd-LG181231.parquet",
    ]
    first_hour = pq.read_table(out / "values/site=home/date=2018-12-30/sd-LG181231.parquet")
    times = first_hour.column("time").to_numpy()
    assert times.min() == np.datetime64("2018-12-30T23:00")
    assert times.max() == np.datetime64("2018-12-30T23:59")


def test_values_read_back(samples, tmp_path):
    """Chosen cells of the CSV at their (time UTC, address, number)."""
    out = tmp_path / "data"
    importer.import_paths([samples / "LG180301.CSV"], site="home", tz=ZONE, out=out)
    table = read_table(out, "values")
    lines = (samples / "LG180301.CSV").read_text("latin-1").split("\n")
    numbers, devices = lines[1].split(";"), lines[2].split(";")
    row = lines[3 + 600].split(";")  # 01.03.2018 10:00 local = 09:00 UTC (CET)
    assert row[0] == "01.03.2018 10:00"
    when = pa.scalar(dt.datetime(2018, 3, 1, 9, 0, tzinfo=dt.timezone.utc), dataset.TIME_TYPE)
    at = table.filter(pa.compute.equal(table.column("time"), when))
    got = {
        (a, n): v
        for a, n, v in zip(
            *(at.column(c).to_pylist() for c in ("address", "number", "value")), strict=True
        )
    }
    expected_addresses = {"L1": 191, "L2": 192, "L3": 193, "L1-1": 101, "L2-2": 102, "L3-3": 103}
    for field in (1, 2, 3, 40, 41, 42, 56, 58):
        number = int(numbers[field][1:])
        address = expected_addresses.get(devices[field], 601)
        assert got[(address, number)] == pytest.approx(float(row[field]), abs=1e-4)


def test_reimport_replaces_and_adds_nothing(samples, tmp_path):
    out = tmp_path / "data"
    first = importer.import_paths([samples], site="home", tz=ZONE, out=out)
    before = {t: read_table(out, t).num_rows for t in importer.DAY_TABLES}
    names = {t: files_of(out, t) for t in importer.DAY_TABLES}
    second = importer.import_paths([samples], site="home", tz=ZONE, out=out)
    assert second.values == first.values
    assert {t: read_table(out, t).num_rows for t in importer.DAY_TABLES} == before
    assert {t: files_of(out, t) for t in importer.DAY_TABLES} == names


def cut_copy(path, dest, fraction: float):
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def test_later_full_copy_replaces_an_earlier_truncated_one(samples, tmp_path):
    out, partial = tmp_path / "data", tmp_path / "partial"
    partial.mkdir()
    cut = cut_copy(samples / "LG181231.CSV", partial / "LG181231.CSV", 0.4)
    early = importer.import_paths([cut], site="home", tz=ZONE, out=out)
    assert early.files == 1 and early.reports[0].truncated
    full = importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    assert full.files == 1 and full.values > early.values
    only_full = tmp_path / "only"
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=only_full)
    for table in importer.DAY_TABLES:
        assert read_table(out, table).num_rows == read_table(only_full, table).num_rows


def test_truncated_copy_never_replaces_a_fuller_import(samples, tmp_path, caplog):
    out, partial = tmp_path / "data", tmp_path / "partial"
    partial.mkdir()
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    stored = read_table(out, "values").num_rows
    cut = cut_copy(samples / "LG181231.CSV", partial / "LG181231.CSV", 0.5)
    kept = importer.import_paths([cut], site="home", tz=ZONE, out=out)
    assert kept.files == 0 and len(kept.kept) == 1 and kept.ok
    assert "--force" in kept.kept[0].reason
    assert read_table(out, "values").num_rows == stored
    assert read_table(out, "parameters").num_rows == 10
    forced = importer.import_paths([cut], site="home", tz=ZONE, out=out, force=True)
    assert forced.files == 1
    assert read_table(out, "values").num_rows == forced.values < stored
    assert read_table(out, "parameters").num_rows == 0  # the copy had no trailer


def test_reimport_with_another_zone_moves_the_day(samples, tmp_path):
    out = tmp_path / "data"
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz="UTC", out=out)
    assert files_of(out) == ["site=home/date=2018-12-31/sd-LG181231.parquet"]
    times = read_table(out, "values").column("time").to_numpy()
    assert times.min() == np.datetime64("2018-12-31T00:00")
    importer.import_paths(
        [samples / "LG181231.CSV"], site="home", tz="America/Los_Angeles", out=out
    )
    assert files_of(out) == [
        "site=home/date=2018-12-31/sd-LG181231.parquet",
        "site=home/date=2019-01-01/sd-LG181231.parquet",
    ]


def test_parameters_and_devices_tables(samples, tmp_path):
    out = tmp_path / "data"
    importer.import_paths([samples / "LG180713.CSV"], site="home", tz=ZONE, out=out)
    params = read_table(out, "parameters").to_pylist()
    p1107 = sorted((r["address"], r["value"]) for r in params if r["number"] == 1107)
    assert p1107 == [(101, 20.0), (102, 20.0), (103, 20.0)]
    # The trailer holds at the last row: 23:59 local = 21:59 UTC in summer.
    assert {r["time"] for r in params} == {dt.datetime(2018, 7, 13, 21, 59, tzinfo=dt.timezone.utc)}
    devices = {r["device"]: r for r in read_table(out, "devices").to_pylist()}
    assert devices["vs2"]["model"] == "VarioString VS120" and devices["vs2"]["address"] == 702
    assert devices["xt3"]["serial"] == "423C63C1" and devices["xt3"]["family"] == "xt"
    assert devices["rcc3"]["model"].startswith("Xcom-232i")
    counters = read_table(out, "values").filter(
        pa.compute.equal(read_table(out, "values").column("number"), 15016)
    )
    assert sorted(
        zip(
            counters.column("address").to_pylist(),
            counters.column("value").to_pylist(),
            strict=True,
        )
    ) == [
        (701, 402.75),
        (702, 597.5),
    ]


def test_labels_from_the_catalog_and_live_labels_win(samples, tmp_path):
    out = tmp_path / "data"
    dataset.write_labels(out, "home", [(101, 3092, "live name", "V", "xt")])
    importer.import_paths([samples / "LG181231.CSV"], site="home", tz=ZONE, out=out)
    labels = dataset.read_labels(out, "home")
    assert labels[(101, 3092)][2] == "live name"  # never overwritten by an import
    assert labels[(601, 7033)][2] == "Battery temperature (minute avg)"
    assert labels[(501, 17999)][2] == "Solar power (ALL)"  # not in the appendix: CSV label
    assert labels[(101, 1107)][5] == "parameter"
    meta = pq.read_schema(out / "values/site=home/date=2018-12-31/sd-LG181231.parquet").metadata
    assert (601, 7033) in dataset.labels_from_metadata(meta)
    assert meta[dataset.META_SITE] == b"home" and meta[b"xcomlog.source"] == b"LG181231.CSV"


def test_import_event_per_file(samples, tmp_path):
    out = tmp_path / "data"
    importer.import_paths([samples], site="home", tz=ZONE, out=out)
    events = read_table(out, "events").to_pylist()
    assert len(events) == 5 and {e["kind"] for e in events} == {"import"}
    cut = next(e["detail"] for e in events if e["detail"].startswith("LG200616"))
    assert "truncated" in cut and "incomplete row" in cut


def test_paths_folders_and_globs(samples, tmp_path):
    nested = samples / "2018" / "LOG"
    nested.mkdir(parents=True)
    (samples / "LG180301.CSV").rename(nested / "LG180301.CSV")
    (samples / "notes.txt").write_text("not a datalog")
    found = importer.expand_paths([samples])
    assert [p.name for p in found] == sorted(p.name for p in sdcard_files(samples))
    assert len(importer.expand_paths([str(samples / "LG18*.CSV")])) == 2
    assert importer.expand_paths([samples / "LG181231.CSV", str(samples / "LG1812*")]) == [
        samples / "LG181231.CSV"
    ]


def sdcard_files(folder):
    return [
        p
        for p in folder.rglob("*")
        if p.name.upper().startswith("LG") and p.suffix.upper() == ".CSV"
    ]


def test_missing_path_fails_before_anything_is_written(samples, tmp_path):
    out = tmp_path / "data"
    with pytest.raises(DatalogError, match="nope"):
        importer.import_paths([samples, tmp_path / "nope"], site="home", tz=ZONE, out=out)
    with pytest.raises(DatalogError, match="matches"):
        importer.import_paths([str(tmp_path / "*.CSV")], site="home", tz=ZONE, out=out)
    assert not out.exists()


@pytest.mark.parametrize(("site", "tz"), [("bad site", ZONE), ("home", "Nowhere/City")])
def test_bad_options(samples, tmp_path, site, tz):
    with pytest.raises(ConfigError):
        importer.import_paths([samples], site=site, tz=tz, out=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_bad_file_among_good_ones(samples, tmp_path):
    (samples / "LG181301.CSV").write_bytes(b"\x00\x01 not a datalog\n")
    (samples / "LG181302.CSV").write_bytes(b"")
    summary = importer.import_paths([samples], site="home", tz=ZONE, out=tmp_path / "data")
    assert summary.files == 5 and not summary.ok
    assert {r.source.rsplit("/", 1)[-1]: r.reason for r in summary.failed} == {
        "LG181301.CSV": "the file ends inside its 3-line header (truncated?)",
        "LG181302.CSV": "empty file",
    }
    assert "Failed 2 file(s)" in summary.format()


def test_import_bytes_for_downloads(sd_datalog_dir, tmp_path):
    data = (sd_datalog_dir / "LG190101.CSV").read_bytes()
    summary = importer.import_bytes("LG190101.CSV", data, site="home", tz=ZONE, out=tmp_path)
    assert summary.files == 1 and summary.rows == 1439


def test_progress_bar(samples, tmp_path):
    stream = io.StringIO()
    importer.import_paths([samples], site="home", tz=ZONE, out=tmp_path / "d", progress=stream)
    text = stream.getvalue()
    assert "5/5" in text and "[" in text and text.endswith("\n")
    quiet = io.StringIO()  # not a terminal: no bar
    bar = importer.Progress(5, quiet)
    bar.update(1)
    bar.close()
    assert quiet.getvalue() == ""


def test_cli_import(samples, tmp_path, capsys):
    out = tmp_path / "data"
    code = main(
        ["import", str(samples), "--site", "home", "--tz", ZONE, "--out", str(out), "--no-progress"]
    )
    printed = capsys.readouterr()
    assert code == 0
    assert "Imported 5 of 5 file(s)" in printed.out
    assert "incomplete row at end of file" in printed.out
    assert files_of(out)


def test_cli_errors(samples, tmp_path, capsys):
    args = ["--site", "home", "--tz", ZONE, "--out", str(tmp_path / "d"), "--no-progress"]
    assert main(["import", str(tmp_path / "missing"), *args]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert (
        main(["import", str(samples), "--site", "home", "--tz", "Bad/Zone", "--out", str(tmp_path)])
        == 2
    )
    (samples / "LG181301.CSV").write_bytes(b"junk")
    assert main(["import", str(samples), *args]) == 1
    assert "Failed 1 file(s)" in capsys.readouterr().out


def test_dataset_is_readable_as_one_hive_dataset(samples, tmp_path):
    """pyarrow (and so DuckDB, pandas, Polars) reads the import with partition columns."""
    out = tmp_path / "data"
    summary = importer.import_paths([samples], site="home", tz=ZONE, out=out)
    table = ds.dataset(out / "values", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == summary.values
    assert set(table.column("site").to_pylist()) == {"home"}


def test_autumn_dst_day_imports_without_duplicates(sd_datalog_dir, tmp_path):
    template = sdcard.read_datalog(sd_datalog_dir / "LG181231.CSV")
    local = sdcard.local_minutes(dt.date(2019, 10, 27), ZONE)
    data = np.tile(template.data[:1], (len(local), 1))
    payload = sdcard.with_rows(template, local, data, "LG191027.CSV").to_bytes()
    summary = importer.import_bytes("LG191027.CSV", payload, site="home", tz=ZONE, out=tmp_path)
    assert summary.rows == 1500
    values = read_table(tmp_path, "values")
    keys = np.stack(
        [values.column(c).to_numpy().astype(np.int64) for c in ("time", "address", "number")]
    )
    assert np.unique(keys, axis=1).shape[1] == values.num_rows  # no (time, address, number) twice
    assert files_of(tmp_path) == [
        "site=home/date=2019-10-26/sd-LG191027.parquet",
        "site=home/date=2019-10-27/sd-LG191027.parquet",
    ]


@pytest.mark.parametrize("truncated_first", [True, False])
def test_two_copies_of_a_day_in_one_run_keep_the_fuller(samples, tmp_path, truncated_first):
    """Whatever the order, the dataset ends with the complete copy."""
    partial = tmp_path / "partial"
    partial.mkdir()
    cut = cut_copy(samples / "LG181231.CSV", partial / "LG181231.CSV", 0.3)
    sources = [(str(cut), cut), (str(samples / "LG181231.CSV"), samples / "LG181231.CSV")]
    if not truncated_first:
        sources.reverse()
    out = tmp_path / "data"
    summary = importer.import_sources(sources, site="home", tz=ZONE, out=out, progress=False)
    statuses = [r.status for r in summary.reports]
    assert statuses == (["imported", "imported"] if truncated_first else ["imported", "kept"])
    full = sdcard.read_datalog(samples / "LG181231.CSV")
    cells = int((~np.isnan(full.data)).sum()) + len(full.counters)
    assert read_table(out, "values").num_rows == cells
    assert read_table(out, "parameters").num_rows == len(full.parameters)


def test_clock_left_on_winter_time_is_reported(sd_datalog_dir, tmp_path):
    """A spring day written by a clock that skipped no hour: 02:xx does not exist in the zone."""
    template = sdcard.read_datalog(sd_datalog_dir / "LG190101.CSV")
    local = sdcard.local_minutes(dt.date(2019, 3, 31), "Etc/GMT-1")  # 1440 minutes
    data = np.tile(template.data[:1], (len(local), 1))
    payload = sdcard.with_rows(template, local, data, "LG190331.CSV").to_bytes()
    summary = importer.import_bytes("LG190331.CSV", payload, site="home", tz=ZONE, out=tmp_path)
    [issue] = [i for _, i in summary.issues if "do not exist" in i.reason]
    assert issue.text == "60 rows" and "Etc/GMT-1" in issue.reason
    fixed = importer.import_bytes(
        "LG190331.CSV", payload, site="home", tz="Etc/GMT-1", out=tmp_path / "fixed"
    )
    assert not [i for _, i in fixed.issues if "do not exist" in i.reason]
