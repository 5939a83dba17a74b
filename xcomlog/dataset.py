"""The on-disk dataset: the public names of xcomlog.storage, where each concern has its module.

Layout (hive-style, readable by pandas, DuckDB, Polars and Spark with no glue)::

    OUT/<table>/site=<SITE>/date=<YYYY-MM-DD>/<file>.parquet
    OUT/datapoints/site=<SITE>/datapoints.parquet      (names and units of every number)
    OUT/_journal/...                                    (crash journal, ignored by readers)

``date`` is the UTC date of the rows. Tables: ``values`` (the long table of logged
and imported values), ``messages``, ``events``, ``parameters`` and ``devices``.
Readers never see a half-written file: files are written under a temporary name,
fsynced and renamed into place. The live writer makes ``live-<time>-<id>.parquet`` files
(one per rotation, hourly by default) and merges a finished day's into
``day-<date>.parquet``, so years of data stay at one file per table, site and day. Every
Parquet file also carries the labels of the datapoints it holds in its key-value metadata
(``xcomlog.datapoints``), so a single file copied out of the dataset still describes itself.
"""

from __future__ import annotations

from .storage.datapoint_labels import (
    Label,
    labels_from_metadata,
    labels_metadata,
    labels_table,
    normalize_labels,
    read_labels,
    write_labels,
)
from .storage.dataset_writer import DatasetWriter
from .storage.day_merge import MERGE_DIR, META_MERGE_ID, merge_day
from .storage.journal import (
    BAD_SUFFIX,
    LOCK_FILE,
    SEGMENT_SUFFIX,
    _Segment,  # noqa: F401 - tests make its disk writes fail
    compact_segment,
    journal_segments,
    publish_segment,
    read_live_segment,
    read_segment,
)
from .storage.layout import (
    DATAPOINTS_FILE,
    DATAPOINTS_TABLE,
    DAY_PREFIX,
    JOURNAL_DIR,
    LIVE_PREFIX,
    TMP_SUFFIX,
    check_site,
    datapoints_path,
    day_of_ms,
    partition_dir,
    site_dir,
)
from .storage.parquet_files import (
    VALUES_SORT,
    VALUES_WRITE_OPTIONS,
    fsync_dir,
    write_parquet_atomic,
)
from .storage.table_schemas import (
    DATAPOINTS_SCHEMA,
    DEVICES_SCHEMA,
    EVENT_KINDS,
    EVENTS_SCHEMA,
    MESSAGES_SCHEMA,
    META_DATAPOINTS,
    META_JOURNAL_ROWS,
    META_SITE,
    META_TABLE,
    META_VERSION,
    PARAMETERS_SCHEMA,
    SCHEMAS,
    TABLES,
    TIME_TYPE,
    VALUES_SCHEMA,
)

__all__ = [
    "BAD_SUFFIX",
    "DATAPOINTS_FILE",
    "DATAPOINTS_SCHEMA",
    "DATAPOINTS_TABLE",
    "DAY_PREFIX",
    "DEVICES_SCHEMA",
    "EVENTS_SCHEMA",
    "EVENT_KINDS",
    "JOURNAL_DIR",
    "LIVE_PREFIX",
    "LOCK_FILE",
    "MERGE_DIR",
    "MESSAGES_SCHEMA",
    "META_DATAPOINTS",
    "META_JOURNAL_ROWS",
    "META_MERGE_ID",
    "META_SITE",
    "META_TABLE",
    "META_VERSION",
    "PARAMETERS_SCHEMA",
    "SCHEMAS",
    "SEGMENT_SUFFIX",
    "TABLES",
    "TIME_TYPE",
    "TMP_SUFFIX",
    "VALUES_SCHEMA",
    "VALUES_SORT",
    "VALUES_WRITE_OPTIONS",
    "DatasetWriter",
    "Label",
    "check_site",
    "compact_segment",
    "journal_segments",
    "publish_segment",
    "read_live_segment",
    "datapoints_path",
    "day_of_ms",
    "fsync_dir",
    "labels_from_metadata",
    "labels_metadata",
    "labels_table",
    "merge_day",
    "normalize_labels",
    "partition_dir",
    "read_labels",
    "read_segment",
    "site_dir",
    "write_labels",
    "write_parquet_atomic",
]
