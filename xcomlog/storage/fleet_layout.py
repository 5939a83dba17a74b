"""The fleet layout: one file per table, UTC day and writer holding every site.

The home layout (``<table>/site=S/date=D/``) gives a fleet of hundreds of sites tens of
thousands of tiny files a year; analytics engines want few files of tens to hundreds of
megabytes. The fleet layout is::

    OUT/<table>/date=<YYYY-MM-DD>/<kind>-<writer>-<id>.parquet     (a ``site`` column inside)
    OUT/datapoints/site=<SITE>/datapoints.parquet                   (as in the home layout)

Rows are sorted by site first (then as in the home layout) and cut into row groups of at
most FLEET_ROW_GROUP_ROWS, so a filter on ``site`` reads only the row groups whose
min/max statistics can hold it; ``date`` stays a hive partition that Spark, DuckDB and
Polars prune on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .parquet_files import VALUES_SORT, table_write_options
from .table_schemas import SCHEMAS

HOME = "home"
FLEET = "fleet"
LAYOUTS = (HOME, FLEET)

#: Rows per row group of a fleet file: small enough that one site out of hundreds reads
#: little, big enough for good compression and few footers.
FLEET_ROW_GROUP_ROWS = 512 * 1024

#: Prefixes of files that replace others (a merge or a compaction): while both are visible
#: for a moment, readers drop the doubled rows (see reader.py).
REPLACING_PREFIXES = ("day-", "compact-")


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


def fleet_schema(table_name: str) -> pa.Schema:
    """The schema of a fleet file: ``site`` then the table's columns."""
    return pa.schema([pa.field("site", pa.string(), nullable=False), *SCHEMAS[table_name]])


def fleet_sort(table_name: str, table: pa.Table) -> pa.Table:
    """Rows by site first, then the home layout's order inside each site."""
    keys = [("site", "ascending")]
    keys += VALUES_SORT if table_name == "values" else [("time", "ascending")]
    return table.sort_by(keys)


def fleet_table(table_name: str, parts: Iterable[tuple[str, pa.Table]]) -> pa.Table:
    """Site-tagged, sorted rows of ``(site, table)`` parts (home-layout files' contents)."""
    schema = SCHEMAS[table_name]
    out = fleet_schema(table_name)
    tables = []
    for site, table in parts:
        if "site" in table.column_names:  # already a fleet file
            tables.append(table.select(out.names).cast(out).replace_schema_metadata(None))
            continue
        t = table.select(schema.names).cast(schema).replace_schema_metadata(None)
        site_col = pa.array([site] * t.num_rows, pa.string())
        tables.append(t.add_column(0, out.field("site"), site_col))
    if not tables:
        return out.empty_table()
    return fleet_sort(table_name, pa.concat_tables(tables))


def write_fleet_sites(
    table_name: str,
    sites: Iterable[tuple[str, Callable[[], pa.Table]]],
    path: str | os.PathLike,
    metadata: dict | None = None,
    *,
    dedupe: bool = False,
) -> int:
    """Write a fleet file one site at a time (memory: one site's rows, not the whole day).

    ``sites`` gives (site, load) pairs; ``load()`` returns that site's rows (home-layout
    columns, or fleet rows of that site). Sites are written in name order, each in its own
    row groups, so a filter on one site reads only its row groups. ``dedupe`` drops rows
    seen twice (compaction of a day whose previous compaction was interrupted). The file
    is written in place (a scratch file the caller then publishes); returns its rows.
    """
    options = table_write_options(table_name)
    use_dict = options.pop("use_dictionary", True)
    if isinstance(use_dict, list):
        use_dict = ["site", *use_dict]
    schema = fleet_schema(table_name)
    rows = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = pq.ParquetWriter(
        str(path), schema, use_dictionary=use_dict, store_schema=False, **options
    )
    try:
        for site, load in sorted(sites, key=lambda item: item[0]):
            table = fleet_table(table_name, [(site, load())])
            if dedupe:
                table = fleet_sort(table_name, drop_doubles(table, table_name))
            if table.num_rows:
                writer.write_table(table.cast(schema), row_group_size=FLEET_ROW_GROUP_ROWS)
                rows += table.num_rows
        meta = {b"xcomlog.layout": FLEET, b"xcomlog.table": table_name, **(metadata or {})}
        writer.add_key_value_metadata(
            {
                k if isinstance(k, bytes) else k.encode(): v
                if isinstance(v, bytes)
                else str(v).encode()
                for k, v in meta.items()
            }
        )
    finally:
        writer.close()
    return rows


def drop_doubles(table: pa.Table, table_name: str) -> pa.Table:
    """One row per key: (site, time, address, number) for values (a datapoint has one value
    at one instant), the whole row for the other tables. For the moment a merge's or a
    compaction's result and its sources are visible together."""
    if table.num_rows == 0:
        return table
    if table_name == "values":
        keys = ["site", "time", "address", "number"]
        out = table.group_by(keys, use_threads=False).aggregate([("value", "first")])
        out = out.rename_columns([*keys, "value"])
    else:
        out = table.group_by(table.column_names, use_threads=False).aggregate([])
    return out.select(table.column_names).cast(table.schema)


def read_parquet_table(filesystem, path: str, **kwargs) -> pa.Table:
    """One Parquet file of a dataset as a table (no hive columns added from its path);
    ``kwargs`` go to pyarrow.parquet.read_table (columns, filters)."""
    with filesystem.open_input_file(path) as f:
        return pq.read_table(f, **kwargs).replace_schema_metadata(None)
