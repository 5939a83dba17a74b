"""Import SD-card datalogs into the dataset: the ``values``, ``parameters`` and ``devices``
tables beside what the live logger writes, idempotently.

Every source day ``LGyymmdd`` is written as ``<table>/site=S/date=D/sd-LGyymmdd.parquet`` in
each UTC-date partition its rows touch (a local day spans two UTC dates), so importing the
same day again never adds a row twice.

Copies of a day are merged value by value, so a damaged copy never replaces good data:
within a file a repeated minute is kept once (the first), rows dated outside the file's
day are left out and reported, and a later copy only adds the values (time, address,
number) the stored import lacks; a value already stored is never changed, and the trailer
tables (parameters, devices, day counters) are taken from a copy only when none is stored.
A copy that adds nothing is reported "kept". ``force`` replaces the stored day with the
copy, as does a re-import in another time zone when the copy is not smaller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import logging
import os
import re
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import dataset, sdcard
from .exceptions import ConfigError, DatalogError
from .sdcard import Datalog, Issue, parse_datalog, zone

log = logging.getLogger("xcomlog.importer")

DAY_MS = 86_400_000
#: Parquet options of imported values: the live writer's sort order (address, number, time)
#: and delta-encoded time, but plain float32 values under zstd 6. On one-minute SD data that
#: is about 15 % smaller and 35 % cheaper to write than a dictionary of the values under
#: zstd 9 (benchmarks/import_bench.py measures both side by side on every run).
VALUES_WRITE_OPTIONS: dict = {
    "compression": "zstd",
    "compression_level": 6,
    "use_dictionary": ["address", "number"],
    "column_encoding": {"time": "DELTA_BINARY_PACKED", "value": "PLAIN"},
}
#: File name prefix of imported days in every table (the live logger uses other names).
PREFIX = "sd-"
#: Tables an imported day writes.
DAY_TABLES = ("values", "parameters", "devices")
#: Footer key of the time zone an imported day was read in (a re-import in another zone
#: moves the day instead of merging).
META_TZ = b"xcomlog.tz"

_DATALOG_NAME = re.compile(r"^LG\d{6}.*\.csv$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclasses.dataclass
class FileReport:
    """What became of one source file."""

    source: str
    status: str  # "imported" | "kept" (the stored copy holds all this one has) | "failed"
    key: str | None = None  # LGyymmdd
    reason: str = ""
    rows: int = 0
    values: int = 0
    parameters: int = 0
    devices: int = 0
    truncated: bool = False
    issues: list[Issue] = dataclasses.field(default_factory=list)
    written: list[Path] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ImportSummary:
    """The outcome of an import: per file, and totals for the summary line."""

    out: Path
    site: str
    tz: str
    reports: list[FileReport] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def _imported(self) -> list[FileReport]:
        return [r for r in self.reports if r.status == "imported"]

    @property
    def files(self) -> int:
        """Files imported."""
        return len(self._imported())

    @property
    def rows(self) -> int:
        """Complete data rows (minutes) imported."""
        return sum(r.rows for r in self._imported())

    @property
    def values(self) -> int:
        """Rows written to the values table."""
        return sum(r.values for r in self._imported())

    @property
    def parameters(self) -> int:
        return sum(r.parameters for r in self._imported())

    @property
    def devices(self) -> int:
        return sum(r.devices for r in self._imported())

    @property
    def failed(self) -> list[FileReport]:
        return [r for r in self.reports if r.status == "failed"]

    @property
    def kept(self) -> list[FileReport]:
        return [r for r in self.reports if r.status == "kept"]

    @property
    def issues(self) -> list[tuple[str, Issue]]:
        """Every line, column or cell left out, with the file it came from."""
        return [(r.source, i) for r in self.reports for i in r.issues]

    def reasons(self) -> Counter:
        """How many lines, columns or cells were left out, per reason."""
        return Counter(issue.reason for _, issue in self.issues)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def format(self, *, details: int = 10) -> str:
        """The human summary printed at the end of ``xcomlog import``."""
        lines = [
            f"Imported {self.files} of {len(self.reports)} file(s) into {self.out} "
            f"(site {self.site}, zone {self.tz}) in {self.seconds:.1f} s: "
            f"{self.rows:,} rows, {self.values:,} values, {self.parameters:,} parameters, "
            f"{self.devices:,} devices"
        ]
        truncated = [r.source for r in self._imported() if r.truncated]
        if truncated:
            shown = ", ".join(Path(s).name for s in truncated[:details])
            more = f" and {len(truncated) - details} more" if len(truncated) > details else ""
            lines.append(f"Truncated (no trailer, day saved early or card pulled): {shown}{more}")
        for title, group in (("Kept out", self.kept), ("Failed", self.failed)):
            if group:
                lines.append(f"{title} {len(group)} file(s):")
                lines += [f"  {r.source}: {r.reason}" for r in group[:details]]
                if len(group) > details:
                    lines.append(f"  ... and {len(group) - details} more")
        issues = self.issues
        if issues:
            lines.append(f"Skipped {len(issues)} line(s), column(s) or cell(s):")
            for reason, count in self.reasons().most_common():
                lines.append(f"  {count:>6} x {reason}")
            for source, issue in issues[:details]:
                where = f"{Path(source).name}:{issue.line}" if issue.line else Path(source).name
                text = f": {issue.text}" if issue.text else ""
                lines.append(f"  {where} {issue.reason}{text}")
            if len(issues) > details:
                lines.append(f"  ... and {len(issues) - details} more (use -v to list all)")
        return "\n".join(lines)


class Progress:
    """A one-line progress bar on a terminal (nothing when the stream is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None, *, force: bool = False):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = total > 1 and (force or isatty())
        self._last = -1.0

    def update(self, done: int, label: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --- finding the files -------------------------------------------------------------------------


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named, ``LGyymmdd.CSV`` files inside folders (recursively), and glob matches.

    Raises DatalogError naming the first path that is neither, before anything is imported.
    """
    found: dict[Path, None] = {}
    for item in paths:
        text = os.fspath(item)
        path = Path(text)
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            matches = sorted(
                p for p in path.rglob("*") if p.is_file() and _DATALOG_NAME.match(p.name)
            )
            if not matches:
                raise DatalogError(f"{text}: no LGyymmdd.CSV datalog files in this folder")
            found.update(dict.fromkeys(matches))
        elif _GLOB_CHARS.search(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise DatalogError(f"{text}: no file matches this pattern")
            found.update(dict.fromkeys(matches))
        else:
            raise DatalogError(f"{text}: no such file or folder")
    return sorted(found, key=lambda p: (p.name.upper(), str(p)))


# --- tables ------------------------------------------------------------------------------------


def _long_table(
    datalog: Datalog, rows: np.ndarray | slice, utc: np.ndarray, counters: list, trailer_ms: int
) -> pa.Table:
    columns = datalog.columns
    times = utc[rows]
    n = len(times)
    order = sorted(range(len(columns)), key=lambda j: columns[j].key)
    addresses = np.array([columns[j].address for j in order], dtype=np.uint16)
    numbers = np.array([columns[j].number for j in order], dtype=np.uint16)
    cells = np.ascontiguousarray(datalog.data[rows][:, order].T).ravel()
    keep = ~np.isnan(cells)
    time_ = np.tile(times, len(order))[keep]
    address = np.repeat(addresses, n)[keep]
    number = np.repeat(numbers, n)[keep]
    value = cells[keep]
    if counters:  # merged into place: rows stay sorted by (address, number, time)
        time_ = np.concatenate([time_, np.full(len(counters), trailer_ms, dtype=np.int64)])
        address = np.concatenate([address, [c.address for c in counters]]).astype(np.uint16)
        number = np.concatenate([number, [c.number for c in counters]]).astype(np.uint16)
        value = np.concatenate([value, [c.value for c in counters]]).astype(np.float32)
        order_ = np.argsort((address.astype(np.uint32) << 16) | number, kind="stable")
        time_, address, number, value = (a[order_] for a in (time_, address, number, value))
    return pa.Table.from_arrays(
        [
            pa.array(time_.astype("datetime64[ms]"), type=dataset.TIME_TYPE),
            pa.array(address, type=pa.uint16()),
            pa.array(number, type=pa.uint16()),
            pa.array(value, type=pa.float32()),
        ],
        schema=dataset.VALUES_SCHEMA,
    )


def _counters(datalog: Datalog) -> list:
    """Daily counters not already a data column (those keep the column's minute values)."""
    taken = {c.key for c in datalog.columns}
    return [c for c in datalog.counters if (c.address, c.number) not in taken]


def values_table(datalog: Datalog, tz: str | dt.tzinfo) -> pa.Table:
    """The long values table of a datalog: one row per non-empty cell, plus the daily
    counters at the trailer time, sorted by address, number, time like the live writer's
    files (runs of one series compress far better than row order)."""
    utc = datalog.utc_ms(tz)
    trailer_ms = datalog.trailer_time_ms(tz, utc)
    return _long_table(datalog, slice(None), utc, _counters(datalog), trailer_ms)


def _values_by_date(datalog: Datalog, utc: np.ndarray, trailer_ms: int) -> dict:
    """The values table split by UTC date, built from the rows of each date directly."""
    row_days = utc // DAY_MS
    trailer_day = trailer_ms // DAY_MS
    counters = _counters(datalog)
    days = set(np.unique(row_days).tolist()) | ({trailer_day} if counters else set())
    out = {}
    for d in sorted(days):
        rows = slice(None) if len(days) == 1 else np.nonzero(row_days == d)[0]
        table = _long_table(datalog, rows, utc, counters if d == trailer_day else [], trailer_ms)
        if table.num_rows:
            out[_date(d)] = table
    return out


def _date(day_number: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))


def parameters_table(datalog: Datalog, trailer_ms: int) -> pa.Table:
    """The parameter lines of the trailer (PARAMETERS_SCHEMA), at the trailer time."""
    params = datalog.parameters
    return pa.Table.from_pydict(
        {
            "time": pa.array(np.full(len(params), trailer_ms, dtype="datetime64[ms]")),
            "address": [p.address for p in params],
            "number": [p.number for p in params],
            "value": [p.value for p in params],
            "text": [None] * len(params),
        },
        schema=dataset.PARAMETERS_SCHEMA,
    )


def devices_table(datalog: Datalog, trailer_ms: int) -> pa.Table:
    """The device inventory of the trailer (DEVICES_SCHEMA), at the trailer time."""
    devs = datalog.devices
    return pa.Table.from_pydict(
        {
            "time": pa.array(np.full(len(devs), trailer_ms, dtype="datetime64[ms]")),
            "address": [d.address for d in devs],
            "family": [d.family.value if d.family else None for d in devs],
            "device": [d.device for d in devs],
            "model": [d.model for d in devs],
            "firmware": [d.firmware for d in devs],
            "serial": [d.serial for d in devs],
            "detail": [d.detail or None for d in devs],
        },
        schema=dataset.DEVICES_SCHEMA,
    )


def _labels(datalog: Datalog) -> list[tuple]:
    """(address, number, name, unit, family, kind) of every number the import writes: data
    columns, day counters of the trailer and parameters. The catalog's name and unit, else
    the CSV label (numbers the appendix does not list, such as I17999 "Solar power (ALL)"),
    else for a counter line (which has no label) ``I<number> (day counter)``."""
    from .catalog import load_catalog

    cat = load_catalog()
    out = []
    columns = datalog.labels()
    columns += [
        (c.address, c.number, f"I{c.number} (day counter)", "", c.family.value if c.family else "",
         "info")
        for c in _counters(datalog)
    ]  # fmt: skip
    for address, number, name, unit, family, kind in columns:
        for dp in cat.find(number):
            if dp.kind == "info" and (not family or dp.family.value == family):
                name, unit = dp.name, dp.unit or unit
                break
        out.append((address, number, name, unit, family, kind))
    for p in datalog.parameters:
        for dp in cat.find(p.number):
            if dp.kind == "parameter" and (p.family is None or dp.family is p.family):
                family = p.family.value if p.family else ""
                out.append((p.address, p.number, dp.name, dp.unit, family, "parameter"))
                break
    return out


# --- writing -----------------------------------------------------------------------------------


def _day_window(datalog: Datalog) -> set[dt.date]:
    """UTC dates an import of this local day can touch whatever the zone (UTC-12..+14)."""
    day = datalog.day
    return {day + dt.timedelta(days=k) for k in (-1, 0, 1)}


def _existing(out: Path, table: str, site: str, days: Iterable[dt.date], key: str) -> list[Path]:
    name = f"{PREFIX}{key}.parquet"
    paths = (dataset.partition_dir(out, table, site, d) / name for d in sorted(days))
    return [p for p in paths if p.exists()]


def _stored_rows(paths: Iterable[Path]) -> int:
    total = 0
    for p in paths:
        try:
            total += pq.read_metadata(p).num_rows
        except (OSError, pa.ArrowException):
            pass  # unreadable: it will be replaced
    return total


def _write_day_table(
    out: Path,
    table_name: str,
    site: str,
    key: str,
    parts: dict[dt.date, pa.Table],
    window: set[dt.date],
    metadata: dict[dt.date, dict],
) -> list[Path]:
    """Write one table of one source day and remove its files from partitions it no longer
    touches (a re-import with another zone, say)."""
    written = []
    name = f"{PREFIX}{key}.parquet"
    for date, part in sorted(parts.items()):
        path = dataset.partition_dir(out, table_name, site, date) / name
        kwargs: dict = {"metadata": {**metadata[date], dataset.META_TABLE: table_name}}
        if table_name == "values":
            kwargs.update(VALUES_WRITE_OPTIONS)
        try:
            written.append(dataset.write_parquet_atomic(part, path, **kwargs))
        except OSError as exc:
            from .exceptions import StorageError

            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    for stale in _existing(out, table_name, site, window - set(parts), key):
        stale.unlink()
        dataset.fsync_dir(stale.parent)
    return written


@dataclasses.dataclass
class PreparedDay:
    """The tables of one source day, split by UTC date, ready to be written."""

    datalog: Datalog
    source: str
    parts: dict[str, dict[dt.date, pa.Table]]
    labels: list[tuple]
    issues: list[Issue] = dataclasses.field(default_factory=list)
    tz: str = ""

    @property
    def total(self) -> int:
        return sum(t.num_rows for p in self.parts.values() for t in p.values())

    def count(self, table: str) -> int:
        return sum(t.num_rows for t in self.parts[table].values())


def _rows_in_time_order(
    datalog: Datalog, tz: str | dt.tzinfo, issues: list[Issue]
) -> tuple[Datalog, np.ndarray]:
    """The datalog with its rows in time order, each UTC minute once (its first row: a
    file appended to itself, or a repeated line, adds nothing), and their UTC times."""
    utc = datalog.utc_ms(tz)
    if len(utc) < 2 or bool((np.diff(utc) > 0).all()):
        return datalog, utc
    _, first = np.unique(utc, return_index=True)  # sorted by time, first occurrences
    repeated = len(utc) - len(first)
    if repeated:
        issues.append(Issue(None, "repeated minutes kept once (the first row)", f"{repeated} rows"))
    cleaned = dataclasses.replace(
        datalog, local_times=datalog.local_times[first], data=datalog.data[first]
    )
    return cleaned, utc[first]


def prepare_day(datalog: Datalog, tz: str | dt.tzinfo, source: str | None = None) -> PreparedDay:
    """Compute the values, parameters and devices tables of a parsed day (no I/O)."""
    issues: list[Issue] = []
    datalog, utc = _rows_in_time_order(datalog, tz, issues)
    trailer_ms = datalog.trailer_time_ms(tz, utc)
    trailer_date = _date(trailer_ms // DAY_MS)
    params = parameters_table(datalog, trailer_ms)
    devices = devices_table(datalog, trailer_ms)
    gaps = sdcard.nonexistent_times(datalog.local_times, tz)
    if gaps:
        issues.append(
            Issue(
                None,
                f"rows at wall-clock times that do not exist in {tz} (a clock left on winter "
                "time? import with a fixed zone such as Etc/GMT-1)",
                f"{gaps} rows",
            )
        )
    return PreparedDay(
        datalog=datalog,
        source=source or datalog.name,
        parts={
            "values": _values_by_date(datalog, utc, trailer_ms),
            "parameters": {trailer_date: params} if params.num_rows else {},
            "devices": {trailer_date: devices} if devices.num_rows else {},
        },
        labels=_labels(datalog),
        issues=issues,
        tz=tz if isinstance(tz, str) else str(tz),
    )


def _read_stored(paths: list[Path], table: str) -> tuple[pa.Table, set[str]] | None:
    """The stored rows of one table of a day and the zones its files were read in; None
    when a file is unreadable (the copy then replaces it)."""
    tables, zones = [], set()
    try:
        for path in paths:
            part = pq.read_table(path, schema=dataset.SCHEMAS[table])
            zones.add((pq.read_metadata(path).metadata or {}).get(META_TZ, b"").decode())
            tables.append(part.replace_schema_metadata(None))
    except (OSError, pa.ArrowException, UnicodeDecodeError):
        return None
    if not tables:
        return dataset.SCHEMAS[table].empty_table(), zones
    return pa.concat_tables(tables), zones


def _series(table: pa.Table) -> np.ndarray:
    """One int64 per (address, number) of a values table."""
    address = table.column("address").to_numpy().astype(np.int64)
    return (address << 16) | table.column("number").to_numpy().astype(np.int64)


def _time_ms(table: pa.Table) -> np.ndarray:
    """The times of a table in ms since the epoch, whatever the stored unit (SD rows are
    whole minutes, so nothing is cut)."""
    ms = pc.cast(table.column("time"), pa.timestamp("ms", tz="UTC"), safe=False)
    return ms.cast(pa.int64()).to_numpy()


def _value_keys(table: pa.Table, t0: int) -> np.ndarray:
    """One int64 per (time, address, number) of a values table, times relative to ``t0``."""
    return ((_time_ms(table) - t0) << 32) | _series(table)


def _merge_values(stored: pa.Table, new: pa.Table, counters: set[tuple[int, int]]) -> pa.Table:
    """The rows of ``new`` that ``stored`` lacks: a (time, address, number) not stored, and
    day counters only for a counter not stored at all (its time follows the last row)."""
    if not new.num_rows:
        return new
    times = [_time_ms(t) for t in (stored, new)]
    t0 = int(min(t.min() for t in times if len(t)))
    span = max(int(t.max()) for t in times if len(t)) - t0
    if span >= 1 << 31:  # never for one day (3 days are 2.6e8 ms); keys would not fit
        raise DatalogError(f"stored and new rows span {span} ms, more than a day can")
    fresh = ~np.isin(_value_keys(new, t0), _value_keys(stored, t0))
    if counters:
        stored_series = np.unique(_series(stored))
        counter_series = np.array([(a << 16) | n for a, n in counters], dtype=np.int64)
        taken = np.intersect1d(counter_series, stored_series)
        fresh &= ~np.isin(_series(new), taken)
    return new.filter(pa.array(fresh))


def _by_date(table: pa.Table) -> dict[dt.date, pa.Table]:
    """A values table split by UTC date, each part sorted by (address, number, time)."""
    days = _time_ms(table) // DAY_MS
    out = {}
    for d in np.unique(days).tolist():
        part = table.filter(pa.array(days == d))
        out[_date(d)] = part.sort_by([("address", "ascending"), ("number", "ascending"),
                                      ("time", "ascending")])  # fmt: skip
    return out


def _write_tables(
    day: PreparedDay,
    parts: dict[str, dict[dt.date, pa.Table]],
    *,
    site: str,
    out: Path,
    window: set[dt.date],
) -> list[Path]:
    """Write the given tables of a day (each replacing that table's files of the day)."""
    datalog = day.datalog
    common = {
        dataset.META_SITE: site,
        b"xcomlog.source": Path(day.source).name,
        b"xcomlog.sd_version": datalog.version,
        META_TZ: day.tz,
    }
    kinds = {"values": "info", "parameters": "parameter"}
    written: list[Path] = []
    for table_name, table_parts in parts.items():
        labels = [label for label in day.labels if label[5] == kinds.get(table_name)]
        # Labels go in the footer of the day's main file only: the spill-over hour into the
        # neighbouring UTC date would otherwise carry more label JSON than data.
        main = max(table_parts, key=lambda d: table_parts[d].num_rows) if table_parts else None
        metadata = {
            d: {**common, dataset.META_DATAPOINTS: dataset.labels_metadata(labels)}
            if labels and d == main
            else common
            for d in table_parts
        }
        written += _write_day_table(
            out, table_name, site, datalog.key, table_parts, window, metadata
        )
    return written


def store_day(
    day: PreparedDay, *, site: str, out: str | os.PathLike, force: bool = False
) -> FileReport:
    """Write a prepared day, merged into that source day's earlier import (see the module
    docstring); with ``force`` the copy replaces it."""
    out = Path(out)
    datalog = day.datalog
    report = FileReport(source=day.source, status="imported", key=datalog.key)
    report.issues = list(datalog.issues) + day.issues
    report.truncated = datalog.truncated
    report.rows = datalog.rows
    window = _day_window(datalog) | {d for p in day.parts.values() for d in p}
    paths = {t: _existing(out, t, site, window, datalog.key) for t in DAY_TABLES}
    stored = {t: _read_stored(paths[t], t) for t in DAY_TABLES} if not force else {}
    zones = {z for found in stored.values() if found for z in found[1]}
    mergeable = (
        not force
        and any(paths.values())
        and all(found is not None for found in stored.values())
        and zones == {day.tz}
    )
    if mergeable:
        return _merge_day(day, report, {t: stored[t][0] for t in DAY_TABLES}, site, out, window)
    stored_rows = sum(_stored_rows(paths[t]) for t in DAY_TABLES)
    if stored_rows > day.total and not force:  # another zone, or files of an older version
        report.status = "kept"
        report.reason = (
            f"{datalog.key} is already imported with more data ({stored_rows:,} rows stored, "
            f"this copy has {day.total:,}); use --force to replace it"
        )
        return report
    if day.total == 0:
        report.status = "failed"
        report.reason = "no complete data row and no trailer: nothing to import"
        return report
    report.written = _write_tables(day, day.parts, site=site, out=out, window=window)
    report.values = day.count("values")
    report.parameters = day.count("parameters")
    report.devices = day.count("devices")
    return report


def _merge_day(
    day: PreparedDay,
    report: FileReport,
    stored: dict[str, pa.Table],
    site: str,
    out: Path,
    window: set[dt.date],
) -> FileReport:
    """Add to the stored import of a day what this copy has and it lacks."""
    datalog = day.datalog
    new_values = pa.concat_tables(
        [dataset.VALUES_SCHEMA.empty_table(), *day.parts["values"].values()]
    )
    counters = {(c.address, c.number) for c in _counters(datalog)}
    added = _merge_values(stored["values"], new_values, counters)
    parts: dict[str, dict[dt.date, pa.Table]] = {}
    if added.num_rows:
        parts["values"] = _by_date(pa.concat_tables([stored["values"], added]))
    for table in ("parameters", "devices"):  # the trailer of the first copy that had one
        if not stored[table].num_rows and day.count(table):
            parts[table] = day.parts[table]
    counts = {t: stored[t].num_rows for t in DAY_TABLES}
    counts["values"] += added.num_rows
    for table in ("parameters", "devices"):
        if table in parts:
            counts[table] = day.count(table)
    if not parts:
        holds_less = day.total < sum(stored[t].num_rows for t in DAY_TABLES)
        if holds_less or not day.total:
            report.status = "kept"
            report.reason = (
                f"{datalog.key} is already imported with everything this copy holds "
                f"({sum(counts.values()):,} rows stored, this copy has {day.total:,}); "
                "use --force to replace it"
            )
            return report
    else:
        report.written = _write_tables(day, parts, site=site, out=out, window=window)
        report.reason = f"merged into the stored copy: {added.num_rows:,} values added" + "".join(
            f", {t} added" for t in ("parameters", "devices") if t in parts
        )
    report.values = counts["values"]
    report.parameters = counts["parameters"]
    report.devices = counts["devices"]
    return report


def _why(name: str, exc: BaseException) -> str:
    """One sentence for a file that could not be imported."""
    if isinstance(exc, DatalogError):
        return str(exc).removeprefix(f"{Path(name).name}: ")
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    log.debug("%s: unexpected %s", name, type(exc).__name__, exc_info=exc)
    return f"damaged beyond reading ({type(exc).__name__}: {str(exc)[:120]})"


def _store_or_fail(day: PreparedDay, *, site: str, out: Path, force: bool) -> FileReport:
    """store_day, with any error but a storage one (disk full: the import stops) reported
    as this file's failure."""
    from .exceptions import StorageError

    try:
        return store_day(day, site=site, out=out, force=force)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
        return FileReport(source=day.source, status="failed", reason=_why(day.source, exc))


def import_datalog(
    datalog: Datalog,
    *,
    site: str,
    tz: str | dt.tzinfo,
    out: str | os.PathLike,
    force: bool = False,
    source: str | None = None,
) -> FileReport:
    """Write one parsed day into the dataset (see the module docstring for the rules)."""
    return store_day(prepare_day(datalog, tz, source), site=site, out=out, force=force)


def _events_table(summary: ImportSummary, now_ms: int) -> pa.Table:
    rows = []
    for r in summary.reports:
        detail = f"{Path(r.source).name}: {r.status}"
        if r.status == "imported":
            detail += f", {r.rows} rows, {r.values} values"
            if r.truncated:
                detail += ", truncated"
        if r.reason:
            detail += f", {r.reason}"
        if r.issues:
            reasons = Counter(i.reason for i in r.issues)
            detail += "; skipped " + "; ".join(f"{n} x {why}" for why, n in reasons.items())
        rows.append(detail)
    return pa.Table.from_pydict(
        {
            "time": pa.array(np.full(len(rows), now_ms, dtype="datetime64[ms]")),
            "kind": ["import"] * len(rows),
            "address": pa.nulls(len(rows), pa.uint16()),
            "number": pa.nulls(len(rows), pa.uint16()),
            "detail": rows,
        },
        schema=dataset.EVENTS_SCHEMA,
    )


def _check_options(site: str, tz: str | dt.tzinfo) -> str:
    try:
        dataset.check_site(site)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    zone(tz)  # ConfigError for an unknown zone
    return tz if isinstance(tz, str) else str(tz)


def import_sources(
    sources: Sequence[tuple[str, bytes | Path]],
    *,
    site: str,
    tz: str | dt.tzinfo,
    out: str | os.PathLike,
    progress: bool | TextIO = True,
    force: bool = False,
    phase_columns: str = "auto",
    on_file: Callable[[FileReport], None] | None = None,
) -> ImportSummary:
    """Import datalogs given as (name, bytes or path): the core of ``import_paths`` and of a
    download over the link (``xcomlog files get --import``)."""
    tz_name = _check_options(site, tz)
    started = time.perf_counter()
    out = Path(out)
    summary = ImportSummary(out=out, site=site, tz=tz_name)
    stream = progress if not isinstance(progress, bool) else None
    bar = Progress(len(sources), stream, force=stream is not None)
    if progress is False:
        bar.enabled = False
    labels: dict[tuple[int, int], tuple] = {}
    pending: deque[tuple[Future, PreparedDay | None]] = deque()

    def finish(future: Future, day: PreparedDay | None) -> None:
        report = future.result()  # a StorageError (disk full) stops the import here
        summary.reports.append(report)
        if report.status == "imported" and day is not None:
            for label in day.labels:
                labels.setdefault((label[0], label[1]), label)
        elif report.status != "imported":
            log.warning("%s: %s (%s)", report.source, report.status, report.reason)
        if on_file is not None:
            on_file(report)

    # Parsing runs here while one writer thread compresses and fsyncs the previous day:
    # both release the GIL for most of their time. Days are written in order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xcomlog-import") as writer:
        for done, (name, content) in enumerate(sources):
            bar.update(done, Path(name).name)
            day = None
            try:
                data = content.read_bytes() if isinstance(content, Path) else bytes(content)
                datalog = parse_datalog(data, Path(name).name, phase_columns=phase_columns)
                day = prepare_day(datalog, tz, name)
                future = writer.submit(_store_or_fail, day, site=site, out=out, force=force)
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                future = Future()
                future.set_result(FileReport(source=name, status="failed", reason=_why(name, exc)))
            pending.append((future, day))
            while len(pending) > 2 or (pending and pending[0][0].done()):
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    bar.update(len(sources), "done")
    bar.close()
    if labels:
        stored = dataset.read_labels(out, site)
        # Labels of the live logger (the appendix's) are never overwritten; empty ones (an
        # older import's unnamed day counters) are filled in.
        missing = [
            label for key, label in labels.items() if key not in stored or not stored[key][2]
        ]
        if missing:
            dataset.write_labels(out, site, missing)
    if summary.reports:
        now = dt.datetime.now(dt.timezone.utc)
        now_ms = int(now.timestamp() * 1000)
        path = dataset.partition_dir(out, "events", site, now.date()) / (
            f"import-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}.parquet"
        )
        dataset.write_parquet_atomic(
            _events_table(summary, now_ms),
            path,
            metadata={dataset.META_SITE: site, dataset.META_TABLE: "events"},
        )
    summary.seconds = time.perf_counter() - started
    return summary


def import_paths(
    paths: Iterable[str | os.PathLike],
    *,
    site: str,
    tz: str | dt.tzinfo,
    out: str | os.PathLike,
    progress: bool | TextIO = True,
    force: bool = False,
    phase_columns: str = "auto",
) -> ImportSummary:
    """Import SD-card datalog files, folders (``LGyymmdd.CSV`` inside, recursively) and globs.

    ``tz`` is the zone of the datalogger's clock (``Europe/Zurich``; ``Etc/GMT-1`` for a clock
    that stays on winter time). Raises DatalogError before importing anything when a path
    does not exist, ConfigError for a bad site or zone; a file that cannot be read is reported
    as failed in the summary and the others are imported.
    """
    _check_options(site, tz)
    files = expand_paths(paths)
    return import_sources(
        [(str(p), p) for p in files],
        site=site,
        tz=tz,
        out=out,
        progress=progress,
        force=force,
        phase_columns=phase_columns,
    )


def import_bytes(
    name: str,
    data: bytes,
    *,
    site: str,
    tz: str | dt.tzinfo,
    out: str | os.PathLike,
    force: bool = False,
) -> ImportSummary:
    """Import one datalog held in memory (a file just downloaded over the link)."""
    return import_sources([(name, data)], site=site, tz=tz, out=out, progress=False, force=force)


__all__ = [
    "FileReport",
    "ImportSummary",
    "Progress",
    "expand_paths",
    "import_bytes",
    "import_datalog",
    "import_paths",
    "import_sources",
]
