# ruff: noqa: F811 - pytest fixtures imported from fleet_fixtures
"""Datasets on object storage, against a real S3 API server process (moto's standalone
server): the writer, the SD-card import, xcomlog.read and xcomlog compact over s3:// URIs."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from fleet_fixtures import s3_bucket, s3_server  # noqa: F401 - fixtures

import xcomlog
from xcomlog.cli import main
from xcomlog.storage.filesystem import open_location
from xcomlog.storage.published_writer import PublishedDatasetWriter
from xcomlog.storage.table_schemas import TIME_TYPE

pytest.importorskip("pandas")

DAY_MS = 86_400_000


def bucket_files(server, bucket: str, prefix: str = "ds") -> list[str]:
    fs = server.filesystem()
    infos = fs.get_file_info(
        pafs.FileSelector(f"{bucket}/{prefix}", recursive=True, allow_not_found=True)
    )
    return sorted(
        i.path[len(bucket) + len(prefix) + 2 :] for i in infos if i.type == pafs.FileType.File
    )


def write_two_days(writer, sites, today_ms: int) -> int:
    """Values of yesterday and today for each site; returns rows written."""
    rows = 0
    for k, site in enumerate(sites):
        writer.describe(site, [(101, 3000, "Battery voltage", "Vdc", "xt")])
        for day in (today_ms - DAY_MS, today_ms):
            t = day + np.arange(0, 600_000, 1000, dtype=np.int64)
            writer.append_values(site, t, 101, 3000, (np.arange(len(t)) + k).astype(np.float32))
            writer.flush()
            rows += len(t)
    return rows


@pytest.mark.parametrize("layout", ["home", "fleet"])
def test_writer_publishes_whole_files_and_reads_back(s3_server, s3_bucket, tmp_path, layout):
    uri = s3_server.uri(s3_bucket, "ds")
    today_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    writer = PublishedDatasetWriter(
        uri, tmp_path / "journal", layout=layout, writer_id="w1", flush_interval=0.1
    )
    rows = write_two_days(writer, ["alpha", "beta"], today_ms)
    writer.close()

    files = bucket_files(s3_server, s3_bucket)
    values = [f for f in files if f.startswith("values/")]
    assert values and all(".tmp" not in f for f in files)
    assert "datapoints/site=alpha/datapoints.parquet" in files
    if layout == "home":
        assert all(f.split("/")[1].startswith("site=") for f in values)
        assert all(".w1." in f for f in values)  # the writer id in every name
    else:
        yesterday = dt.datetime.fromtimestamp((today_ms - DAY_MS) / 1000, dt.timezone.utc).date()
        day_files = [f for f in values if f.startswith(f"values/date={yesterday}/")]
        assert len(day_files) == 1 and "day-w1-" in day_files[0]  # one file, every site
        assert all(f.split("/")[1].startswith("date=") for f in values)

    df = xcomlog.read(uri, wide=False)
    assert len(df) == rows
    assert not df.duplicated(["site", "time", "address", "number"]).any()
    assert set(df["site"]) == {"alpha", "beta"}
    assert str(df["time"].dtype) == f"datetime64[{TIME_TYPE.unit}, UTC]"
    one = xcomlog.read(uri, site="beta", wide=False)
    assert len(one) == rows // 2 and set(one["site"]) == {"beta"}
    assert set(one["name"]) == {"Battery voltage"}  # labels read from the store
    wide = xcomlog.read(uri, site="alpha")
    assert list(wide.columns) == ["xt1 3000 Battery voltage [Vdc]"]


def test_restarted_writer_publishes_what_the_crash_left(s3_server, s3_bucket, tmp_path):
    """Rows journalled before an unclean stop reach the store on the next start, once."""
    uri = s3_server.uri(s3_bucket, "ds")
    now_ms = int(time.time() * 1000)
    code = (
        "import sys, os, numpy as np\n"
        "from xcomlog.storage.published_writer import PublishedDatasetWriter\n"
        f"w = PublishedDatasetWriter({uri!r}, {str(tmp_path / 'j')!r}, writer_id='w1')\n"
        f"t = {now_ms} + np.arange(1000, dtype=np.int64)\n"
        "w.append_values('alpha', t, 101, 3000, np.ones(1000, np.float32))\n"
        "w.flush()\n"
        "os._exit(0)\n"  # no close: the rows are only in the local journal
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert not [f for f in bucket_files(s3_server, s3_bucket) if f.startswith("values/")]
    writer = PublishedDatasetWriter(uri, tmp_path / "j", writer_id="w1")
    writer.close()
    df = xcomlog.read(uri, wide=False)
    assert len(df) == 1000 and not df.duplicated(["time", "address", "number"]).any()


def test_import_and_compact_through_s3(s3_server, s3_bucket, tmp_path):
    from xcomlog.sim import Installation, Simulator
    from xcomlog.sim.sd_files import render_day

    sim = Simulator(Installation(xtenders=1), seed=3)
    sd = tmp_path / "sd"
    sd.mkdir()
    days = [dt.date(2024, 6, 10), dt.date(2024, 6, 11)]
    for day in days:
        (sd / f"LG{day:%y%m%d}.CSV").write_bytes(render_day(sim, day))
    uri = s3_server.uri(s3_bucket, "ds")
    args = ["import", str(sd), "--site", "home", "--tz", "Europe/Zurich", "--no-progress"]
    assert main([*args, "--out", uri, "--journal", str(tmp_path / "j")]) == 0
    local = tmp_path / "local"
    assert main([*args, "--out", str(local)]) == 0
    expected = xcomlog.read(local, wide=False)
    got = xcomlog.read(uri, wide=False)
    assert len(got) == len(expected) > 0
    assert (got["value"].to_numpy() == expected["value"].to_numpy()).all()
    # importing again replaces, adds nothing
    assert main([*args, "--out", uri, "--journal", str(tmp_path / "j")]) == 0
    assert len(xcomlog.read(uri, wide=False)) == len(expected)

    # compact: one file per table and day holding the site, same rows, then idempotent
    assert main(["compact", uri, "--before", "2030-01-01"]) == 0
    files = bucket_files(s3_server, s3_bucket)
    values = [f for f in files if f.startswith("values/")]
    assert values and all(f.split("/")[1].startswith("date=") for f in values)
    assert len(values) == len({f.split("/")[1] for f in values})  # one file per day
    after = xcomlog.read(uri, wide=False)
    assert len(after) == len(expected)
    assert not after.duplicated(["site", "time", "address", "number"]).any()
    assert main(["compact", uri, "--before", "2030-01-01"]) == 0
    assert bucket_files(s3_server, s3_bucket) == files
    meta = pq.read_metadata(
        values[0] and f"{s3_bucket}/ds/{values[0]}", filesystem=s3_server.filesystem()
    )
    assert meta.schema.column(0).name == "site"


def test_interrupted_compaction_never_shows_a_row_twice(s3_server, s3_bucket, tmp_path):
    """A compaction stopped after its put and before its deletes: xcomlog.read shows each
    row once, and the next run finishes the job."""
    from xcomlog.storage import compaction

    uri = s3_server.uri(s3_bucket, "ds")
    writer = PublishedDatasetWriter(uri, tmp_path / "j", writer_id="w1", flush_interval=0.1)
    start = int(dt.datetime(2024, 6, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
    for site in ("a", "b"):
        t = start + np.arange(0, 3_600_000, 1000, dtype=np.int64)
        writer.append_values(site, t, 101, 3000, np.ones(len(t), np.float32))
    writer.close()
    location = open_location(uri)
    original_delete = location.__class__.delete
    try:
        location.__class__.delete = lambda self, path: None  # the run "dies" before deleting
        compaction.compact_dataset(location, before=dt.date(2030, 1, 1))
    finally:
        location.__class__.delete = original_delete
    doubled = bucket_files(s3_server, s3_bucket)
    assert any("compact-" in f for f in doubled) and any(
        "site=" in f for f in doubled if f.startswith("values/")
    )
    df = xcomlog.read(uri, wide=False)
    assert len(df) == 7200 and not df.duplicated(["site", "time", "address", "number"]).any()
    compaction.compact_dataset(location, before=dt.date(2030, 1, 1))
    values = [f for f in bucket_files(s3_server, s3_bucket) if f.startswith("values/")]
    assert len(values) == 1 and "compact-" in values[0]
    assert len(xcomlog.read(uri, wide=False)) == 7200
