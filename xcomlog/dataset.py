"""The on-disk dataset: folder layout, table schemas and atomic Parquet writes.

Layout (hive-style, readable by pandas, DuckDB, Polars and Spark with no glue)::

    OUT/<table>/site=<SITE>/date=<YYYY-MM-DD>/<file>.parquet

``date`` is the UTC date of the rows. Tables: ``values`` (the long table of logged
and imported values), ``messages``, ``events``, ``parameters`` and ``devices``.
Readers never see a half-written file: files are written under a temporary name,
fsynced and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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

TABLES = ("values", "messages", "events", "parameters", "devices")

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


def write_parquet_atomic(
    table: pa.Table,
    path: str | os.PathLike,
    *,
    compression: str = "zstd",
    compression_level: int | None = 9,
    row_group_size: int | None = None,
    use_dictionary: bool | list[str] = True,
) -> Path:
    """Write ``table`` to ``path`` so that readers see either nothing or the whole file.

    The file is written under a unique temporary name in the same folder, fsynced, then
    renamed over ``path`` (replacing an older version atomically) and the folder fsynced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as sink:
            pq.write_table(
                table,
                sink,
                compression=compression,
                compression_level=compression_level,
                row_group_size=row_group_size,
                use_dictionary=use_dictionary,
            )
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
