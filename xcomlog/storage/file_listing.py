"""Listing the Parquet files of a table on any filesystem, in both layouts at once.

Home layout files sit in ``<table>/site=S/date=D/``, fleet layout files in
``<table>/date=D/`` (with a ``site`` column). Only the ``date=`` folders inside the asked
range (and, for the home layout, the asked sites' folders) are listed.
"""

from __future__ import annotations

import dataclasses

import pyarrow.fs as pafs

from .filesystem import DatasetLocation
from .fleet_layout import REPLACING_PREFIXES


@dataclasses.dataclass
class TableFiles:
    """The files of one table: home-layout and fleet-layout paths, and whether a file that
    replaces others (a merge or compaction result) shares a day with other files, in which
    case a reader may see rows twice for a moment and must drop doubles."""

    home: list[str] = dataclasses.field(default_factory=list)
    fleet: list[str] = dataclasses.field(default_factory=list)
    may_overlap: bool = False


def _is_data_file(info: pafs.FileInfo) -> bool:
    return (
        info.type == pafs.FileType.File
        and info.base_name.endswith(".parquet")
        and not info.base_name.startswith((".", "_"))
    )


def _fleet_writer(name: str) -> str:
    """The writer of a fleet file ``<kind>-<writer>-<id>.parquet``."""
    return name.split("-", 1)[-1].rsplit("-", 1)[0]


def _in_range(day: str, first: str | None, last: str | None) -> bool:
    return not ((first is not None and day < first) or (last is not None and day > last))


def list_table_files(
    location: DatasetLocation,
    table_dir: str,
    sites: list[str] | None,
    first: str | None,
    last: str | None,
) -> TableFiles:
    """The data files of the table folder ``table_dir`` for ``sites`` (None: all) and the
    UTC days ``first``..``last`` (ISO dates, inclusive; None: open)."""
    out = TableFiles()
    per_day: dict[str, list[str]] = {}
    entries = location.list_dir(table_dir)
    site_dirs = []
    for entry in entries:
        if entry.type != pafs.FileType.Directory:
            continue
        if entry.base_name.startswith("site="):
            if sites is None or entry.base_name[5:] in sites:
                site_dirs.append(entry.path)
        elif entry.base_name.startswith("date=") and _in_range(entry.base_name[5:], first, last):
            names = [i for i in location.list_dir(entry.path) if _is_data_file(i)]
            out.fleet.extend(sorted(i.path for i in names))
            writers = [_fleet_writer(i.base_name) for i in names]
            if len(writers) != len(set(writers)):  # a writer's file and its replacement
                out.may_overlap = True
            per_day.setdefault(entry.base_name[5:], []).extend(i.base_name for i in names)
    for site_dir in sorted(site_dirs):
        for day_dir in sorted(location.list_dir(site_dir), key=lambda i: i.base_name):
            day = day_dir.base_name[5:]
            if day_dir.type != pafs.FileType.Directory or not day_dir.base_name.startswith("date="):
                continue
            if not _in_range(day, first, last):
                continue
            names = [i for i in location.list_dir(day_dir.path) if _is_data_file(i)]
            out.home.extend(sorted(i.path for i in names))
            key = f"{day}/{site_dir}"
            per_day.setdefault(key, []).extend(i.base_name for i in names)
            if day in per_day and names:  # the same day in both layouts (a compaction)
                out.may_overlap = True
    for names in per_day.values():
        if len(names) > 1 and any(n.startswith(REPLACING_PREFIXES) for n in names):
            out.may_overlap = True
    return out
