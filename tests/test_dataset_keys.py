"""Keys are unique (issue 15 item 5): (time, address, number) never repeats, even with
``interval = 0`` over a fast loopback link, where a series is read several times per ms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xcomlog
from xcomlog.cli import main
from xcomlog.dataset import TIME_TYPE, DatasetWriter
from xcomlog.sim import Simulator
from xcomlog.storage.dataset_writer import unique_series_times

pd = pytest.importorskip("pandas")
duckdb = pytest.importorskip("duckdb")

T0 = 1_718_000_000_000


def test_time_unit_is_microseconds():
    assert str(TIME_TYPE) == "timestamp[us, tz=UTC]"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=0, max_size=60
    ),  # (series, time in ms)
    st.integers(1, 4),
)
def test_unique_series_times_property(rows, calls):
    """Unique per series across calls (times that never go back, as the logger's clock
    gives them), never earlier than the real time nor past its millisecond."""
    rows = sorted(rows, key=lambda r: r[1])
    last: dict[int, int] = {}
    seen: dict[int, list[int]] = {}
    chunks = np.array_split(np.arange(len(rows)), calls)
    for chunk in chunks:
        key = np.array([rows[i][0] for i in chunk], np.uint32)
        t = np.array([rows[i][1] * 1000 for i in chunk], np.int64)
        out = unique_series_times(key, t.copy(), last)
        assert np.all(out >= t) and np.all(out - t < 1000)  # within the same millisecond
        for k, x in zip(key.tolist(), out.tolist(), strict=True):
            seen.setdefault(k, []).append(x)
    for times in seen.values():
        assert len(set(times)) == len(times)


def test_same_millisecond_rows_get_distinct_keys(tmp_path):
    with DatasetWriter(tmp_path) as w:
        for _ in range(3):  # three flushes of the same millisecond
            w.append_values("s", np.full(4, T0), 101, 3000, np.arange(4))
            w.append_parameters("s", [{"time_ms": T0, "address": 101, "number": 1138, "value": 2}])
            w.flush()
    long = xcomlog.read(tmp_path, wide=False)
    assert len(long) == 12 and not long.duplicated(["time", "address", "number"]).any()
    assert (long["time"].dt.floor("ms") == pd.Timestamp(T0, unit="ms", tz="UTC")).all()
    params = xcomlog.read(tmp_path, table="parameters")
    assert len(params) == 3 and not params.duplicated(["time", "address", "number"]).any()


@pytest.mark.timeout(120)
def test_interval_zero_over_loopback_has_no_duplicate_key(tmp_path, capsys):
    sim = Simulator(seed=9)
    with sim.serve_tcp("127.0.0.1", 0) as link:
        host, port = link.address
        args = ["log", "--tcp", f"{host}:{port}", "--out", str(tmp_path), "--site", "fast"]
        args += ["--interval", "0", "--points", "3000", "--devices", "xt1", "--no-status"]
        args += ["--duration", "3", "--flush-interval", "0.5"]
        assert main(args) == 0
    df = pd.read_parquet(tmp_path / "values")
    assert len(df) > 500
    per_ms = df["time"].dt.floor("ms").value_counts()
    assert per_ms.max() > 1, "the link was not fast enough to read a series twice per ms"
    assert not df.duplicated(["time", "address", "number"]).any()
    con = duckdb.connect()
    rows, distinct = con.execute(
        "select count(*), count(distinct (time, address, number)) "
        "from read_parquet(?, hive_partitioning = true)",
        [str(tmp_path / "values" / "**" / "*.parquet")],
    ).fetchone()
    assert rows == distinct == len(df)
    long = xcomlog.read(tmp_path, wide=False)
    assert len(long) == len(df)
