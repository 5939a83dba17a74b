"""Storage benchmarks: bytes per value for Parquet layout choices, and rows/s written.

Bytes per value are measured on the real Studer SD-card datalogs in ../shared (1-minute
values of real installations) and on synthetic 1-second live data; every candidate
(sort order, encodings, compression) is written side by side from the same rows, so the
ratios are comparable. The choice in xcomlog.dataset.VALUES_WRITE_OPTIONS is the result.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from xcomlog import dataset as dsmod

SD_DATALOG = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sd-datalog"

_FAMILY_BASE = {3: 100, 7: 600, 11: 300, 15: 700, 17: 500}  # number // 1000 -> address base


def _sd_long(path: Path) -> tuple[pa.Table, int]:
    """A minimal reader of one SD-card CSV into the long values table, for measuring only
    (xcomlog.sdcard is the real importer). Returns the table and the CSV's data bytes."""
    text = path.read_bytes().decode("latin-1")
    lines = text.splitlines()
    sep = ";" if lines[0].count(";") > lines[0].count(",") else ","
    numbers = lines[1].split(sep)
    devices = lines[2].split(sep)
    cols = []
    for i, (tok, dev) in enumerate(zip(numbers, devices, strict=False)):
        m = re.fullmatch(r"I(\d+)", tok.strip())
        if not m:
            continue
        number = int(m.group(1))
        idx = re.findall(r"\d+", dev)
        base = _FAMILY_BASE.get(number // 1000, 500)
        address = base + (int(idx[-1]) if idx else 0)
        cols.append((i, address, number))
    times, addrs, nums, vals = [], [], [], []
    data_bytes = 0
    for line in lines[3:]:
        m = re.match(r"(\d\d)\.(\d\d)\.(\d{4}) (\d\d):(\d\d)", line)
        if not m:
            continue
        data_bytes += len(line) + 2
        d, mo, y, h, mi = (int(g) for g in m.groups())
        t = int(np.datetime64(f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}", "ms").astype(np.int64))
        cells = line.split(sep)
        for i, address, number in cols:
            if i >= len(cells):
                continue
            try:
                v = float(cells[i])
            except ValueError:
                continue
            times.append(t)
            addrs.append(address)
            nums.append(number)
            vals.append(v)
    table = pa.table(
        {
            "time": pa.array(times, pa.timestamp("ms", tz="UTC")).cast(dsmod.TIME_TYPE),
            "address": pa.array(addrs, pa.uint16()),
            "number": pa.array(nums, pa.uint16()),
            "value": pa.array(vals, pa.float32()),
        },
        schema=dsmod.VALUES_SCHEMA,
    )
    return table, data_bytes


def _synthetic_live(seconds: int, points: int = 100, seed: int = 0) -> pa.Table:
    """1-second polling of ``points`` datapoints on 4 devices: slow random walks at sensor
    resolution, some constant states, as a live logger would see them."""
    rng = np.random.default_rng(seed)
    t = 1_718_000_000_000 + np.arange(seconds, dtype=np.int64) * 1000
    cols_t, cols_a, cols_n, cols_v = [], [], [], []
    for k in range(points):
        address = (101, 301, 601, 701)[k % 4]
        number = 3000 + k
        kind = k % 3
        if kind == 0:  # a state or mode: mostly constant
            v = np.repeat(rng.integers(0, 5, seconds // 600 + 1), 600)[:seconds]
        elif kind == 1:  # a voltage: random walk at 0.01 resolution
            v = np.round(48 + np.cumsum(rng.normal(0, 0.02, seconds)), 2)
        else:  # a power: noisy, 3 decimals
            v = np.round(np.abs(2 + np.cumsum(rng.normal(0, 0.01, seconds))), 3)
        cols_t.append(t + (k // 25))  # frames of the same cycle a few ms apart
        cols_a.append(np.full(seconds, address, np.uint16))
        cols_n.append(np.full(seconds, number, np.uint16))
        cols_v.append(v.astype(np.float32))
    return pa.table(
        {
            "time": pa.array(np.concatenate(cols_t), pa.timestamp("ms", tz="UTC")).cast(
                dsmod.TIME_TYPE
            ),
            "address": np.concatenate(cols_a),
            "number": np.concatenate(cols_n),
            "value": np.concatenate(cols_v),
        },
        schema=dsmod.VALUES_SCHEMA,
    )


TIME_MAJOR = [("time", "ascending"), ("address", "ascending"), ("number", "ascending")]

CANDIDATES: dict[str, tuple[list, dict]] = {
    "zstd9 dict, series-sorted, delta time (chosen)": (
        dsmod.VALUES_SORT,
        dsmod.VALUES_WRITE_OPTIONS,
    ),
    "zstd9 dict, time-sorted, delta time": (TIME_MAJOR, dsmod.VALUES_WRITE_OPTIONS),
    "zstd9 all dictionary, series-sorted": (
        dsmod.VALUES_SORT,
        {"compression": "zstd", "compression_level": 9, "use_dictionary": True},
    ),
    "zstd9 byte-stream-split value, series-sorted": (
        dsmod.VALUES_SORT,
        {
            "compression": "zstd",
            "compression_level": 9,
            "use_dictionary": ["address", "number"],
            "column_encoding": {"time": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
        },
    ),
    "zstd3 dict, series-sorted, delta time": (
        dsmod.VALUES_SORT,
        {**dsmod.VALUES_WRITE_OPTIONS, "compression_level": 3},
    ),
    "zstd19 dict, series-sorted, delta time": (
        dsmod.VALUES_SORT,
        {**dsmod.VALUES_WRITE_OPTIONS, "compression_level": 19},
    ),
    "snappy dict, series-sorted, delta time": (
        dsmod.VALUES_SORT,
        {**dsmod.VALUES_WRITE_OPTIONS, "compression": "snappy", "compression_level": None},
    ),
    "pyarrow defaults (snappy, unsorted)": (None, {"compression": "snappy"}),
}


def _parquet_size(table: pa.Table, sort, options: dict) -> tuple[int, float]:
    if sort is not None:
        table = table.sort_by(sort)
    sink = io.BytesIO()
    opts = dict(options)
    if opts.get("compression_level") is None:
        opts.pop("compression_level", None)
    start = time.perf_counter()
    pq.write_table(table, sink, **opts)
    return sink.tell(), time.perf_counter() - start


def bytes_per_value(tables: list[pa.Table], label: str, csv_bytes: int = 0) -> list[dict]:
    """One row per candidate: bytes per value over ``tables`` (one Parquet file each)."""
    n = sum(t.num_rows for t in tables)
    out = []
    for name, (sort, options) in CANDIDATES.items():
        size, secs = 0, 0.0
        for t in tables:
            s, dt_ = _parquet_size(t, sort, options)
            size += s
            secs += dt_
        out.append(
            {
                "benchmark": f"storage bytes/value {label}",
                "metric": name,
                "value": size / n,
                "unit": "B/value",
                "values": n,
                "write_rows_per_s": n / secs if secs else None,
            }
        )
    if csv_bytes:
        chosen = out[0]["value"]
        for row in out:
            row["csv_over_this"] = round(csv_bytes / n / row["value"], 1)
        out.append(
            {
                "benchmark": f"storage bytes/value {label}",
                "metric": "Studer SD-card CSV (same values)",
                "value": csv_bytes / n,
                "unit": "B/value",
                "values": n,
                "csv_over_chosen": round(csv_bytes / n / chosen, 1),
            }
        )
    return out


def file_granularity(table: pa.Table, label: str) -> list[dict]:
    """Hourly files (the writer's default rotation) against one file per day."""
    sort, options = CANDIDATES["zstd9 dict, series-sorted, delta time (chosen)"]
    t = table.column("time").cast(pa.int64()).to_numpy() // 1000  # µs -> ms
    hours = t // 3_600_000
    hourly = 0
    for h in np.unique(hours):
        hourly += _parquet_size(table.filter(pa.array(hours == h)), sort, options)[0]
    daily = _parquet_size(table, sort, options)[0]
    n = table.num_rows
    return [
        {
            "benchmark": f"storage bytes/value {label}",
            "metric": "chosen, hourly files (rotate_interval=3600)",
            "value": hourly / n,
            "unit": "B/value",
            "values": n,
        },
        {
            "benchmark": f"storage bytes/value {label}",
            "metric": "chosen, one file per day",
            "value": daily / n,
            "unit": "B/value",
            "values": n,
        },
    ]


def writer_throughput(total: int, chunk: int = 76) -> list[dict]:
    """Rows/s through DatasetWriter fed like the logger feeds it: synthetic live rows in
    time order, appended in multi-info-frame-sized chunks (``chunk`` values), then flush +
    close (journal and Parquet); with CPU seconds per million values and bytes written."""
    live = _synthetic_live(max(1, total // 100)).sort_by([("time", "ascending")])
    t = live.column("time").cast(pa.int64()).to_numpy() // 1000  # µs -> ms
    a = live.column("address").to_numpy()
    n = live.column("number").to_numpy()
    v = live.column("value").to_numpy()
    bounds = range(0, live.num_rows, chunk)
    with tempfile.TemporaryDirectory() as tmp:
        w = dsmod.DatasetWriter(tmp, flush_interval=1.0)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in bounds:
            j = i + chunk
            w.append_values("bench", t[i:j], a[i:j], n[i:j], v[i:j])
        t_append = time.perf_counter() - t0
        w.flush()
        journal = w.stats["journal_bytes"]
        w.close()
        t_all = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        rows = w.stats["rows_compacted"]
        size = sum(f.stat().st_size for f in Path(tmp, "values").rglob("*.parquet"))
    common = {"benchmark": "storage writer", "values": rows}
    return [
        {
            **common,
            "metric": f"append_values rows/s ({chunk}-value chunks, caller side)",
            "value": rows / t_append,
            "unit": "rows/s",
        },
        {
            **common,
            "metric": "end-to-end rows/s (append + journal + Parquet)",
            "value": rows / t_all,
            "unit": "rows/s",
        },
        {
            **common,
            "metric": "CPU seconds per million values (append + journal + Parquet)",
            "value": cpu / rows * 1e6,
            "unit": "s/Mvalue",
        },
        {
            **common,
            "metric": "journal bytes per value (zstd Arrow IPC, before compaction)",
            "value": journal / rows,
            "unit": "B/value",
            "parquet_bytes_per_value": size / rows,
        },
    ]


def run(quick: bool = False) -> list[dict]:
    """All storage benchmarks; ``quick`` uses less data (for CI smoke runs)."""
    results: list[dict] = []
    if SD_DATALOG.is_dir():
        files = sorted(SD_DATALOG.glob("*.CSV"))
        if quick:
            files = files[:1]
        tables, csv_bytes = [], 0
        for f in files:
            t, nbytes = _sd_long(f)
            tables.append(t)
            csv_bytes += nbytes
        results += bytes_per_value(tables, "SD-card real data, 1 file/day", csv_bytes)
    live = _synthetic_live(600 if quick else 3600 * 2)
    results += bytes_per_value([live], "synthetic 1 s live data")
    results += file_granularity(live, "synthetic 1 s live data")
    results += writer_throughput(200_000 if quick else 2_000_000)
    return results


if __name__ == "__main__":  # pragma: no cover
    quick = os.environ.get("QUICK", "") not in ("", "0")
    for row in run(quick=quick):
        extra = {k: v for k, v in row.items() if k not in ("benchmark", "metric", "value", "unit")}
        print(
            f"{row['benchmark']:45s} {row['metric']:55s} {row['value']:12.3f} {row['unit']} {extra}"
        )
