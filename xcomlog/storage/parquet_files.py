"""Writing tables to Parquet files: atomically (readers never see a half-written file),
with the encodings and row order picked for each table by benchmarks/storage_bench.py.

Files are written under a temporary name, fsynced and renamed into place.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .layout import TMP_SUFFIX
from .table_schemas import TIME_TYPE


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


def tmp_path(path: Path) -> Path:
    """A temporary name beside ``path`` that says which process writes it (its pid), so the
    next writer can tell a crash's leftover from a file another process is writing."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


_TMP_PID = re.compile(r"\.(\d+)-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")
#: A temporary file without a pid in its name (older xcomlog) is a leftover after this long.
TMP_MAX_AGE_S = 3600.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def is_leftover_tmp(path: Path, now: float | None = None) -> bool:
    """True for a temporary file no running process will finish: its writer's pid is gone
    (or, without a pid in its name, it is older than TMP_MAX_AGE_S)."""
    match = _TMP_PID.search(path.name)
    if match:
        return not _pid_alive(int(match.group(1)))
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > TMP_MAX_AGE_S


def remove_leftover_tmp(root: str | os.PathLike) -> list[Path]:
    """Delete the temporary files crashed writers left anywhere under ``root`` (Parquet
    files cut by a crash mid-write, merge manifests); returns what was removed."""
    removed = []
    for path in Path(root).rglob(f".*{TMP_SUFFIX}"):
        if path.is_file() and is_leftover_tmp(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def with_time_unit(table: pa.Table) -> pa.Table:
    """``table`` with every UTC timestamp column in the dataset's unit (TIME_TYPE): callers
    that build millisecond columns (the SD-card importer) keep working, and every file
    of the dataset has one time type."""
    fields = list(table.schema)
    changed = False
    for i, field in enumerate(fields):
        if pa.types.is_timestamp(field.type) and field.type != TIME_TYPE:
            fields[i] = field.with_type(TIME_TYPE)
            changed = True
    if not changed:
        return table
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


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
    table = with_time_unit(table)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({_b(k): _b(v) for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
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


def table_write_options(table: str) -> dict:
    """Keyword arguments of write_parquet_atomic for one table (a fresh dict)."""
    if table == "values":
        return dict(VALUES_WRITE_OPTIONS)
    return {"compression": "zstd", "compression_level": 9, "use_dictionary": True}


def sort_table(table_name: str, table: pa.Table) -> pa.Table:
    """The rows in file order: VALUES_SORT for values, time order for the other tables."""
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


def write_small_file(path: Path, data: bytes) -> None:
    """Write a small file (a merge manifest) atomically: temporary name, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
