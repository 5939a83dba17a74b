"""xcomlog: log Studer-Innotec installations over the Xcom protocol into Parquet datasets."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy ``xcomlog.read`` so ``import xcomlog`` stays fast (pandas loads on first use)."""
    if name == "read":
        from .reader import read

        return read
    raise AttributeError(f"module 'xcomlog' has no attribute {name!r}")
