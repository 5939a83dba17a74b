"""The on-disk dataset: folder layout, table schemas, atomic Parquet writes and the writer.

Layout (hive-style, readable by pandas, DuckDB, Polars and Spark with no glue)::

    OUT/<table>/site=<SITE>/date=<YYYY-MM-DD>/<file>.parquet
    OUT/datapoints/site=<SITE>/datapoints.parquet      (names and units of every number)
    OUT/_journal/...                                    (crash journal, ignored by readers)

``date`` is the UTC date of the rows. Tables: ``values`` (the long table of logged
and imported values), ``messages``, ``events``, ``parameters`` and ``devices``.
Readers never see a half-written file: files are written under a temporary name,
fsynced and renamed into place. Every Parquet file also carries the labels of the
datapoints it holds in its key-value metadata (``xcomlog.datapoints``), so a single
file copied out of the dataset still describes itself.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
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
            pq.write_table(
                table,
                sink,
                compression=compression,
                compression_level=compression_level,
                row_group_size=row_group_size,
                use_dictionary=use_dictionary,
                column_encoding=column_encoding,
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
