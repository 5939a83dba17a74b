"""Crash leftovers are cleaned at the next start (issue 15 item 9): temporary files of dead
writers are removed, finished days left unmerged are merged, rows are kept once."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow.dataset as ds
import pytest

from xcomlog.dataset import (
    DAY_PREFIX,
    JOURNAL_DIR,
    LIVE_PREFIX,
    TMP_SUFFIX,
    DatasetWriter,
    day_of_ms,
    partition_dir,
)

DAY_MS = 86_400_000
T0 = 1_718_000_000_000  # 2024-06-10: a finished day


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def unmerged_days(out, days: int = 3, parts: int = 4) -> int:
    """Write ``days`` finished days as ``parts`` live-* files each (one writer per part, so
    no merge happens), then put a crash's leftovers around them. Returns the rows."""
    rows = 0
    for p in range(parts):
        w = DatasetWriter(out, merge_days=False)
        for d in range(days):
            t = T0 + d * DAY_MS + p * 1000 + np.arange(10)
            w.append_values("s", t, 101, 3000, np.arange(10) + rows)
            rows += 10
        w.close()
    return rows


def values(out):
    return ds.dataset(out / "values", format="parquet", partitioning="hive").to_table()


def test_start_removes_dead_writers_tmp_files_and_merges_finished_days(tmp_path):
    rows = unmerged_days(tmp_path)
    folders = [partition_dir(tmp_path, "values", "s", day_of_ms(T0 + d * DAY_MS)) for d in range(3)]
    assert all(len(list(f.glob(f"{LIVE_PREFIX}*.parquet"))) == 4 for f in folders)
    # a crash mid-compaction: half-written Parquet files and a merge manifest's tmp file
    pid = dead_pid()
    leftovers = [
        folders[0] / f".day-2024-06-10.parquet.{pid}-0123abcd{TMP_SUFFIX}",
        folders[1] / f".live-x.parquet.{pid}-89abcdef{TMP_SUFFIX}",
        tmp_path / JOURNAL_DIR / "merges" / f".values~s~2024-06-12.json.{pid}-00000000{TMP_SUFFIX}",
        folders[2] / f".live-old-format.parquet.0123abcd{TMP_SUFFIX}",  # no pid: by age
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 cut by a crash")
    old = time.time() - 2 * 3600
    os.utime(leftovers[-1], (old, old))
    # a live writer's temporary file (this process) and a fresh one without pid stay
    alive = folders[1] / f".live-y.parquet.{os.getpid()}-fedcba98{TMP_SUFFIX}"
    fresh = folders[2] / f".live-new.parquet.76543210{TMP_SUFFIX}"
    for path in (alive, fresh):
        path.write_bytes(b"being written")

    w = DatasetWriter(tmp_path)
    try:
        assert not any(p.exists() for p in leftovers)
        assert alive.exists() and fresh.exists()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # merged by the writer's thread, one per turn
            if all(len(list(f.glob("*.parquet"))) == 1 for f in folders):
                break
            time.sleep(0.05)
        for d, folder in enumerate(folders):
            (merged,) = folder.glob("*.parquet")
            assert merged.name == f"{DAY_PREFIX}{day_of_ms(T0 + d * DAY_MS).isoformat()}.parquet"
    finally:
        w.close()
    table = values(tmp_path)
    assert table.num_rows == rows
    np.testing.assert_array_equal(np.sort(table.column("value").to_numpy()), np.arange(rows))
    alive.unlink()
    fresh.unlink()


def test_leftover_journal_of_a_finished_day_is_recovered_then_merged(tmp_path):
    """A kill mid-day leaves the day's journal; the next start compacts it and, the day
    being over, merges it with the day's other files: one file, every row once."""
    rows = unmerged_days(tmp_path, days=1, parts=2)
    w = DatasetWriter(tmp_path, merge_days=False)
    w.append_values("s", T0 + 5000 + np.arange(10), 101, 3000, np.arange(10) + rows)
    w.flush()
    rows += 10
    saved = tmp_path.parent / "saved-journal"
    shutil.copytree(tmp_path / JOURNAL_DIR, saved)
    w.close()
    # the kill: the journal is back, the compacted file of that segment was never made
    newest = max((tmp_path / "values").rglob(f"{LIVE_PREFIX}*.parquet"), key=os.path.getmtime)
    newest.unlink()
    shutil.rmtree(tmp_path / JOURNAL_DIR)
    shutil.copytree(saved, tmp_path / JOURNAL_DIR)
    (tmp_path / JOURNAL_DIR / ".lock").unlink(missing_ok=True)

    with DatasetWriter(tmp_path) as again:
        assert again.recovered[("values", "s")] == 10
        folder = partition_dir(tmp_path, "values", "s", day_of_ms(T0))
        deadline = time.monotonic() + 20
        while len(list(folder.glob("*.parquet"))) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [p.name for p in folder.glob("*.parquet")] == [f"{DAY_PREFIX}2024-06-10.parquet"]
    table = values(tmp_path)
    assert table.num_rows == rows
    np.testing.assert_array_equal(np.sort(table.column("value").to_numpy()), np.arange(rows))


@pytest.mark.parametrize("merge_days", [False])
def test_no_merge_when_merging_is_off(tmp_path, merge_days):
    unmerged_days(tmp_path, days=1, parts=3)
    with DatasetWriter(tmp_path, merge_days=merge_days):
        time.sleep(0.3)
    folder = partition_dir(tmp_path, "values", "s", dt.date(2024, 6, 10))
    assert len(list(folder.glob(f"{LIVE_PREFIX}*.parquet"))) == 3
