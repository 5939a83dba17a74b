"""DatasetWriter: journalling, compaction, rotation, day change, validation and labels."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from xcomlog.dataset import (
    DATAPOINTS_SCHEMA,
    EVENTS_SCHEMA,
    JOURNAL_DIR,
    MESSAGES_SCHEMA,
    META_DATAPOINTS,
    SCHEMAS,
    VALUES_SCHEMA,
    DatasetWriter,
    day_of_ms,
    labels_from_metadata,
    partition_dir,
    read_labels,
    write_labels,
)
from xcomlog.exceptions import StorageError, ValidationError

T0 = 1_718_000_000_000  # 2024-06-10 06:13:20 UTC
DAY_MS = 86_400_000


def values_table(out) -> pa.Table:
    return ds.dataset(out / "values", format="parquet", partitioning="hive").to_table()


def journal_segments(out) -> list:
    return sorted((out / JOURNAL_DIR).rglob("*.arrows"))


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll a condition with a deadline (a bound against hangs, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_schemas_are_consistent():
    for name, schema in SCHEMAS.items():
        assert schema.field("time").type == pa.timestamp("us", tz="UTC"), name
    assert VALUES_SCHEMA.names == ["time", "address", "number", "value"]
    assert "kind" in EVENTS_SCHEMA.names and "text" in MESSAGES_SCHEMA.names
    assert DATAPOINTS_SCHEMA.names[:4] == ["address", "number", "name", "unit"]


def test_round_trip_values_sorted_and_compacted(tmp_path):
    rng = np.random.default_rng(1)
    n_cycles, numbers = 300, np.arange(3000, 3020, dtype=np.uint16)
    times, addrs, nums, vals = [], [], [], []
    with DatasetWriter(tmp_path, flush_interval=60) as w:
        for i in range(n_cycles):
            for address in (101, 102):
                v = rng.normal(size=numbers.size).astype(np.float32)
                t = T0 + i * 1000 + (address - 101)
                w.append_values("home", t, address, numbers, v)
                times.append(np.full(numbers.size, t))
                addrs.append(np.full(numbers.size, address))
                nums.append(numbers)
                vals.append(v)
        assert w.stats["rows_appended"] == n_cycles * 2 * numbers.size
        assert not list((tmp_path / "values").rglob("*.parquet"))  # nothing before close
    stats = w.stats
    assert stats["rows_compacted"] == stats["rows_appended"] == stats["rows_journalled"]
    assert stats["files"] == 1 and stats["bytes"] > 0
    assert journal_segments(tmp_path) == []

    table = values_table(tmp_path)
    expected = pa.table(
        {
            "time": pa.array(np.concatenate(times)).cast(pa.timestamp("ms", tz="UTC")),
            "address": np.concatenate(addrs).astype(np.uint16),
            "number": np.concatenate(nums),
            "value": np.concatenate(vals),
        }
    ).sort_by([("address", "ascending"), ("number", "ascending"), ("time", "ascending")])
    got = table.select(["time", "address", "number", "value"])
    assert got.cast(expected.schema).equals(expected)  # and stored in that sort order
    assert set(table.column("site").to_pylist()) == {"home"}
    assert set(table.column("date").to_pylist()) == {"2024-06-10"}


def test_flush_journals_and_fsyncs_without_parquet(tmp_path):
    w = DatasetWriter(tmp_path, flush_interval=3600)
    try:
        w.append_values("s", np.array([T0, T0 + 1]), 101, 3000, np.array([1.0, 2.0]))
        assert w.stats["rows_buffered"] == 2
        w.flush()
        assert w.stats["rows_journalled"] == 2 and w.stats["rows_buffered"] == 0
        segments = journal_segments(tmp_path)
        assert len(segments) == 1 and "date=2024-06-10" in str(segments[0])
        # a second process view of the journal: readable up to the last batch
        from xcomlog.dataset import read_segment

        table, _ = read_segment(segments[0])
        assert table.num_rows == 2
    finally:
        w.close()


def test_background_thread_flushes_on_interval(tmp_path):
    w = DatasetWriter(tmp_path, flush_interval=0.05)
    try:
        w.append_values("s", T0, 101, [3000, 3001], [1.0, 2.0])
        assert wait_for(lambda: w.stats["rows_journalled"] == 2)
    finally:
        w.close()


def test_rows_split_by_utc_day(tmp_path):
    t = np.array([T0, T0 + DAY_MS, T0 + 2 * DAY_MS, T0 + DAY_MS + 5])
    with DatasetWriter(tmp_path) as w:
        w.append_values("s", t, 101, 3000, np.arange(4, dtype=np.float32))
    for k, count in ((0, 1), (1, 2), (2, 1)):
        day = day_of_ms(T0 + k * DAY_MS)
        files = list(partition_dir(tmp_path, "values", "s", day).glob("*.parquet"))
        assert len(files) == 1
        table = pq.read_table(files[0])
        assert table.num_rows == count
        assert all(x.date() == day for x in table.column("time").to_pylist())


def test_day_change_compacts_previous_day(tmp_path):
    """Once data for a newer day arrives, the older day's segment becomes Parquet."""
    w = DatasetWriter(tmp_path, flush_interval=3600, rotate_interval=3600)
    try:
        w.append_values("s", T0, 101, 3000, 1.0)
        w.flush()
        w.append_values("s", T0 + DAY_MS, 101, 3000, 2.0)
        w.flush()  # yesterday's segment was written in the previous flush, not this one
        day1 = partition_dir(tmp_path, "values", "s", day_of_ms(T0))
        assert wait_for(lambda: len(list(day1.glob("*.parquet"))) == 1)  # by the thread
        assert len(journal_segments(tmp_path)) == 1  # today's segment is still open
    finally:
        w.close()


def test_rotation_makes_files_and_keeps_every_row(tmp_path):
    w = DatasetWriter(tmp_path, flush_interval=0.02, rotate_interval=0.1)
    try:
        total = 0
        for i in range(40):
            w.append_values("s", T0 + i, 101, 3000, float(i))
            total += 1
            time.sleep(0.01)
        assert wait_for(lambda: w.stats["files"] >= 2)
    finally:
        w.close()
    table = values_table(tmp_path)
    assert sorted(table.column("value").to_pylist()) == list(range(40))
    assert w.stats["files"] == len(list((tmp_path / "values").rglob("*.parquet")))


def test_row_tables(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.append_events(
            "s",
            [
                {"time_ms": T0, "kind": "start", "detail": "v1"},
                {"time_ms": T0 + 5, "kind": "timeout", "address": 101, "number": 3000},
            ],
        )
        w.append_messages(
            "s",
            [
                {
                    "time_ms": T0 - 3 * DAY_MS,
                    "logged_ms": T0,
                    "address": 101,
                    "number": 22,
                    "text": "Battery voltage too low",
                    "severity": "warning",
                    "total": 4,
                }
            ],
        )
        w.append_parameters(
            "s", [{"time_ms": T0, "address": 101, "number": 1107, "value": 32.0, "text": None}]
        )
        w.append_devices("s", [{"time_ms": T0, "address": 101, "family": "xt", "device": "xt1"}])
    events = ds.dataset(tmp_path / "events", partitioning="hive").to_table().to_pylist()
    assert [e["kind"] for e in events] == ["start", "timeout"]
    assert events[1]["address"] == 101 and events[0]["address"] is None
    messages = ds.dataset(tmp_path / "messages", partitioning="hive").to_table().to_pylist()
    assert messages[0]["date"] == day_of_ms(T0 - 3 * DAY_MS).isoformat()  # the message's day
    assert messages[0]["text"] == "Battery voltage too low" and messages[0]["total"] == 4
    params = ds.dataset(tmp_path / "parameters", partitioning="hive").to_table()
    assert params.column("value").to_pylist() == [32.0]
    devices = ds.dataset(tmp_path / "devices", partitioning="hive").to_table()
    assert devices.column("device").to_pylist() == ["xt1"]


def test_labels_table_and_file_metadata(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.describe("s", [(101, 3000, "Battery voltage", "Vdc", "xt")])
        w.describe("s", [(601, 7002, "State of Charge", "%", "bsp")])  # merged, not replaced
        w.append_values("s", T0, [101, 601, 101], [3000, 7002, 3001], [52.0, 80.0, 1.0])
    labels = read_labels(tmp_path, "s")
    assert labels[(101, 3000)][2:4] == ("Battery voltage", "Vdc")
    assert labels[(601, 7002)][2:5] == ("State of Charge", "%", "bsp")
    (file,) = (tmp_path / "values").rglob("*.parquet")
    meta = pq.read_schema(file).metadata
    in_file = labels_from_metadata(meta)
    assert set(in_file) == {(101, 3000), (601, 7002)}  # only labelled numbers in the file
    assert META_DATAPOINTS in meta


def test_write_labels_validates(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        write_labels(tmp_path, "s", [(70000, 1, "x", "", "xt")])
    with pytest.raises(ValueError, match="expected"):
        write_labels(tmp_path, "s", [(1, 2)])


@pytest.mark.parametrize(
    "args, match",
    [
        ((T0, 101, [3000, 3001], [1.0, 2.0, 3.0]), "differ in length"),
        ((T0, 70000, 3000, 1.0), "address out of range"),
        ((T0, 101, -1, 1.0), "number out of range"),
        ((np.array([1.5]), 101, 3000, 1.0), "time_ms must hold integers"),
        ((T0, 101, np.array(["a"]), 1.0), "number must hold integers"),
        ((np.zeros((2, 2), np.int64), 101, 3000, 1.0), "1-D"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_lost(tmp_path, args, match):
    with DatasetWriter(tmp_path) as w:
        w.append_values("s", T0, 101, 3000, 7.0)
        with pytest.raises(ValidationError, match=match):
            w.append_values("s", *args)
        assert w.error is None
        w.append_values("s", T0 + 1, 101, 3000, 8.0)
    assert sorted(values_table(tmp_path).column("value").to_pylist()) == [7.0, 8.0]


@pytest.mark.parametrize(
    "rows, match",
    [
        ([{"time_ms": T0, "kind": "x", "colour": 1}], "unknown field 'colour'"),
        ([{"time_ms": T0}], "'kind' is required"),
        ([{"kind": "x"}], "'time' is required"),
        ([{"time_ms": "yesterday", "kind": "x"}], "field 'time'"),
        (["not a dict"], "not a dict"),
    ],
)
def test_bad_rows_are_refused(tmp_path, rows, match):
    with DatasetWriter(tmp_path) as w:
        with pytest.raises(ValidationError, match=match):
            w.append_events("s", rows)


def test_bad_site_and_intervals(tmp_path):
    with DatasetWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="invalid site name"):
            w.append_values("../etc", T0, 101, 3000, 1.0)
    with pytest.raises(ValueError, match="flush_interval"):
        DatasetWriter(tmp_path, flush_interval=0)


def test_one_writer_per_folder(tmp_path):
    with DatasetWriter(tmp_path):
        with pytest.raises(StorageError, match="already being written"):
            DatasetWriter(tmp_path)
        with pytest.raises(StorageError, match="already being written"):
            DatasetWriter.recover(tmp_path)
    DatasetWriter(tmp_path).close()  # released on close


def test_append_after_close_is_refused(tmp_path):
    w = DatasetWriter(tmp_path)
    w.close()
    w.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        w.append_values("s", T0, 101, 3000, 1.0)


def test_on_flush_callback_errors_do_not_stop_the_writer(tmp_path):
    calls = []

    def callback(stats):
        calls.append(stats["rows_journalled"])
        raise RuntimeError("status line broke")

    with DatasetWriter(tmp_path, on_flush=callback) as w:
        w.append_values("s", T0, 101, 3000, 1.0)
        w.flush()
        w.append_values("s", T0 + 1, 101, 3000, 2.0)
        w.flush()
        assert w.error is None
    assert calls[:2] == [1, 2]


def test_datetime64_times_are_accepted(tmp_path):
    t = np.array(["2024-06-10T00:00:01"], dtype="datetime64[s]")
    with DatasetWriter(tmp_path) as w:
        w.append_values("s", t, 101, 3000, 1.0)
    (value,) = values_table(tmp_path).column("time").to_pylist()
    assert value == dt.datetime(2024, 6, 10, 0, 0, 1, tzinfo=dt.timezone.utc)


def test_big_segments_are_rotated_by_size(tmp_path):
    with DatasetWriter(tmp_path, flush_interval=3600, max_segment_rows=100) as w:
        for i in range(5):
            w.append_values("s", T0 + np.arange(i * 60, (i + 1) * 60), 101, 3000, float(i))
            w.flush()
    files = list((tmp_path / "values").rglob("*.parquet"))
    assert len(files) == 3  # 120, 120 and the last 60 rows
    assert sorted(pq.read_metadata(f).num_rows for f in files) == [60, 120, 120]
    assert values_table(tmp_path).num_rows == 300


def test_string_fields_take_enums_by_value(tmp_path):
    from xcomlog.protocol import Family

    with DatasetWriter(tmp_path) as w:
        w.append_devices("s", [{"time_ms": T0, "address": 101, "family": Family.XTENDER}])
        w.append_events("s", [{"time_ms": T0, "kind": "device_error", "detail": 0x0014}])
    devices = ds.dataset(tmp_path / "devices", partitioning="hive").to_table()
    assert devices.column("family").to_pylist() == ["xt"]
    events = ds.dataset(tmp_path / "events", partitioning="hive").to_table()
    assert events.column("detail").to_pylist() == ["20"]


def _hourly_files(tmp_path, n_files=3, site="s"):
    """n_files live-* files for the day of T0 (one per close), as hourly rotation makes."""
    for k in range(n_files):
        with DatasetWriter(tmp_path, merge_days=False) as w:
            w.append_values(site, T0 + np.arange(k * 10, (k + 1) * 10), 101, 3000, float(k))
    return partition_dir(tmp_path, "values", site, day_of_ms(T0))


def test_finished_day_is_merged_into_one_file(tmp_path):
    folder = _hourly_files(tmp_path)
    sd_file = folder / "sd-LG240610.parquet"  # another writer's file: never touched
    sd_file.write_bytes((next(folder.glob("live-*.parquet"))).read_bytes())
    w = DatasetWriter(tmp_path, flush_interval=3600)
    w.describe("s", [(101, 3000, "Battery voltage", "Vdc", "xt")])
    w.append_values("s", T0 + 5, 101, 3000, 99.0)  # a late row for the old day
    w.flush()
    w.append_values("s", T0 + DAY_MS, 101, 3000, 1.0)  # the next day starts
    w.flush()
    w.flush()  # the old day's segment got nothing: it is compacted, then the day merged
    assert wait_for(lambda: not list(folder.glob("live-*")))
    w.close()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["day-2024-06-10.parquet", "sd-LG240610.parquet"]
    merged = pq.read_table(folder / "day-2024-06-10.parquet")
    assert merged.num_rows == 31
    assert merged.column("time").to_pylist() == sorted(merged.column("time").to_pylist())
    assert labels_from_metadata(merged.schema.metadata)[(101, 3000)][2] == "Battery voltage"
    assert not list((tmp_path / JOURNAL_DIR / "merges").glob("*.json"))


def test_merge_day_replaces_an_earlier_merge(tmp_path):
    from xcomlog.dataset import merge_day

    folder = _hourly_files(tmp_path, 2)
    first, parts = merge_day(tmp_path, "values", "s", day_of_ms(T0))
    assert len(parts) == 2 and pq.read_metadata(first).num_rows == 20
    _hourly_files(tmp_path, 1)  # a late file for the same day
    second, parts = merge_day(tmp_path, "values", "s", day_of_ms(T0))
    assert second == first and len(parts) == 1
    assert [p.name for p in folder.iterdir()] == [first.name]
    assert sorted(pq.read_table(first).column("value").to_pylist()) == [0.0] * 20 + [1.0] * 10
    assert merge_day(tmp_path, "values", "s", day_of_ms(T0)) == (None, [])  # nothing to do


@pytest.mark.parametrize("renamed", [True, False])
def test_crash_during_merge_recovers_without_loss_or_duplicates(tmp_path, monkeypatch, renamed):
    from xcomlog.storage import day_merge as dataset_mod

    folder = _hourly_files(tmp_path, 3)
    if renamed:  # crash after the merged file was renamed in, before the parts were deleted
        monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        with pytest.raises(RuntimeError):
            real = dataset_mod.fsync_dir

            def crash(path):
                real(path)
                if Path(path) == folder:
                    raise RuntimeError("power cut")

            monkeypatch.setattr(dataset_mod, "fsync_dir", crash)
            dataset_mod.merge_day(tmp_path, "values", "s", day_of_ms(T0))
    else:  # crash while the merged file was being written

        def crash(*args, **kwargs):
            raise KeyboardInterrupt  # not caught: like a kill, the manifest stays

        monkeypatch.setattr(dataset_mod, "write_parquet_atomic", crash)
        monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        with pytest.raises(KeyboardInterrupt):
            dataset_mod.merge_day(tmp_path, "values", "s", day_of_ms(T0))
    monkeypatch.undo()
    assert list((tmp_path / JOURNAL_DIR / "merges").glob("*.json"))  # the crash left it
    DatasetWriter.recover(tmp_path)
    assert not list((tmp_path / JOURNAL_DIR / "merges").glob("*.json"))
    table = values_table(tmp_path)
    assert sorted(table.column("value").to_pylist()) == [0.0] * 10 + [1.0] * 10 + [2.0] * 10
    expected = ["day-2024-06-10.parquet"] if renamed else None
    names = sorted(p.name for p in folder.iterdir())
    if expected:
        assert names == expected
    else:
        assert len(names) == 3 and all(n.startswith("live-") for n in names)
