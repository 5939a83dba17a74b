"""xcomlog: log Studer-Innotec installations over the Xcom protocol into Parquet datasets."""

from __future__ import annotations

__version__ = "0.1.0"
