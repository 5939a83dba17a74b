"""The crash journal (OUT/_journal): Arrow IPC segments appended and fsynced at each flush,
their compaction into Parquet, the lock that gives one writer a journal, and recovery of
what a crashed writer left behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..exceptions import StorageError
from .datapoint_labels import Label, file_metadata, read_labels
from .day_merge import finish_merges
from .layout import JOURNAL_DIR, LIVE_PREFIX, check_site, partition_dir
from .parquet_files import fsync_dir, sort_table, table_write_options, write_parquet_atomic
from .table_schemas import META_JOURNAL_ROWS, SCHEMAS

log = logging.getLogger("xcomlog.dataset")

#: Journal file names: segments (Arrow IPC streams), set-aside segments, the writer lock.
SEGMENT_SUFFIX = ".arrows"
BAD_SUFFIX = ".bad"  # a journal segment recovery could not use, kept for inspection
LOCK_FILE = ".lock"


def read_segment(path: str | os.PathLike) -> tuple[pa.Table | None, int]:
    """Read a journal segment up to its last complete batch.

    Returns the table (None when not even the schema survived) and how many trailing
    bytes were unreadable (a batch cut by a crash).
    """
    data = Path(path).read_bytes()
    if not data:
        return None, 0
    source = pa.BufferReader(data)
    try:
        reader = pa.ipc.open_stream(source)
    except (pa.ArrowException, OSError, ValueError):
        return None, len(data)
    batches = []
    good = source.tell()
    while True:
        try:
            batch = reader.read_next_batch()
            batch.validate(full=True)
        except StopIteration:
            break
        except (pa.ArrowException, OSError, ValueError):
            break
        batches.append(batch)
        good = source.tell()
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table, len(data) - good if good < len(data) else 0


def part_name(segment: Path) -> str:
    """Deterministic Parquet name of a segment, so publishing it again or compacting it
    (twice, after a crash) replaces one file instead of adding rows."""
    return f"{LIVE_PREFIX}{segment.name[: -len(SEGMENT_SUFFIX)]}.parquet"


#: zstd level of the files published while their segment still grows: they are rewritten
#: every publish interval, so they trade a few percent of size for half the CPU; the final
#: compaction writes the table's usual level.
PUBLISH_COMPRESSION_LEVEL = 3


def _write_part(
    root: Path,
    table_name: str,
    site: str,
    day: dt.date,
    segment: Path,
    table: pa.Table,
    labels: Mapping[tuple[int, int], Label] | None,
    *,
    final: bool,
) -> Path:
    """Write the first ``table.num_rows`` rows of ``segment`` as its sorted Parquet file."""
    rows = table.num_rows
    table = sort_table(table_name, table.cast(SCHEMAS[table_name]))
    meta = file_metadata(table_name, site, table, labels, {META_JOURNAL_ROWS: str(rows)})
    options = table_write_options(table_name)
    if not final:
        options["compression_level"] = PUBLISH_COMPRESSION_LEVEL
    out = partition_dir(root, table_name, site, day) / part_name(segment)
    return write_parquet_atomic(table, out, metadata=meta, **options)


def publish_segment(
    root: Path,
    table_name: str,
    site: str,
    day: dt.date,
    segment: Path,
    rows: int,
    labels: Mapping[tuple[int, int], Label] | None = None,
) -> Path | None:
    """Make the first ``rows`` (fsynced) rows of a growing segment visible to every reader:
    its ``live-*`` file is written (or atomically replaced by a longer version). The
    segment stays the source of truth until it is compacted."""
    table, _ = read_segment(segment)
    if table is None or table.num_rows < rows or rows <= 0:
        return None
    return _write_part(
        root, table_name, site, day, segment, table.slice(0, rows), labels, final=False
    )


def compact_segment(
    root: Path,
    table_name: str,
    site: str,
    day: dt.date,
    segment: Path,
    labels: Mapping[tuple[int, int], Label] | None = None,
) -> tuple[int, Path | None]:
    """Turn one journal segment into a sorted Parquet file in the dataset, then delete it.

    Idempotent: a crash between the rename and the delete only means the same file is
    written again on recovery. Returns (rows, parquet path or None when it held no rows).
    """
    table, dropped = read_segment(segment)
    if dropped > 8:  # more than an end-of-stream marker: a batch cut by a crash
        log.warning(
            "journal %s: %d trailing bytes of an incomplete batch dropped", segment, dropped
        )
    out = None
    rows = 0
    if table is not None and table.num_rows:
        rows = table.num_rows
        out = _write_part(root, table_name, site, day, segment, table, labels, final=True)
    segment.unlink()
    fsync_dir(segment.parent)
    for folder in (segment.parent, segment.parent.parent):  # empty date= and site= folders
        try:
            folder.rmdir()
        except OSError:
            break
    return rows, out


def _parse_segment_path(root: Path, segment: Path) -> tuple[str, str, dt.date] | None:
    try:
        rel = segment.relative_to(root / JOURNAL_DIR)
        table_name, site_part, date_part = rel.parts[:3]
        if table_name not in SCHEMAS or len(rel.parts) != 4:
            return None
        site = site_part.split("=", 1)[1] if site_part.startswith("site=") else None
        day = dt.date.fromisoformat(date_part.split("=", 1)[1])
        if site is None or not date_part.startswith("date="):
            return None
        return table_name, check_site(site), day
    except (ValueError, IndexError):
        return None


def journal_segments(root: Path, table_name: str) -> list[tuple[str, dt.date, Path]]:
    """The journal segments of one table: (site, day, path), live or left by a crash."""
    folder = Path(root) / JOURNAL_DIR / table_name
    out = []
    for segment in sorted(folder.glob(f"site=*/date=*/*{SEGMENT_SUFFIX}")):
        key = _parse_segment_path(Path(root), segment)
        if key is not None:
            out.append((key[1], key[2], segment))
    return out


def _published(path: Path) -> tuple[pa.Table | None, int]:
    """A ``live-*`` file and the journal rows it holds, read through one open handle (a
    republish renames a new version over the path; the handle keeps the one it opened)."""
    try:
        with open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            meta = parquet.schema_arrow.metadata or {}
            table = parquet.read()
    except FileNotFoundError:
        return None, 0
    return table, int(meta.get(META_JOURNAL_ROWS, table.num_rows))


def read_live_segment(
    root: Path, table_name: str, site: str, day: dt.date, segment: Path
) -> tuple[Path, pa.Table | None]:
    """Every row a journal segment holds so far, each once: its published ``live-*`` file
    plus the segment's complete batches past what that file holds. Returns the file's path
    (readers must not read it again) and the rows (None when there are none).

    Works on a writer's open segment and on one a crash left behind; if the writer compacts
    the segment meanwhile, the compacted file is read instead.
    """
    live = partition_dir(root, table_name, site, day) / part_name(segment)
    published, held = _published(live)
    try:
        journal, _ = read_segment(segment)
    except FileNotFoundError:  # compacted since it was listed: the file now holds it all
        return live, _published(live)[0]
    parts = [] if published is None else [published]
    if journal is not None and journal.num_rows > held:
        parts.append(journal.slice(held).cast(SCHEMAS[table_name]))
    if not parts:
        return live, None
    schema = SCHEMAS[table_name]
    parts = [p.select(schema.names).cast(schema).replace_schema_metadata(None) for p in parts]
    return live, pa.concat_tables(parts)


class JournalLock:
    """An exclusive lock on OUT/_journal so two writers never share (or recover) a journal."""

    def __init__(self, root: Path) -> None:
        self.path = root / JOURNAL_DIR / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            self.fd = -1
            raise StorageError(
                f"the dataset {root} is already being written by another xcomlog process "
                f"(lock {self.path} is held); use another output folder or stop that process"
            ) from exc

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


def recover_journal(root: Path, site_labels: Mapping[str, Mapping] | None = None) -> dict:
    """Compact every journal segment under root; returns {(table, site): rows}."""
    journal = root / JOURNAL_DIR
    recovered: dict[tuple[str, str], int] = {}
    if not journal.is_dir():
        return recovered
    finish_merges(root)
    label_cache: dict[str, Mapping] = dict(site_labels or {})
    for segment in sorted(journal.rglob(f"*{SEGMENT_SUFFIX}")):
        key = _parse_segment_path(root, segment)
        if key is None:
            log.warning("ignoring unexpected file in the journal: %s", segment)
            continue
        table_name, site, day = key
        if site not in label_cache:
            try:
                label_cache[site] = read_labels(root, site)
            except (OSError, pa.ArrowException):
                label_cache[site] = {}
        try:
            rows, out = compact_segment(root, table_name, site, day, segment, label_cache[site])
        except OSError:
            raise  # disk full or unwritable: the caller reports it, the segment stays
        except Exception as exc:  # unreadable or incompatible: keep it aside, go on
            bad = segment.with_name(segment.name + BAD_SUFFIX)
            log.error("journal segment %s cannot be recovered (%s); kept as %s", segment, exc, bad)
            segment.rename(bad)
            continue
        if rows:
            log.info("recovered %d %s rows of site %s into %s", rows, table_name, site, out)
            recovered[(table_name, site)] = recovered.get((table_name, site), 0) + rows
    return recovered


#: zstd-compressed journal batches: ~6x fewer bytes written (SD cards wear) for less CPU
#: than the uncompressed copy costs (benchmarks/storage_bench.py).
_JOURNAL_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


class _Segment:
    """One open journal segment: an Arrow IPC stream appended and fsynced at each flush."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "xb")  # noqa: SIM115 - closed by close()
        try:
            self.writer = pa.ipc.new_stream(self.file, schema, options=_JOURNAL_IPC_OPTIONS)
        except BaseException:
            self.file.close()
            raise
        fsync_dir(path.parent)
        self.opened_wall = time.time()
        self.rows = 0
        self.synced_rows = 0  # rows on disk for sure: what may be published
        self.published_rows = 0  # rows its live-* file holds
        self.dirty = False
        self.closed = False

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows
        self.dirty = True

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.dirty = False
        self.synced_rows = self.rows

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close()
            self.file.flush()
            os.fsync(self.file.fileno())
        finally:
            self.file.close()


def open_segment(root: Path, key: tuple[str, str, dt.date]) -> _Segment:
    """A new journal segment for one (table, site, day), named by the wall-clock time."""
    table_name, site, day = key
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"{stamp}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"
    folder = root / JOURNAL_DIR / table_name / f"site={site}" / f"date={day.isoformat()}"
    return _Segment(folder / name, SCHEMAS[table_name])
