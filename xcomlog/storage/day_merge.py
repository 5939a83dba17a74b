"""Day merges: a finished day's ``live-*`` files become one ``day-<date>.parquet``, crash-safe
through a manifest in the journal that recovery completes or drops.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .datapoint_labels import Label, file_metadata, labels_from_metadata
from .layout import DAY_PREFIX, JOURNAL_DIR, LIVE_PREFIX, partition_dir
from .parquet_files import (
    fsync_dir,
    sort_table,
    table_write_options,
    write_parquet_atomic,
    write_small_file,
)
from .table_schemas import SCHEMAS

log = logging.getLogger("xcomlog.dataset")

MERGE_DIR = "merges"  # under _journal: one manifest per day merge in progress
META_MERGE_ID = b"xcomlog.merge_id"


def _merge_manifest(root: Path, table_name: str, site: str, day: dt.date) -> Path:
    return root / JOURNAL_DIR / MERGE_DIR / f"{table_name}~{site}~{day.isoformat()}.json"


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
    write_small_file(manifest, json.dumps(info).encode())
    try:
        schema = SCHEMAS[table_name]
        tables, merged_labels = [], {}
        for p in sources:
            t = pq.read_table(p, partitioning=None)
            merged_labels.update(labels_from_metadata(t.schema.metadata))
            tables.append(t.select(schema.names).cast(schema).replace_schema_metadata(None))
        merged_labels.update(labels or {})
        table = sort_table(table_name, pa.concat_tables(tables))
        meta = file_metadata(table_name, site, table, merged_labels, {META_MERGE_ID: merge_id})
        write_parquet_atomic(table, day_file, metadata=meta, **table_write_options(table_name))
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


def unmerged_days(root: str | os.PathLike, before: dt.date) -> list[tuple[str, str, dt.date]]:
    """(table, site, day) of the days before ``before`` whose writer files were never merged
    (a crash, or a stop, came before the day ended), oldest first."""
    root = Path(root)
    found = []
    for table_name in SCHEMAS:
        for folder in (root / table_name).glob("site=*/date=*"):
            try:
                site = folder.parent.name.split("=", 1)[1]
                day = dt.date.fromisoformat(folder.name.split("=", 1)[1])
            except (IndexError, ValueError):
                continue
            if day >= before:
                continue
            parts = list(folder.glob(f"{LIVE_PREFIX}*.parquet"))
            merged = (folder / f"{DAY_PREFIX}{day.isoformat()}.parquet").exists()
            if parts and len(parts) + merged >= 2:
                found.append((day, table_name, site))
    return [(table_name, site, day) for day, table_name, site in sorted(found)]


def finish_merges(root: Path) -> None:
    """Complete or drop the day merges a crash interrupted (see merge_day)."""
    for manifest in sorted((root / JOURNAL_DIR / MERGE_DIR).glob("*.json")):
        _finish_merge(root, manifest)
