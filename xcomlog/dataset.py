"""The on-disk dataset: folder layout, table schemas, atomic Parquet writes and the writer.

Layout (hive-style, readable by pandas, DuckDB, Polars and Spark with no glue)::

    OUT/<table>/site=<SITE>/date=<YYYY-MM-DD>/<file>.parquet
    OUT/datapoints/site=<SITE>/datapoints.parquet      (names and units of every number)
    OUT/_journal/...                                    (crash journal, ignored by readers)

``date`` is the UTC date of the rows. Tables: ``values`` (the long table of logged
and imported values), ``messages``, ``events``, ``parameters`` and ``devices``.
Readers never see a half-written file: files are written under a temporary name,
fsynced and renamed into place. The live writer makes ``live-<time>-<id>.parquet`` files
(one per rotation, hourly by default) and merges a finished day's into
``day-<date>.parquet``, so years of data stay at one file per table, site and day. Every Parquet file also carries the labels of the
datapoints it holds in its key-value metadata (``xcomlog.datapoints``), so a single
file copied out of the dataset still describes itself.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .exceptions import StorageError, ValidationError

TIME_TYPE = pa.timestamp("ms", tz="UTC")

#: The long table: one row per value read (live) or per SD-card cell (imported).
VALUES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("value", pa.float32()),
    ]
)

#: Messages of the devices (section 4.6.6): one row per message read from the gateway.
#: ``time`` is the message's own time, ``logged`` when xcomlog read it; ``number`` is the
#: message type and ``text`` its decoded text; ``total`` the messages still pending then.
MESSAGES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("logged", TIME_TYPE),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("total", pa.int32()),
    ]
)

#: What happened to the logger and when: missed intervals, timeouts, device errors, link
#: drops, restarts, imports. ``kind`` is a short word (see EVENT_KINDS); ``address`` and
#: ``number`` are null when the event concerns no datapoint; ``detail`` is free text.
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("address", pa.uint16()),
        pa.field("number", pa.uint16()),
        pa.field("detail", pa.string()),
    ]
)

#: Usual event kinds (other words are allowed; readers should not reject unknown kinds).
EVENT_KINDS = (
    "start",  # logger started (detail: version, configuration)
    "stop",  # logger stopped cleanly
    "recovered",  # rows recovered from the journal after a crash (detail: how many)
    "missed",  # a polling interval was missed (detail: by how much)
    "timeout",  # no answer in time (address/number of the request when known)
    "device_error",  # a device answered with an error code (detail: the code)
    "link_down",  # the link broke (detail: the reason)
    "link_up",  # the link was (re)opened
    "quiet",  # polite mode: polling paused for the portal upload window
    "import",  # an SD-card file was imported (detail: the file)
    "gap",  # a hole in the data explained by detail
)

#: Parameter snapshots: ``value`` as a float64 (exact for every Xcom numeric format) and
#: ``text`` for values that are not numbers (strings, GUIDs, bit fields as hex) or null.
PARAMETERS_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
    ]
)

#: The devices seen at a site and when: one row per device per discovery (or import).
#: ``family`` is a protocol.Family value, ``device`` the short name (xt1, vs2, bsp),
#: ``model``, ``firmware`` and ``serial`` are text as read (null when unknown).
DEVICES_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("family", pa.string()),
        pa.field("device", pa.string()),
        pa.field("model", pa.string()),
        pa.field("firmware", pa.string()),
        pa.field("serial", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

#: Labels of the datapoints of one site, one row per (address, number):
#: ``name`` and ``unit`` as in the appendix, ``family`` a protocol.Family value and
#: ``kind`` "info" (user info, in ``values``) or "parameter" (in ``parameters``).
DATAPOINTS_SCHEMA = pa.schema(
    [
        pa.field("address", pa.uint16(), nullable=False),
        pa.field("number", pa.uint16(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("family", pa.string()),
        pa.field("kind", pa.string()),
    ]
)

#: Every time-partitioned table and its schema.
SCHEMAS: dict[str, pa.Schema] = {
    "values": VALUES_SCHEMA,
    "messages": MESSAGES_SCHEMA,
    "events": EVENTS_SCHEMA,
    "parameters": PARAMETERS_SCHEMA,
    "devices": DEVICES_SCHEMA,
}

TABLES = ("values", "messages", "events", "parameters", "devices")

#: The per-site labels table (partitioned by site only): OUT/datapoints/site=S/datapoints.parquet
DATAPOINTS_TABLE = "datapoints"
DATAPOINTS_FILE = "datapoints.parquet"

#: Folder of the crash journal; the leading underscore hides it from dataset discovery.
JOURNAL_DIR = "_journal"

#: Parquet key-value metadata keys written in every file.
META_DATAPOINTS = b"xcomlog.datapoints"  # JSON list of [address, number, name, unit, family]
META_SITE = b"xcomlog.site"
META_TABLE = b"xcomlog.table"
META_VERSION = b"xcomlog.version"

_SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Suffix of files being written; readers and recovery ignore them.
TMP_SUFFIX = ".tmp"


def check_site(site: str) -> str:
    """Validate a site name (it becomes a folder name: letters, digits, ``_ . -``)."""
    if not _SITE_RE.match(site or ""):
        raise ValueError(
            f"invalid site name {site!r}: use letters, digits, '_', '.' or '-' "
            "(starting with a letter or digit)"
        )
    return site


def partition_dir(root: str | os.PathLike, table: str, site: str, day: dt.date) -> Path:
    """The folder of one table, site and UTC day."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    return Path(root) / table / f"site={check_site(site)}" / f"date={day.isoformat()}"


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _b(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else str(text).encode()


def write_parquet_atomic(
    table: pa.Table,
    path: str | os.PathLike,
    *,
    compression: str = "zstd",
    compression_level: int | None = 9,
    row_group_size: int | None = None,
    use_dictionary: bool | list[str] = True,
    column_encoding: dict[str, str] | None = None,
    metadata: Mapping[bytes | str, bytes | str] | None = None,
) -> Path:
    """Write ``table`` to ``path`` so that readers see either nothing or the whole file.

    The file is written under a unique temporary name in the same folder, fsynced, then
    renamed over ``path`` (replacing an older version atomically) and the folder fsynced.
    ``metadata`` is merged into the schema's key-value metadata (e.g. META_DATAPOINTS).
    """
    path = Path(path)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({_b(k): _b(v) for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as sink:
            # The Arrow schema (ARROW:schema) would repeat the labels metadata in every
            # footer; the Parquet logical types already give back the same Arrow types (UTC
            # timestamps, unsigned ints), so only the key-value metadata is written.
            key_values = table.schema.metadata
            table = table.replace_schema_metadata(None)
            writer = pq.ParquetWriter(
                sink,
                table.schema,
                compression=compression,
                compression_level=compression_level,
                use_dictionary=use_dictionary,
                column_encoding=column_encoding,
                store_schema=False,
            )
            try:
                writer.write_table(table, row_group_size=row_group_size)
                if key_values:
                    writer.add_key_value_metadata(key_values)
            finally:
                writer.close()  # on failure too: the temporary file is removed below
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def site_dir(root: str | os.PathLike, table: str, site: str) -> Path:
    """The folder of one table and site (parent of its ``date=`` folders)."""
    if table not in TABLES and table != DATAPOINTS_TABLE:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    return Path(root) / table / f"site={check_site(site)}"


def datapoints_path(root: str | os.PathLike, site: str) -> Path:
    """Where the labels of one site's datapoints live."""
    return site_dir(root, DATAPOINTS_TABLE, site) / DATAPOINTS_FILE


Label = tuple  # (address, number, name, unit, family)


def _family_text(family: object) -> str:
    value = getattr(family, "value", family)
    return "" if value is None else str(value)


def normalize_labels(rows: Iterable[Sequence | Mapping]) -> dict[tuple[int, int], Label]:
    """Labels keyed by (address, number) from tuples ``(address, number, name, unit, family)``
    or mappings with those keys (``kind`` optional); validates the numbers."""
    out: dict[tuple[int, int], Label] = {}
    for row in rows:
        if isinstance(row, Mapping):
            address, number = row["address"], row["number"]
            name, unit = row.get("name"), row.get("unit")
            family, kind = row.get("family"), row.get("kind", "info")
        else:
            row = tuple(row)
            if len(row) not in (4, 5, 6):
                raise ValueError(
                    f"datapoint label {row!r}: expected (address, number, name, unit, family)"
                )
            address, number, name, unit = row[:4]
            family = row[4] if len(row) > 4 else None
            kind = row[5] if len(row) > 5 else "info"
        address, number = int(address), int(number)
        if not (0 <= address <= 0xFFFF and 0 <= number <= 0xFFFF):
            raise ValueError(f"datapoint label {row!r}: address and number must fit in uint16")
        out[(address, number)] = (
            address,
            number,
            "" if name is None else str(name),
            "" if unit is None else str(unit),
            _family_text(family),
            str(kind or "info"),
        )
    return out


def labels_table(labels: Mapping[tuple[int, int], Label]) -> pa.Table:
    """The labels as a table of DATAPOINTS_SCHEMA, sorted by address and number."""
    rows = [labels[key] for key in sorted(labels)]
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in DATAPOINTS_SCHEMA]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(cols, DATAPOINTS_SCHEMA, strict=True)],
        schema=DATAPOINTS_SCHEMA,
    )


def labels_metadata(labels: Iterable[Label]) -> bytes:
    """JSON of labels for the ``xcomlog.datapoints`` key-value metadata of a Parquet file."""
    return json.dumps([list(label[:5]) for label in labels], separators=(",", ":")).encode()


def labels_from_metadata(metadata: Mapping[bytes, bytes] | None) -> dict[tuple[int, int], Label]:
    """Labels stored in a Parquet file's key-value metadata (empty when there are none)."""
    if not metadata or META_DATAPOINTS not in metadata:
        return {}
    try:
        rows = json.loads(metadata[META_DATAPOINTS])
        return normalize_labels(rows)
    except (ValueError, TypeError, KeyError):
        return {}


def read_labels(root: str | os.PathLike, site: str) -> dict[tuple[int, int], Label]:
    """The labels stored for one site (empty when none were written)."""
    path = datapoints_path(root, site)
    if not path.exists():
        return {}
    table = pq.read_table(path)
    return normalize_labels(table.to_pylist())


def write_labels(
    root: str | os.PathLike, site: str, rows: Iterable, *, replace: bool = False
) -> Path:
    """Merge labels into the site's datapoints table (newer labels win), atomically."""
    labels = {} if replace else read_labels(root, site)
    labels.update(normalize_labels(rows))
    return write_parquet_atomic(labels_table(labels), datapoints_path(root, site))


# --- The crash-safe writer --------------------------------------------------------------

log = logging.getLogger("xcomlog.dataset")

_MS_PER_DAY = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
SEGMENT_SUFFIX = ".arrows"
BAD_SUFFIX = ".bad"  # a journal segment recovery could not use, kept for inspection
LOCK_FILE = ".lock"

#: Parquet choices for the values table, picked by benchmarks/storage_bench.py: rows sorted
#: by (address, number, time) make runs of one series; dictionary + RLE for address, number
#: and value (most series repeat a few values), delta encoding for the time column, zstd.
VALUES_WRITE_OPTIONS: dict = {
    "compression": "zstd",
    "compression_level": 9,
    "use_dictionary": ["address", "number", "value"],
    "column_encoding": {"time": "DELTA_BINARY_PACKED"},
}
#: The sort order of the values table's rows inside each file.
VALUES_SORT = [("address", "ascending"), ("number", "ascending"), ("time", "ascending")]

#: Names a row dict may use for each column (the writer's contract uses ``*_ms``).
_ROW_ALIASES = {"time_ms": "time", "logged_ms": "logged"}


def day_of_ms(time_ms: int) -> dt.date:
    """The UTC date of a POSIX time in milliseconds."""
    return _EPOCH + dt.timedelta(days=int(time_ms) // _MS_PER_DAY)


def _table_write_options(table: str) -> dict:
    if table == "values":
        return dict(VALUES_WRITE_OPTIONS)
    return {"compression": "zstd", "compression_level": 9, "use_dictionary": True}


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


def _part_name(segment: Path) -> str:
    """Deterministic Parquet name of a segment, so compacting it twice replaces one file."""
    return f"{LIVE_PREFIX}{segment.name[: -len(SEGMENT_SUFFIX)]}.parquet"


def _sort_table(table_name: str, table: pa.Table) -> pa.Table:
    if table_name == "values":
        if table.num_rows > 1:
            # A live segment is journalled in arrival order: when its times never go back,
            # a stable sort on one (address << 16 | number) key gives the VALUES_SORT order
            # for about a third of the CPU of a three-column sort_by.
            t = table.column("time").cast(pa.int64()).to_numpy()
            if not (t[1:] < t[:-1]).any():
                key = table.column("address").to_numpy().astype(np.uint32) << 16
                key |= table.column("number").to_numpy()
                return table.take(pa.array(np.argsort(key, kind="stable")))
        return table.sort_by(VALUES_SORT)
    return table.sort_by([("time", "ascending")])


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
        table = _sort_table(table_name, table.cast(SCHEMAS[table_name]))
        meta = {META_SITE: site, META_TABLE: table_name, META_VERSION: _version()}
        if labels and table_name in ("values", "parameters"):
            present = _labels_present(table, labels)
            if present:
                meta[META_DATAPOINTS] = labels_metadata(present)
        out = partition_dir(root, table_name, site, day) / _part_name(segment)
        write_parquet_atomic(table, out, metadata=meta, **_table_write_options(table_name))
    segment.unlink()
    fsync_dir(segment.parent)
    for folder in (segment.parent, segment.parent.parent):  # empty date= and site= folders
        try:
            folder.rmdir()
        except OSError:
            break
    return rows, out


MERGE_DIR = "merges"  # under _journal: one manifest per day merge in progress
META_MERGE_ID = b"xcomlog.merge_id"
LIVE_PREFIX = "live-"
DAY_PREFIX = "day-"


def _merge_manifest(root: Path, table_name: str, site: str, day: dt.date) -> Path:
    return root / JOURNAL_DIR / MERGE_DIR / f"{table_name}~{site}~{day.isoformat()}.json"


def _write_small_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def merge_day(
    root: str | os.PathLike,
    table_name: str,
    site: str,
    day: dt.date,
    labels: Mapping[tuple[int, int], Label] | None = None,
    *,
    max_rows: int = 8_000_000,
) -> tuple[Path | None, list[Path]]:
    """Merge the writer's files (``live-*``) of one finished day into ``day-<date>.parquet``.

    Keeps years of data at one file per table, site and day. Crash-safe: a manifest in the
    journal names the parts before the merged file is renamed into place, and recovery
    deletes the parts only if the merged file carrying that manifest's id is there (a
    reader may see both for the milliseconds between the rename and the deletes).
    Files of other writers (an SD-card import) are never touched. Returns (merged file or
    None when there was nothing to merge, the parts it replaced).
    """
    root = Path(root)
    folder = partition_dir(root, table_name, site, day)
    parts = sorted(folder.glob(f"{LIVE_PREFIX}*.parquet"))
    day_file = folder / f"{DAY_PREFIX}{day.isoformat()}.parquet"
    sources = parts + ([day_file] if day_file.exists() else [])
    if not parts or len(sources) < 2:
        return None, []
    if sum(pq.read_metadata(p).num_rows for p in sources) > max_rows:
        return None, []
    merge_id = uuid.uuid4().hex
    manifest = _merge_manifest(root, table_name, site, day)
    info = {"merge_id": merge_id, "parts": [p.name for p in parts], "file": day_file.name}
    _write_small_file(manifest, json.dumps(info).encode())
    try:
        schema = SCHEMAS[table_name]
        tables, merged_labels = [], {}
        for p in sources:
            t = pq.read_table(p, partitioning=None)
            merged_labels.update(labels_from_metadata(t.schema.metadata))
            tables.append(t.select(schema.names).cast(schema).replace_schema_metadata(None))
        merged_labels.update(labels or {})
        table = _sort_table(table_name, pa.concat_tables(tables))
        meta = {
            META_SITE: site,
            META_TABLE: table_name,
            META_VERSION: _version(),
            META_MERGE_ID: merge_id,
        }
        if merged_labels and table_name in ("values", "parameters"):
            present = _labels_present(table, merged_labels)
            if present:
                meta[META_DATAPOINTS] = labels_metadata(present)
        write_parquet_atomic(table, day_file, metadata=meta, **_table_write_options(table_name))
    except BaseException:
        _finish_merge(root, manifest)  # parts deleted only if the merged file is in place
        raise
    for p in parts:
        p.unlink(missing_ok=True)
    fsync_dir(folder)
    manifest.unlink(missing_ok=True)
    return day_file, parts


def _finish_merge(root: Path, manifest: Path) -> None:
    """Complete or drop one interrupted day merge: the parts go only if the merged file
    carrying the manifest's id is in place; the manifest goes in both cases."""
    try:
        info = json.loads(manifest.read_bytes())
        table_name, site, date_text = manifest.stem.split("~")
        folder = partition_dir(root, table_name, site, dt.date.fromisoformat(date_text))
        day_file = folder / info["file"]
        done = day_file.exists() and (
            (pq.read_schema(day_file).metadata or {}).get(META_MERGE_ID)
            == info["merge_id"].encode()
        )
    except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        log.warning("dropping unreadable merge manifest %s: %s", manifest, exc)
        manifest.unlink(missing_ok=True)
        return
    if done:
        for name in info["parts"]:
            (folder / name).unlink(missing_ok=True)
        fsync_dir(folder)
    manifest.unlink(missing_ok=True)


def _finish_merges(root: Path) -> None:
    """Complete or drop the day merges a crash interrupted (see merge_day)."""
    for manifest in sorted((root / JOURNAL_DIR / MERGE_DIR).glob("*.json")):
        _finish_merge(root, manifest)


def _version() -> str:
    from . import __version__

    return __version__


def _labels_present(table: pa.Table, labels: Mapping[tuple[int, int], Label]) -> list[Label]:
    keys = np.unique(
        table.column("address").to_numpy().astype(np.uint32) << 16
        | table.column("number").to_numpy().astype(np.uint32)
    )
    pairs = [(int(k) >> 16, int(k) & 0xFFFF) for k in keys]
    return [labels[p] for p in pairs if p in labels]


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


class _JournalLock:
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


def _recover(root: Path, site_labels: Mapping[str, Mapping] | None = None) -> dict:
    """Compact every journal segment under root; returns {(table, site): rows}."""
    journal = root / JOURNAL_DIR
    recovered: dict[tuple[str, str], int] = {}
    if not journal.is_dir():
        return recovered
    _finish_merges(root)
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


class DatasetWriter:
    """Buffers rows in memory, journals them to Arrow IPC segments every ``flush_interval``
    (appended and fsynced) and compacts the journal into sorted zstd Parquet files at
    each rotation (wall-clock aligned ``rotate_interval``), at UTC day change and on close.

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
        max_buffer_rows: int = 2_000_000,
        max_segment_rows: int = 8_000_000,
        merge_days: bool = True,
        on_flush: Callable[[dict], None] | None = None,
    ) -> None:
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        if not rotate_interval > 0:
            raise ValueError(f"rotate_interval must be > 0 seconds, got {rotate_interval!r}")
        self.root = Path(out_dir)
        self.flush_interval = float(flush_interval)
        self.rotate_interval = float(rotate_interval)
        self.max_buffer_rows = int(max_buffer_rows)
        self.max_segment_rows = int(max_segment_rows)
        self.merge_days = bool(merge_days)
        self.on_flush = on_flush
        self.error: BaseException | None = None
        self._closed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = _JournalLock(self.root)
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
        }
        try:
            recovered = _recover(self.root)
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
        lock = _JournalLock(root)
        try:
            return _recover(root)
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
            _as_column("time_ms", time_ms, np.int64, n),
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
        next_flush = time.monotonic() + self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_flush - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            if now >= next_flush or self._buffered_rows >= self.max_buffer_rows:
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

    def _fail(self, exc: BaseException) -> None:
        err = _storage_error(exc, self.root, "write") if isinstance(exc, OSError) else exc
        if self.error is None:
            self.error = err
            log.error("%s", err)

    def _take_buffers(self) -> dict:
        with self._buf_lock:
            taken, self._buffers = self._buffers, {}
            self._buffered_rows = 0
        return taken

    def _batches_by_day(self, table_name: str, items: list) -> list[tuple[dt.date, pa.RecordBatch]]:
        if table_name == "values":
            t = np.concatenate([c[0] for c in items])
            cols = [t] + [np.concatenate([c[k] for c in items]) for k in (1, 2, 3)]
            days = t // _MS_PER_DAY
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
                        _EPOCH + dt.timedelta(days=d),
                        pa.RecordBatch.from_arrays(arrays, schema=schema),
                    )
                )
            return out
        table = pa.Table.from_batches(items).combine_chunks()
        t = table.column("time").cast(pa.int64()).to_numpy()
        days = t // _MS_PER_DAY
        out = []
        for d in np.unique(days):
            sub = table.filter(pa.array(days == d)) if days.min() != days.max() else table
            for batch in sub.to_batches():
                out.append((_EPOCH + dt.timedelta(days=int(d)), batch))
        return out

    def _flush_locked(self) -> None:
        taken = self._take_buffers()
        written: list[_Segment] = []
        rows = 0
        pending = taken
        try:
            for (table_name, site), items in list(pending.items()):
                for day, batch in self._batches_by_day(table_name, items):
                    key = (table_name, site, day)
                    seg = self._segments.get(key)
                    if seg is None:
                        seg = self._segments[key] = self._open_segment(key)
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

    def _open_segment(self, key: tuple[str, str, dt.date]) -> _Segment:
        table_name, site, day = key
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"
        folder = self.root / JOURNAL_DIR / table_name / f"site={site}" / f"date={day.isoformat()}"
        return _Segment(folder / name, SCHEMAS[table_name])

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
