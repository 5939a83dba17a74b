"""Writing tables to Parquet files: atomically (readers never see a half-written file),
with the encodings and row order picked for each table by benchmarks/storage_bench.py.

Files are written under a temporary name, fsynced and renamed into place.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .layout import TMP_SUFFIX


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
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
