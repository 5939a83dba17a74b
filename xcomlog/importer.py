"""Import SD-card datalogs into the dataset: the ``values``, ``parameters`` and ``devices``
tables beside what the live logger writes, idempotently.

Every source day ``LGyymmdd`` is written as ``<table>/site=S/date=D/sd-LGyymmdd.parquet`` in
each UTC-date partition its rows touch (a local day spans two UTC dates), so importing the
same day again replaces its files instead of adding rows, and a later full copy of a day
replaces an earlier truncated one. A copy with fewer values than what is stored is kept out
(nothing recorded is lost) unless ``force`` is given.
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
#: Tables an imported day writes, each replaced as a whole on re-import.
DAY_TABLES = ("values", "parameters", "devices")

_DATALOG_NAME = re.compile(r"^LG\d{6}.*\.csv$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclasses.dataclass
class FileReport:
    """What became of one source file."""

    source: str
    status: str  # "imported" | "kept" (a more complete copy is stored) | "failed"
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
    """(address, number, name, unit, family, kind): the catalog's name and unit, else the CSV
    label (numbers the appendix does not list, such as I17999 "Solar power (ALL)")."""
    from .catalog import load_catalog

    cat = load_catalog()
    out = []
    for address, number, name, unit, family, kind in datalog.labels():
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

    @property
    def total(self) -> int:
        return sum(t.num_rows for p in self.parts.values() for t in p.values())

    def count(self, table: str) -> int:
        return sum(t.num_rows for t in self.parts[table].values())


def prepare_day(datalog: Datalog, tz: str | dt.tzinfo, source: str | None = None) -> PreparedDay:
    """Compute the values, parameters and devices tables of a parsed day (no I/O)."""
    utc = datalog.utc_ms(tz)
    trailer_ms = datalog.trailer_time_ms(tz, utc)
    trailer_date = _date(trailer_ms // DAY_MS)
    params = parameters_table(datalog, trailer_ms)
    devices = devices_table(datalog, trailer_ms)
    issues = []
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
    )


def store_day(
    day: PreparedDay, *, site: str, out: str | os.PathLike, force: bool = False
) -> FileReport:
    """Write a prepared day, replacing that source day's earlier import unless the stored
    copy has more rows (then nothing is written and the report says "kept")."""
    out = Path(out)
    datalog = day.datalog
    report = FileReport(source=day.source, status="imported", key=datalog.key)
    report.issues = list(datalog.issues) + day.issues
    report.truncated = datalog.truncated
    report.rows = datalog.rows
    window = _day_window(datalog) | {d for p in day.parts.values() for d in p}
    stored = sum(_stored_rows(_existing(out, t, site, window, datalog.key)) for t in DAY_TABLES)
    if stored > day.total and not force:
        report.status = "kept"
        report.reason = (
            f"{datalog.key} is already imported with more data ({stored:,} rows stored, "
            f"this copy has {day.total:,}); use --force to replace it"
        )
        return report
    if day.total == 0:
        report.status = "failed"
        report.reason = "no complete data row and no trailer: nothing to import"
        return report
    common = {
        dataset.META_SITE: site,
        b"xcomlog.source": Path(day.source).name,
        b"xcomlog.sd_version": datalog.version,
    }
    kinds = {"values": "info", "parameters": "parameter"}
    for table_name in DAY_TABLES:
        labels = [label for label in day.labels if label[5] == kinds.get(table_name)]
        parts = day.parts[table_name]
        # Labels go in the footer of the day's main file only: the spill-over hour into the
        # neighbouring UTC date would otherwise carry more label JSON than data.
        main = max(parts, key=lambda d: parts[d].num_rows) if parts else None
        metadata = {
            d: {**common, dataset.META_DATAPOINTS: dataset.labels_metadata(labels)}
            if labels and d == main
            else common
            for d in parts
        }
        report.written += _write_day_table(
            out, table_name, site, datalog.key, parts, window, metadata
        )
    report.values = day.count("values")
    report.parameters = day.count("parameters")
    report.devices = day.count("devices")
    return report


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
                future = writer.submit(store_day, day, site=site, out=out, force=force)
            except (DatalogError, OSError) as exc:
                if isinstance(exc, DatalogError):
                    reason = str(exc).removeprefix(f"{Path(name).name}: ")
                else:
                    reason = f"cannot read: {exc.strerror or exc}"
                future = Future()
                future.set_result(FileReport(source=name, status="failed", reason=reason))
            pending.append((future, day))
            while len(pending) > 2 or (pending and pending[0][0].done()):
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    bar.update(len(sources), "done")
    bar.close()
    if labels:
        stored = dataset.read_labels(out, site)
        missing = [label for key, label in labels.items() if key not in stored]
        if missing:  # the live logger's (appendix) labels are never overwritten
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
