"""Labels of the datapoints (address, number, name, unit, family, kind): the per-site
``datapoints`` table and the copy in each Parquet file's key-value metadata
(``xcomlog.datapoints``), so a single file copied out of the dataset still describes itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .layout import DATAPOINTS_FILE, DATAPOINTS_TABLE, datapoints_path
from .parquet_files import write_parquet_atomic
from .table_schemas import DATAPOINTS_SCHEMA, META_DATAPOINTS, META_SITE, META_TABLE, META_VERSION

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
    from .filesystem import DatasetLocation, is_uri, open_location

    if isinstance(root, DatasetLocation) or is_uri(root):  # a dataset on object storage
        location = root if isinstance(root, DatasetLocation) else open_location(root)
        remote = location.path(DATAPOINTS_TABLE, f"site={site}", DATAPOINTS_FILE)
        if not location.exists(remote):
            return {}
        with location.filesystem.open_input_file(remote) as f:
            return normalize_labels(pq.read_table(f).to_pylist())
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


def _version() -> str:
    from .. import __version__

    return __version__


def labels_present(table: pa.Table, labels: Mapping[tuple[int, int], Label]) -> list[Label]:
    """The labels of the (address, number) pairs that occur in ``table``."""
    keys = np.unique(
        table.column("address").to_numpy().astype(np.uint32) << 16
        | table.column("number").to_numpy().astype(np.uint32)
    )
    pairs = [(int(k) >> 16, int(k) & 0xFFFF) for k in keys]
    return [labels[p] for p in pairs if p in labels]


def file_metadata(
    table_name: str,
    site: str,
    table: pa.Table,
    labels: Mapping[tuple[int, int], Label] | None,
    extra: Mapping[bytes, bytes | str] | None = None,
) -> dict[bytes, bytes | str]:
    """Key-value metadata of a Parquet file the writer makes: site, table, xcomlog version,
    ``extra`` keys, and the labels of the datapoints ``table`` holds (values, parameters)."""
    meta: dict[bytes, bytes | str] = {
        META_SITE: site,
        META_TABLE: table_name,
        META_VERSION: _version(),
        **(extra or {}),
    }
    if labels and table_name in ("values", "parameters"):
        present = labels_present(table, labels)
        if present:
            meta[META_DATAPOINTS] = labels_metadata(present)
    return meta
