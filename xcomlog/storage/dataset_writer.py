"""The writer thread: ``DatasetWriter`` buffers rows in memory, journals them, rotates and
compacts journal segments into Parquet and merges finished days, off the caller's thread.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..exceptions import ConfigError, StorageError, ValidationError
from .datapoint_labels import Label, normalize_labels, read_labels, write_labels
from .day_merge import merge_day, unmerged_days
from .journal import (
    JournalLock,
    compact_segment,
    open_segment,
    publish_segment,
    recover_journal,
)
from .layout import EPOCH_DATE, JOURNAL_DIR, check_site, partition_dir
from .parquet_files import remove_leftover_tmp
from .table_schemas import SCHEMAS, TIME_PER_DAY, TIME_PER_MS, TIME_TYPE, VALUES_SCHEMA

if TYPE_CHECKING:
    from .journal import _Segment

log = logging.getLogger("xcomlog.dataset")


#: Names a row dict may use for each column (the writer's contract uses ``*_ms``).
_ROW_ALIASES = {"time_ms": "time", "logged_ms": "logged"}


def _storage_error(exc: BaseException, root: Path, what: str) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        reason = "disk full (no space left on device)"
    where = getattr(exc, "filename", None) or root
    err = StorageError(
        f"cannot {what} in the dataset {root}: {reason} [{where}]. Logging stopped; rows "
        "already journalled are safe and will be recovered on the next start"
    )
    if isinstance(exc, OSError):
        err.errno = exc.errno
    return err


#: The longest interval the writer accepts (a day): beyond it ``Event.wait`` and wall-clock
#: slots overflow, and a journal flushed less often than daily defeats its purpose.
MAX_INTERVAL_S = 86_400.0


def _seconds(name: str, value) -> float:
    """An interval in seconds, refused with one clear sentence unless 0 < value <= a day."""
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = float("nan")
    if not 0 < seconds <= MAX_INTERVAL_S:
        raise ConfigError(
            f"{name} must be a number of seconds in (0, {MAX_INTERVAL_S:.0f}], got {value!r}"
        )
    return seconds


_INT_RANGES = {np.dtype(np.int64): (-(2**63), 2**63 - 1), np.dtype(np.uint16): (0, 0xFFFF)}


def _as_column(name: str, data, dtype, n: int) -> np.ndarray:
    """A fresh 1-D numpy column of ``dtype`` (the caller may reuse its buffers); scalars
    are broadcast to ``n``; non-integers and out-of-range integers are refused."""
    dtype = np.dtype(dtype)
    if type(data) is np.ndarray and data.dtype == dtype and data.ndim == 1:
        return data.copy()  # the fast path of the logger
    if isinstance(data, (int, np.integer)) and not isinstance(data, bool) and dtype.kind in "iu":
        low, high = _INT_RANGES[dtype]
        if not low <= data <= high:
            raise ValidationError(f"append_values: {name} out of range for {dtype.name} ({data})")
        return np.full(n, data, dtype)
    arr = np.asarray(data)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    if arr.ndim != 1:
        raise ValidationError(f"append_values: {name} must be a 1-D array, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64) and name == "time_ms":
        return arr.astype("datetime64[ms]").astype(np.int64)
    if dtype.kind in "iu":
        if arr.size and arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)):
                if np.any(arr != np.floor(arr)):
                    raise ValidationError(f"append_values: {name} must hold integers")
            else:
                raise ValidationError(
                    f"append_values: {name} must hold integers, got dtype {arr.dtype}"
                )
        low, high = _INT_RANGES[dtype]
        if arr.size and (arr.min() < low or arr.max() > high):
            raise ValidationError(
                f"append_values: {name} out of range for {dtype.name} ({arr.min()}..{arr.max()})"
            )
    try:
        return arr.astype(dtype)  # a copy
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"append_values: {name}: {exc}") from exc


#: Milliseconds that still fit in int64 once in microseconds (the year 294,000).
_MAX_MS = (2**63 - 1) // TIME_PER_MS


def _times(data, n: int) -> np.ndarray:
    """Times in TIME_TYPE ticks (µs) from int64 ms (or numpy datetime64 of any unit)."""
    if isinstance(data, np.ndarray) and np.issubdtype(data.dtype, np.datetime64):
        return data.astype("datetime64[us]").astype(np.int64).reshape(-1)
    ms = _as_column("time_ms", data, np.int64, n)
    if ms.size and (ms.min() < -_MAX_MS or ms.max() > _MAX_MS):
        raise ValidationError(f"append_values: time_ms out of range ({ms.min()}..{ms.max()})")
    return ms * TIME_PER_MS


def unique_series_times(key: np.ndarray, t: np.ndarray, last: dict[int, int]) -> np.ndarray:
    """Times made unique per series: within each ``key`` (address << 16 | number), in time
    then arrival order, a time not after the series' previous one becomes that one + 1 tick
    (1 µs). Across calls (``last``: key -> newest time stored, updated here) the count goes
    on within the same millisecond; a clock stepping back is left as it is.

    Real times are kept: the logger's times are milliseconds, so only the sub-ms part of
    the rows read several times within one millisecond (``interval = 0``) is used.
    """
    n = len(t)
    if n == 0:
        return t
    order = np.lexsort((t, key))
    k, ts = key[order], t[order]
    first = np.ones(n, bool)
    first[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    none = np.iinfo(np.int64).min
    seeds = np.array([last.get(int(x), none) for x in k[starts]], np.int64)
    same_ms = (seeds >= ts[starts]) & (seeds // TIME_PER_MS == ts[starts] // TIME_PER_MS)
    seeds = np.where(same_ms, seeds, none)
    clash = bool(np.any(~first[1:] & (ts[1:] <= ts[:-1]))) or bool(np.any(ts[starts] <= seeds))
    if clash:
        j = np.arange(n, dtype=np.int64) - starts[group]  # index within the series
        base = ts[starts][group]
        rel = ts - base - j  # ts[i] - i, relative to the series' first time
        big = int(rel.max() - rel.min()) + 1
        if len(starts) * big < 2**62:  # a per-series running max in one accumulate
            w = np.maximum.accumulate(rel + group * big) - group * big
        else:  # pragma: no cover - times years apart in one flush: a plain loop
            w = rel.copy()
            for i in range(1, n):
                if not first[i]:
                    w[i] = max(w[i], w[i - 1])
        seed_rel = np.where(seeds > none, seeds + 1 - ts[starts], none // 2)
        ts = base + j + np.maximum(w, seed_rel[group])
    ends = np.append(starts[1:], n) - 1
    last.update(zip(k[ends].tolist(), ts[ends].tolist(), strict=True))
    out = np.empty_like(t)
    out[order] = ts
    return out


class DatasetWriter:
    """Buffers rows in memory, journals them to Arrow IPC segments every ``flush_interval``
    (appended and fsynced) and compacts the journal into sorted zstd Parquet files at
    each rotation (wall-clock aligned ``rotate_interval``), at UTC day change and on close.

    Every ``publish_interval`` (60 s) the rows journalled so far are also published: each
    growing segment's ``live-*`` file is written, or replaced by a longer version, so plain
    Parquet readers see rows at most that old without more files (the rotation's compaction
    writes the same file name; a finished day is still merged into one file).
    ``xcomlog.read`` also reads the journal and sees rows up to the last flush.

    At start the writer recovers what a crash left: journal segments become Parquet,
    temporary files of dead writers are deleted, and finished days left unmerged are merged
    (one per turn of the thread, between flushes).

    ``append_*`` never touches the disk: a background thread does the I/O, so a slow disk
    never delays the caller. After a crash at most the last ``flush_interval`` of rows is
    lost; the next writer (or ``DatasetWriter.recover``) turns the journal into Parquet.
    When the disk fails (full, unwritable) the writer stops, ``error`` holds a
    ``StorageError`` and every later ``append_*``/``flush`` raises it.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        flush_interval: float = 10.0,
        rotate_interval: float = 3600.0,
        *,
        publish_interval: float = 60.0,
        max_buffer_rows: int = 2_000_000,
        max_segment_rows: int = 8_000_000,
        merge_days: bool = True,
        on_flush: Callable[[dict], None] | None = None,
    ) -> None:
        self.root = Path(out_dir)
        self.flush_interval = _seconds("flush_interval", flush_interval)
        self.rotate_interval = _seconds("rotate_interval", rotate_interval)
        self.publish_interval = _seconds("publish_interval", publish_interval)
        self.max_buffer_rows = int(max_buffer_rows)
        self.max_segment_rows = int(max_segment_rows)
        self.merge_days = bool(merge_days)
        self.on_flush = on_flush
        self.error: BaseException | None = None
        self._closed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = JournalLock(self.root)
        except OSError as exc:
            raise _storage_error(exc, self.root, "create the output folder") from exc
        self._labels: dict[str, dict[tuple[int, int], Label]] = {}
        self._sites_ok: set[str] = set()
        self._buf_lock = threading.Lock()
        self._io_lock = threading.RLock()
        self._buffers: dict[tuple[str, str], list] = {}
        self._buffered_rows = 0
        self._segments: dict[tuple[str, str, dt.date], _Segment] = {}
        self._pending: list[tuple[tuple[str, str, dt.date], Path]] = []
        self._compact_lock = threading.Lock()
        self._latest_day: dict[tuple[str, str], dt.date] = {}
        self._newest: dict[tuple[str, str], dict[int, int]] = {}  # see unique_series_times
        self._stats = {
            "rows_appended": 0,
            "rows_journalled": 0,
            "rows_compacted": 0,
            "rows_recovered": 0,
            "flushes": 0,
            "files": 0,
            "bytes": 0,
            "journal_bytes": 0,
            "last_flush": None,
            "publishes": 0,
            "last_publish": None,
        }
        try:
            recovered = recover_journal(self.root)
            self.leftovers_removed = remove_leftover_tmp(self.root)
            today = dt.datetime.now(dt.timezone.utc).date()
            self._leftover_days = unmerged_days(self.root, today) if self.merge_days else []
        except BaseException as exc:
            self._lock.release()
            if isinstance(exc, OSError):
                raise _storage_error(exc, self.root, "recover the journal") from exc
            raise
        now_ms = int(time.time() * 1000)
        for (table_name, site), rows in recovered.items():
            self._stats["rows_recovered"] += rows
            self.append_events(
                site,
                [
                    {
                        "time_ms": now_ms,
                        "kind": "recovered",
                        "detail": f"{rows} {table_name} rows recovered from the journal "
                        "after an unclean stop",
                    }
                ],
            )
        self.recovered = recovered
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xcomlog-writer", daemon=True)
        self._thread.start()

    # -- public API ----------------------------------------------------------------------

    @classmethod
    def recover(cls, out_dir: str | os.PathLike) -> dict:
        """Compact whatever a crashed writer left in ``OUT/_journal`` into Parquet.

        Returns {(table, site): rows recovered}. Raises StorageError if a writer is live.
        """
        root = Path(out_dir)
        if not (root / JOURNAL_DIR).is_dir():
            return {}
        lock = JournalLock(root)
        try:
            recovered = recover_journal(root)
            remove_leftover_tmp(root)
            return recovered
        except OSError as exc:
            raise _storage_error(exc, root, "recover the journal") from exc
        finally:
            lock.release()

    def describe(self, site: str, labels: Iterable) -> None:
        """Record names, units and families of datapoints: ``(address, number, name, unit,
        family)`` tuples. Written at once to OUT/datapoints/site=S/ and into the metadata of
        every Parquet file holding those numbers."""
        check_site(site)
        try:
            new = normalize_labels(labels)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError(f"describe: {exc}") from exc
        self._check()
        with self._io_lock:
            current = self._labels.setdefault(site, {})
            if not current:
                try:
                    current.update(read_labels(self.root, site))
                except (OSError, pa.ArrowException):
                    pass
            current.update(new)
            try:
                write_labels(self.root, site, current.values(), replace=True)
            except OSError as exc:
                raise _storage_error(exc, self.root, "write the datapoint labels") from exc

    def append_values(self, site: str, time_ms, address, number, value) -> None:
        """Queue values: numpy columns (int64 ms UTC, uint16, uint16, float32) of one length;
        scalars are broadcast (one time or address per frame). The arrays are copied, so
        the caller may reuse its buffers. Never blocks on the disk."""
        self._check()
        if site not in self._sites_ok:
            self._sites_ok.add(check_site(site))
        n = 1
        for x in (value, number, address, time_ms):
            if isinstance(x, np.ndarray) and x.ndim:
                n = len(x)
                break
            if isinstance(x, (list, tuple)):
                n = len(x)
                break
        cols = (
            _times(time_ms, n),
            _as_column("address", address, np.uint16, n),
            _as_column("number", number, np.uint16, n),
            _as_column("value", value, np.float32, n),
        )
        if not (len(cols[0]) == len(cols[1]) == len(cols[2]) == len(cols[3]) == n):
            raise ValidationError(
                "append_values: columns differ in length "
                f"(time {len(cols[0])}, address {len(cols[1])}, number {len(cols[2])}, "
                f"value {len(cols[3])})"
            )
        if n == 0:
            return
        self._queue("values", site, cols, n)

    def append_events(self, site: str, rows: Iterable[Mapping]) -> None:
        """Queue events: dicts {time_ms, kind, address, number, detail}."""
        self._append_rows("events", site, rows)

    def append_messages(self, site: str, rows: Iterable[Mapping]) -> None:
        """Queue messages: {time_ms, logged_ms, address, number, text, severity, total}."""
        self._append_rows("messages", site, rows)

    def append_parameters(self, site: str, rows: Iterable[Mapping]) -> None:
        """Queue parameter values: {time_ms, address, number, value, text}."""
        self._append_rows("parameters", site, rows)

    def append_devices(self, site: str, rows: Iterable[Mapping]) -> None:
        """Queue device rows: {time_ms, address, family, device, model, firmware, serial}."""
        self._append_rows("devices", site, rows)

    def flush(self) -> None:
        """Journal everything buffered now and fsync it (blocks until it is on disk)."""
        self._check()
        with self._io_lock:
            self._check()
            try:
                self._flush_locked()
            except BaseException as exc:
                self._fail(exc)
        self._check()

    def close(self) -> None:
        """Final flush, compact every journal segment into Parquet and release the folder.

        Raises the writer's error if it stopped on one (the journal is then left for
        recovery by the next writer)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            if self.error is None:
                try:
                    with self._io_lock:
                        self._flush_locked()
                        for key in list(self._segments):
                            self._retire_locked(key)
                    self._compact_pending()
                except BaseException as exc:
                    self._fail(exc)
        finally:
            with self._io_lock:
                for seg in self._segments.values():
                    try:
                        seg.close()
                    except OSError:
                        pass
                self._segments.clear()
                self._lock.release()
        if self.error is not None:
            raise self.error

    @property
    def stats(self) -> dict:
        """Counters: rows appended, journalled, compacted, recovered; files and bytes of
        Parquet written; bytes journalled; flushes; rows still buffered."""
        with self._buf_lock:
            out = dict(self._stats)
            out["rows_buffered"] = self._buffered_rows
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> bool:
        """True once the writer stopped on an error (``error`` says which): the rows
        appended since are not stored, and the caller must stop."""
        return self.error is not None

    def raise_if_failed(self) -> None:
        """Raise the writer's error (a StorageError) if its thread stopped on one."""
        if self.error is not None:
            raise self.error

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except StorageError:
            if exc is None:
                raise

    # -- internals -----------------------------------------------------------------------

    def _check(self) -> None:
        if self.error is not None:
            raise self.error
        if self._closed:
            raise StorageError(f"the dataset writer for {self.root} is closed")

    def _append_rows(self, table_name: str, site: str, rows: Iterable[Mapping]) -> None:
        self._check()
        check_site(site)
        schema = SCHEMAS[table_name]
        names = set(schema.names)
        columns: dict[str, list] = {name: [] for name in schema.names}
        count = 0
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValidationError(f"append_{table_name}: row {i} is not a dict: {row!r}")
            seen = set()
            for key, val in row.items():
                col = _ROW_ALIASES.get(key, key)
                if col not in names:
                    raise ValidationError(
                        f"append_{table_name}: unknown field {key!r} in row {i}; "
                        f"fields are {', '.join(schema.names)}"
                    )
                columns[col].append(val)
                seen.add(col)
            for name in names - seen:
                columns[name].append(None)
            count += 1
        if not count:
            return
        arrays = []
        for field in schema:
            data = columns[field.name]
            if field.type == pa.string():  # enums by value, numbers as text
                data = [
                    v if v is None or type(v) is str else str(getattr(v, "value", v)) for v in data
                ]
            elif field.type == TIME_TYPE:  # integers are milliseconds (``time_ms``)
                data = [
                    v * TIME_PER_MS
                    if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                    else v
                    for v in data
                ]
            try:
                arr = pa.array(data, type=field.type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                raise ValidationError(f"append_{table_name}: field {field.name!r}: {exc}") from exc
            if not field.nullable and arr.null_count:
                raise ValidationError(f"append_{table_name}: field {field.name!r} is required")
            arrays.append(arr)
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        self._queue(table_name, site, batch, count)

    def _queue(self, table_name: str, site: str, item, n: int) -> None:
        with self._buf_lock:
            self._buffers.setdefault((table_name, site), []).append(item)
            self._buffered_rows += n
            self._stats["rows_appended"] += n
            full = self._buffered_rows >= self.max_buffer_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        """The thread's body: whatever kills it is recorded as the writer's error, so the
        next ``append_*``/``flush`` (and the logger watching ``failed``) stops with it."""
        try:
            self._run_loop()
        except BaseException as exc:  # noqa: BLE001 - a dead writer must never be silent
            self._fail(exc)

    def _run_loop(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        next_publish = time.monotonic() + self.publish_interval
        while not self._stop.is_set():
            due = min(next_flush, next_publish) - time.monotonic()
            if self._leftover_days:
                due = 0.0  # merge the next leftover day at once
            self._wake.wait(min(max(0.0, due), MAX_INTERVAL_S))
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            publish = now >= next_publish
            if publish or now >= next_flush or self._buffered_rows >= self.max_buffer_rows:
                next_flush = now + self.flush_interval
                with self._io_lock:
                    if self.error is not None:
                        break
                    try:
                        self._flush_locked()
                    except BaseException as exc:  # the writer stops; append/flush re-raise
                        self._fail(exc)
                        break
            # Compaction runs outside the I/O lock, so flushes (and the journal's bound on
            # lost rows) go on while a big segment is sorted and written to Parquet.
            self._compact_pending()
            if self.error is not None:
                break
            if publish:
                next_publish = now + self.publish_interval
                self._publish_open()
            elif self._leftover_days:
                self._merge_leftover()
            if self.error is not None:
                break

    def _publish_open(self) -> None:
        """Publish the fsynced rows of every open segment that grew since its last publish."""
        with self._io_lock:
            todo = [
                (key, seg, seg.synced_rows, dict(self._labels.get(key[1], {})))
                for key, seg in self._segments.items()
                if seg.synced_rows > seg.published_rows
            ]
        for (table_name, site, day), seg, rows, labels in todo:
            try:
                publish_segment(self.root, table_name, site, day, seg.path, rows, labels)
            except BaseException as exc:  # the journal still holds every row
                self._fail(exc)
                return
            seg.published_rows = rows
        with self._buf_lock:
            self._stats["publishes"] += 1
            self._stats["last_publish"] = time.time()

    def _merge_leftover(self) -> None:
        """Merge one finished day a crash (or an earlier stop) left unmerged, unless this
        writer still has rows of that day to compact."""
        table_name, site, day = key = self._leftover_days.pop(0)
        with self._io_lock:
            busy = key in self._segments or any(k == key for k, _ in self._pending)
            labels = dict(self._labels.get(site, {}))
        if not busy:
            self._merge(table_name, site, day, labels)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            err = _storage_error(exc, self.root, "write")
        else:  # a bug or an impossible value: still one sentence, and the logger stops
            err = StorageError(
                f"the dataset writer for {self.root} stopped on an unexpected "
                f"{type(exc).__name__}: {exc}. Logging stopped; rows already journalled are "
                "safe and will be recovered on the next start"
            )
            err.__cause__ = exc
        if self.error is None:
            self.error = err
            log.error("%s", err)

    def _take_buffers(self) -> dict:
        with self._buf_lock:
            taken, self._buffers = self._buffers, {}
            self._buffered_rows = 0
        return taken

    def _batches_by_day(
        self, table_name: str, site: str, items: list
    ) -> list[tuple[dt.date, pa.RecordBatch]]:
        newest = self._newest.setdefault((table_name, site), {})
        if table_name == "values":
            t = np.concatenate([c[0] for c in items])
            cols = [np.concatenate([c[k] for c in items]) for k in (1, 2, 3)]
            key = cols[0].astype(np.uint32) << 16 | cols[1]
            t = unique_series_times(key, t, newest)
            cols = [t, *cols]
            days = t // TIME_PER_DAY
            d0, d1 = days.min(), days.max()
            schema = VALUES_SCHEMA
            if d0 == d1:
                parts = [(int(d0), None)]
            else:
                parts = [(int(d), days == d) for d in np.unique(days)]
            out = []
            for d, mask in parts:
                sel = cols if mask is None else [c[mask] for c in cols]
                arrays = [
                    pa.array(sel[0], pa.int64()).cast(TIME_TYPE),
                    pa.array(sel[1], pa.uint16()),
                    pa.array(sel[2], pa.uint16()),
                    pa.array(sel[3], pa.float32()),
                ]
                out.append(
                    (
                        EPOCH_DATE + dt.timedelta(days=d),
                        pa.RecordBatch.from_arrays(arrays, schema=schema),
                    )
                )
            return out
        table = pa.Table.from_batches(items).combine_chunks()
        t = table.column("time").cast(pa.int64()).to_numpy()
        if table_name == "parameters":  # (time, address, number) is its key too
            key = table.column("address").to_numpy().astype(np.uint32) << 16
            key |= table.column("number").to_numpy()
            t = unique_series_times(key, t, newest)
            time_col = pa.array(t, pa.int64()).cast(TIME_TYPE)
            index = table.schema.get_field_index("time")
            table = table.set_column(index, table.schema.field(index), time_col)
        days = t // TIME_PER_DAY
        out = []
        for d in np.unique(days):
            sub = table.filter(pa.array(days == d)) if days.min() != days.max() else table
            for batch in sub.to_batches():
                out.append((EPOCH_DATE + dt.timedelta(days=int(d)), batch))
        return out

    def _flush_locked(self) -> None:
        taken = self._take_buffers()
        written: list[_Segment] = []
        rows = 0
        pending = taken
        try:
            for (table_name, site), items in list(pending.items()):
                for day, batch in self._batches_by_day(table_name, site, items):
                    key = (table_name, site, day)
                    seg = self._segments.get(key)
                    if seg is None:
                        seg = self._segments[key] = open_segment(self.root, key)
                    seg.write(batch)
                    rows += batch.num_rows
                    if seg not in written:
                        written.append(seg)
                    latest = self._latest_day.get((table_name, site))
                    if latest is None or day > latest:
                        self._latest_day[(table_name, site)] = day
                del pending[(table_name, site)]
            for seg in written:
                seg.sync()
        except BaseException:
            # Keep what was not journalled in memory (for stats); the writer stops.
            with self._buf_lock:
                for key, items in pending.items():
                    self._buffers.setdefault(key, [])[:0] = items
            raise
        journal_bytes = sum(seg.file.tell() for seg in self._segments.values())
        with self._buf_lock:
            self._stats["rows_journalled"] += rows
            self._stats["flushes"] += 1
            self._stats["journal_bytes"] = journal_bytes
            self._stats["last_flush"] = time.time()
        self._rotate_locked(set(map(id, written)))
        if self.on_flush is not None:
            try:
                self.on_flush(self.stats)
            except Exception:  # a status callback must never stop the writer
                log.exception("on_flush callback failed")

    def _rotate_locked(self, written_now: set[int]) -> None:
        """Retire segments whose rotation slot ended, that grew past max_segment_rows, or
        whose day is over (a newer day has data and this one got none in this flush)."""
        slot = time.time() // self.rotate_interval
        retired = False
        for key, seg in list(self._segments.items()):
            table_name, site, day = key
            old_day = day < self._latest_day.get((table_name, site), day)
            if (
                seg.opened_wall // self.rotate_interval != slot
                or seg.rows >= self.max_segment_rows
                or (old_day and id(seg) not in written_now)
            ):
                self._retire_locked(key)
                retired = True
        if retired and threading.current_thread() is not self._thread:
            self._wake.set()  # a caller's flush() retired segments: the thread compacts them

    def _retire_locked(self, key: tuple[str, str, dt.date]) -> None:
        """Close a segment (its journal stays on disk) and queue it for compaction."""
        seg = self._segments.pop(key)
        seg.close()
        self._pending.append((key, seg.path))

    def _compact_pending(self) -> None:
        with self._compact_lock:
            while self.error is None:
                with self._io_lock:
                    if not self._pending:
                        return
                    (table_name, site, day), path = self._pending[0]
                    labels = dict(self._labels.get(site, {}))
                try:
                    rows, out = compact_segment(self.root, table_name, site, day, path, labels)
                    size = out.stat().st_size if out is not None else 0
                except BaseException as exc:  # the segment stays in the journal
                    self._fail(exc)
                    return
                with self._io_lock:
                    self._pending.pop(0)
                    key = (table_name, site, day)
                    day_over = (
                        self.merge_days
                        and day < self._latest_day.get((table_name, site), day)
                        and key not in self._segments
                        and all(k != key for k, _ in self._pending)
                    )
                with self._buf_lock:
                    self._stats["rows_compacted"] += rows
                    self._stats["files"] += out is not None
                    self._stats["bytes"] += size
                if day_over:
                    self._merge(table_name, site, day, labels)

    def _merge(self, table_name: str, site: str, day: dt.date, labels: Mapping) -> None:
        """Merge a finished day's files; a failure leaves them as they were (and is logged:
        a disk that is really full stops the writer at the next flush)."""
        folder = partition_dir(self.root, table_name, site, day)
        before = {p: p.stat().st_size for p in folder.glob("*.parquet")}
        try:
            merged, parts = merge_day(
                self.root, table_name, site, day, labels, max_rows=self.max_segment_rows
            )
        except Exception as exc:  # noqa: BLE001 - the hourly files are still complete
            log.warning("could not merge %s of site %s on %s: %s", table_name, site, day, exc)
            return
        if merged is None:
            return
        with self._buf_lock:
            self._stats["files"] += 1 - len(parts) - (merged in before)
            self._stats["bytes"] += merged.stat().st_size - sum(
                before.get(p, 0) for p in [*parts, merged]
            )
