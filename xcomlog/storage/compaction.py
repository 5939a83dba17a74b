"""``xcomlog compact``: re-lay finished days of a dataset into the fleet layout.

For each table and UTC day before ``before``, every file of that day (home layout
``<table>/site=*/date=D/*.parquet`` of every site, and fleet files already in
``<table>/date=D/``) becomes one ``<table>/date=D/compact-<id>.parquet`` holding every
site, sorted by site (fleet_layout.py). Works on any location (a folder, s3://...).

- Atomic: the new file appears whole (a single put, or a rename on disk) before any source
  is deleted, so a reader never misses a row; until the deletes are done a plain reader
  can see a row twice (``xcomlog.read`` drops such doubles).
- Safe to interrupt: a run stopped between the put and the deletes leaves the new file and
  some sources; the next run compacts them together again, dropping the doubles.
- Idempotent: a day that already is a single ``compact-*`` file is left alone.

Days still being written must not be compacted (a writer could add a file that repeats
rows of the compacted one): ``before`` defaults to yesterday (UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from .filesystem import DatasetLocation, put_file
from .fleet_layout import fleet_table, read_parquet_table, write_fleet_sites
from .table_schemas import TABLES

log = logging.getLogger("xcomlog.compaction")

COMPACT_PREFIX = "compact-"


@dataclasses.dataclass
class CompactionReport:
    """What a compaction did: days re-laid, files read and deleted, rows written."""

    days: int = 0
    files_in: int = 0
    files_out: int = 0
    rows: int = 0
    skipped: int = 0  # days already compacted

    def format(self) -> str:
        return (
            f"compacted {self.days} table-day(s): {self.files_in} file(s) -> {self.files_out}, "
            f"{self.rows:,} rows; {self.skipped} already compact"
        )


def _is_data(info: pafs.FileInfo) -> bool:
    return (
        info.type == pafs.FileType.File
        and info.base_name.endswith(".parquet")
        and not info.base_name.startswith((".", "_"))
    )


def day_sources(location: DatasetLocation, table: str) -> dict[str, list[tuple[str, str | None]]]:
    """Every data file of ``table`` by UTC day: (path, site or None for fleet files)."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    table_dir = location.path(table)
    for entry in location.list_dir(table_dir):
        if entry.type != pafs.FileType.Directory:
            continue
        if entry.base_name.startswith("date="):
            for info in location.list_dir(entry.path):
                if _is_data(info):
                    out.setdefault(entry.base_name[5:], []).append((info.path, None))
        elif entry.base_name.startswith("site="):
            site = entry.base_name[5:]
            for day_dir in location.list_dir(entry.path):
                if not day_dir.base_name.startswith("date="):
                    continue
                for info in location.list_dir(day_dir.path):
                    if _is_data(info):
                        out.setdefault(day_dir.base_name[5:], []).append((info.path, site))
    return out


def compact_day(
    location: DatasetLocation, table: str, day: str, sources: list[tuple[str, str | None]]
) -> int:
    """Re-lay one table-day (see the module docstring); returns the rows written."""
    fs = location.filesystem
    home: dict[str, list[str]] = {}
    fleet_files = []
    for path, site in sources:
        if site is None:
            fleet_files.append(path)
        else:
            home.setdefault(site, []).append(path)
    fleet_sites: dict[str, None] = {}
    for path in fleet_files:  # the sites of fleet files, from their site column
        for site in read_parquet_table(fs, path, columns=["site"]).column("site").unique():
            fleet_sites[site.as_py()] = None

    def loader(site: str):
        def load() -> pa.Table:
            parts = [read_parquet_table(fs, p) for p in home.get(site, [])]
            parts = [fleet_table(table, [(site, t)]) for t in parts]
            parts += [read_parquet_table(fs, p, filters=[("site", "=", site)]) for p in fleet_files]
            return fleet_table(table, [(site, t) for t in parts])

        return load

    target = location.path(table, f"date={day}", f"{COMPACT_PREFIX}{uuid.uuid4().hex[:12]}.parquet")
    with tempfile.TemporaryDirectory(prefix="xcomlog-compact-") as tmp:
        local = Path(tmp) / "compact.parquet"
        rows = write_fleet_sites(
            table,
            [(s, loader(s)) for s in {**dict.fromkeys(home), **fleet_sites}],
            local,
            {b"xcomlog.compacted_from": str(len(sources))},
            dedupe=True,
        )
        put_file(location, target, local)
    for path, _ in sources:  # only after the new file is complete and visible
        location.delete(path)
    for path, site in sources:  # empty home-layout folders
        if site is not None and location.local:
            for folder in (Path(path).parent, Path(path).parent.parent):
                try:
                    folder.rmdir()
                except OSError:
                    break
    return rows


def compact_dataset(
    location: DatasetLocation,
    *,
    tables: tuple[str, ...] = TABLES,
    before: dt.date | None = None,
    since: dt.date | None = None,
) -> CompactionReport:
    """Re-lay every table-day in [since, before) into the fleet layout."""
    if before is None:
        before = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    report = CompactionReport()
    for table in tables:
        for day, sources in sorted(day_sources(location, table).items()):
            if day >= before.isoformat() or (since is not None and day < since.isoformat()):
                continue
            names = [p.rsplit("/", 1)[1] for p, _ in sources]
            if len(sources) == 1 and names[0].startswith(COMPACT_PREFIX):
                report.skipped += 1
                continue
            report.rows += compact_day(location, table, day, sources)
            report.days += 1
            report.files_in += len(sources)
            report.files_out += 1
            log.info("compacted %s %s: %d files", table, day, len(sources))
    return report
