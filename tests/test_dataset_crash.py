"""Crash safety: SIGKILL mid-run, torn journal segments, disk full and unwritable folders."""

from __future__ import annotations

import errno
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from xcomlog import dataset as dataset_mod
from xcomlog.dataset import JOURNAL_DIR, DatasetWriter, read_segment
from xcomlog.exceptions import StorageError

T0 = 1_718_000_000_000

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from xcomlog.dataset import DatasetWriter

    out, flush, rotate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])

    def on_flush(stats):
        print("J", stats["rows_journalled"], flush=True)

    w = DatasetWriter(out, flush_interval=flush, rotate_interval=rotate, on_flush=on_flush)
    w.describe("site1", [(101, 3000, "Battery voltage", "Vdc", "xt")])
    counter, n = 0, 40
    while True:
        now = int(time.time() * 1000)
        # value = a running counter: after recovery the values must be exactly 0..N-1
        w.append_values("site1", now, 101, np.full(n, 3000), np.arange(counter, counter + n))
        counter += n
        time.sleep(0.004)
    """
)


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)


def open_everywhere(out: Path) -> int:
    """Open the values table in pyarrow, pandas and DuckDB; all must agree on the rows."""
    import duckdb
    import pandas as pd

    files = list((out / "values").rglob("*.parquet"))
    if not files:
        return 0
    n_arrow = ds.dataset(out / "values", format="parquet", partitioning="hive").count_rows()
    n_pandas = len(pd.read_parquet(out / "values"))
    con = duckdb.connect()
    n_duck = con.execute(
        "select count(*) from read_parquet(?, hive_partitioning = true)",
        [str(out / "values" / "**" / "*.parquet")],
    ).fetchone()[0]
    con.close()
    assert n_arrow == n_pandas == n_duck
    return n_arrow


@pytest.mark.timeout(90)
def test_sigkill_mid_run_loses_at_most_one_flush_interval(tmp_path):
    out = tmp_path / "data"
    flush, rotate = 0.3, 0.7  # rotations (compactions) happen during the run too
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), str(flush), str(rotate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    journalled = []
    try:
        deadline = time.monotonic() + 45
        while len(journalled) < 8 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            journalled.append(int(line.split()[1]))
        assert len(journalled) >= 8, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.13)  # kill somewhere between two flushes
        kill_ms = int(time.time() * 1000)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    while not lines.empty():
        journalled.append(int(lines.get().split()[1]))
    acknowledged = journalled[-1]

    # Before recovery: what is visible is complete Parquet only, readable everywhere.
    before = open_everywhere(out)
    # (the journal usually holds the tail; it is empty only if the kill hit right after a
    # rotation compacted everything)
    recovered = DatasetWriter.recover(out)
    assert before + sum(recovered.values()) >= acknowledged
    assert not list((out / JOURNAL_DIR).rglob("*.arrows"))
    after = open_everywhere(out)
    assert after >= max(before, acknowledged)

    table = ds.dataset(out / "values", format="parquet", partitioning="hive").to_table()
    values = np.sort(table.column("value").to_numpy())
    # no duplicates and no holes: exactly the first N rows the child appended
    np.testing.assert_array_equal(values, np.arange(len(values), dtype=np.float32))
    # at most the last flush interval is missing (generous slack for a loaded 2-core CI box)
    newest = table.column("time").cast(pa.int64()).to_numpy().max() // 1000  # µs -> ms
    assert kill_ms - newest <= (flush + 1.5) * 1000
    # the recovered files still describe themselves
    for f in (out / "values").rglob("*.parquet"):
        assert dataset_mod.META_DATAPOINTS in pq.read_schema(f).metadata

    # the next writer starts cleanly on the recovered folder
    DatasetWriter(out).close()


def _segment_with_batches(tmp_path, n_batches=5, rows=10) -> Path:
    w = DatasetWriter(tmp_path, flush_interval=3600)
    for b in range(n_batches):
        t = T0 + np.arange(b * rows, (b + 1) * rows)
        w.append_values("s", t, 101, 3000, np.arange(b * rows, (b + 1) * rows))
        w.flush()
    (segment,) = (tmp_path / JOURNAL_DIR).rglob("*.arrows")
    saved = tmp_path / "saved.arrows"
    shutil.copy(segment, saved)
    w.close()
    # put the crash-time journal back, as if the process had died before close
    segment.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(saved, segment)
    saved.unlink()
    shutil.rmtree(tmp_path / "values")
    return segment


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_truncated_segment_recovers_complete_batches(tmp_path, cut):
    segment = _segment_with_batches(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-cut])  # the last batch is torn
    table, dropped = read_segment(segment)
    assert table.num_rows == 40 and dropped > 0
    recovered = DatasetWriter.recover(tmp_path)
    assert recovered == {("values", "s"): 40}
    values = ds.dataset(tmp_path / "values", partitioning="hive").to_table().column("value")
    assert sorted(values.to_pylist()) == list(range(40))


def test_zero_filled_tail_is_ignored(tmp_path):
    """After a power cut some file systems leave zeros where the last write was."""
    segment = _segment_with_batches(tmp_path)
    with open(segment, "ab") as f:
        f.write(b"\0" * 4096)
    assert DatasetWriter.recover(tmp_path) == {("values", "s"): 50}


def test_segment_without_schema_is_dropped(tmp_path):
    segment = _segment_with_batches(tmp_path)
    segment.write_bytes(segment.read_bytes()[:20])
    assert DatasetWriter.recover(tmp_path) == {}
    assert not segment.exists()


def test_crash_between_rename_and_delete_makes_no_duplicates(tmp_path):
    segment = _segment_with_batches(tmp_path, n_batches=2)
    saved = segment.read_bytes()
    assert DatasetWriter.recover(tmp_path) == {("values", "s"): 20}
    segment.parent.mkdir(parents=True, exist_ok=True)
    segment.write_bytes(saved)  # the delete "did not happen"
    assert DatasetWriter.recover(tmp_path) == {("values", "s"): 20}
    table = ds.dataset(tmp_path / "values", partitioning="hive").to_table()
    assert table.num_rows == 20  # the same file name was replaced, not duplicated


def test_constructor_recovers_and_records_an_event(tmp_path):
    _segment_with_batches(tmp_path, n_batches=3)
    with DatasetWriter(tmp_path) as w:
        assert w.recovered == {("values", "s"): 30}
        assert w.stats["rows_recovered"] == 30
    events = ds.dataset(tmp_path / "events", partitioning="hive").to_table().to_pylist()
    assert [e["kind"] for e in events] == ["recovered"]
    assert "30 values rows" in events[0]["detail"]


def _fail_with(err_no):
    def fail(*args, **kwargs):
        raise OSError(err_no, os.strerror(err_no))

    return fail


def test_disk_full_while_journalling_stops_with_a_clear_error(tmp_path, monkeypatch):
    w = DatasetWriter(tmp_path, flush_interval=3600)
    w.append_values("s", T0 + np.arange(10), 101, 3000, np.arange(10))
    w.flush()
    monkeypatch.setattr(dataset_mod._Segment, "sync", _fail_with(errno.ENOSPC))
    w.append_values("s", T0 + 10, 101, 3000, 10.0)
    with pytest.raises(StorageError, match="disk full") as info:
        w.flush()
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path) in str(info.value)
    assert w.error is info.value
    with pytest.raises(StorageError, match="disk full"):
        w.append_values("s", T0 + 11, 101, 3000, 11.0)
    with pytest.raises(StorageError, match="disk full"):
        w.close()
    monkeypatch.undo()
    # the journal is intact and recovered by the next start
    recovered = DatasetWriter.recover(tmp_path)
    assert recovered[("values", "s")] >= 10
    values = ds.dataset(tmp_path / "values", partitioning="hive").to_table().column("value")
    assert sorted(values.to_pylist())[:10] == list(range(10))


def test_disk_full_in_background_thread_is_reported(tmp_path, monkeypatch):
    w = DatasetWriter(tmp_path, flush_interval=0.05)
    monkeypatch.setattr(dataset_mod._Segment, "write", _fail_with(errno.ENOSPC))
    w.append_values("s", T0, 101, 3000, 1.0)
    deadline = time.monotonic() + 10
    while w.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert isinstance(w.error, StorageError)
    with pytest.raises(StorageError, match="disk full"):
        w.append_values("s", T0, 101, 3000, 1.0)
    with pytest.raises(StorageError):
        w.close()


def test_disk_full_while_compacting_leaves_no_partial_file(tmp_path, monkeypatch):
    w = DatasetWriter(tmp_path, flush_interval=3600)
    w.append_values("s", T0 + np.arange(100), 101, 3000, np.arange(100))
    w.flush()
    real_write_table = pq.ParquetWriter.write_table

    def half_then_fail(self, table, *args, **kwargs):
        real_write_table(self, table.slice(0, 10), *args, **kwargs)  # bytes hit the temp file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", half_then_fail)
    with pytest.raises(StorageError, match="disk full"):
        w.close()
    monkeypatch.undo()
    # no temporary or partial file anywhere in the dataset
    assert not [p for p in (tmp_path / "values").rglob("*") if p.is_file()]
    assert DatasetWriter.recover(tmp_path) == {("values", "s"): 100}
    assert ds.dataset(tmp_path / "values", partitioning="hive").count_rows() == 100


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the output folder") as info:
        DatasetWriter(blocker / "data")
    assert str(blocker) in str(info.value)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_read_only_folder_is_a_clear_error(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    w = DatasetWriter(out, flush_interval=3600)
    try:
        (out / JOURNAL_DIR).chmod(0o500)
        w.append_values("s", T0, 101, 3000, 1.0)
        with pytest.raises(StorageError, match="Permission denied"):
            w.flush()
    finally:
        (out / JOURNAL_DIR).chmod(0o755)
        with pytest.raises(StorageError):
            w.close()


def test_incompatible_segment_is_set_aside_not_blocking(tmp_path):
    segment = _segment_with_batches(tmp_path, n_batches=1)
    other = segment.with_name("20240101T000000-deadbeef.arrows")
    with pa.OSFile(str(other), "wb") as sink:  # a journal of some other schema
        schema = pa.schema([("time", pa.string())])
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_batch(pa.record_batch([pa.array(["x"])], schema=schema))
    assert DatasetWriter.recover(tmp_path) == {("values", "s"): 10}
    assert other.with_name(other.name + ".bad").exists() and not other.exists()
