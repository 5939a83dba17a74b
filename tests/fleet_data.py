"""A small dataset in both layouts for the engine tests (Spark, DuckDB, Polars)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np

from xcomlog.dataset import DatasetWriter
from xcomlog.storage.compaction import compact_dataset
from xcomlog.storage.filesystem import open_location

SITES = ("alpha", "beta", "gamma")
DAYS = (dt.date(2024, 6, 10), dt.date(2024, 6, 11), dt.date(2024, 6, 12))
ROWS_PER_SITE_DAY = 2 * 1440  # two datapoints every minute


def make_layouts(tmp: Path) -> tuple[Path, Path]:
    """(home, fleet): the same values, written live (home) and compacted (fleet)."""
    home = tmp / "home"
    with DatasetWriter(home, flush_interval=60) as writer:
        for k, site in enumerate(SITES):
            for day in DAYS:
                start = int(
                    dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()
                    * 1000
                )
                t = start + np.arange(1440, dtype=np.int64) * 60_000
                for number in (3000, 3005):
                    value = (np.arange(1440) % 97 + k).astype(np.float32)
                    writer.append_values(site, t, 101, number, value)
    fleet = tmp / "fleet"
    shutil.copytree(home, fleet)
    compact_dataset(open_location(fleet), before=dt.date(2030, 1, 1))
    return home, fleet
