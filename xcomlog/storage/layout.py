"""Where things live in the dataset folder: tables, site and date partitions, the journal.

Layout (hive-style, readable by pandas, DuckDB, Polars and Spark with no glue)::

    OUT/<table>/site=<SITE>/date=<YYYY-MM-DD>/<file>.parquet
    OUT/datapoints/site=<SITE>/datapoints.parquet      (names and units of every number)
    OUT/_journal/...                                    (crash journal, ignored by readers)

``date`` is the UTC date of the rows. The live writer's files are ``live-*.parquet``; a
finished day's are merged into ``day-<date>.parquet``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from .table_schemas import TABLES

#: The per-site labels table (partitioned by site only): OUT/datapoints/site=S/datapoints.parquet
DATAPOINTS_TABLE = "datapoints"
DATAPOINTS_FILE = "datapoints.parquet"

#: Folder of the crash journal; the leading underscore hides it from dataset discovery.
JOURNAL_DIR = "_journal"

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


def site_dir(root: str | os.PathLike, table: str, site: str) -> Path:
    """The folder of one table and site (parent of its ``date=`` folders)."""
    if table not in TABLES and table != DATAPOINTS_TABLE:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    return Path(root) / table / f"site={check_site(site)}"


def datapoints_path(root: str | os.PathLike, site: str) -> Path:
    """Where the labels of one site's datapoints live."""
    return site_dir(root, DATAPOINTS_TABLE, site) / DATAPOINTS_FILE


#: Milliseconds in a UTC day and the day POSIX time 0 falls on (rows go to ``date=`` folders).
MS_PER_DAY = 86_400_000
EPOCH_DATE = dt.date(1970, 1, 1)


def day_of_ms(time_ms: int) -> dt.date:
    """The UTC date of a POSIX time in milliseconds."""
    return EPOCH_DATE + dt.timedelta(days=int(time_ms) // MS_PER_DAY)


#: Names of the writer's Parquet files: ``live-*`` per journal segment, ``day-<date>`` merged.
LIVE_PREFIX = "live-"
DAY_PREFIX = "day-"
