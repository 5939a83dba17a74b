"""``PublishedDatasetWriter``: a DatasetWriter that works in a local folder (its journal and
Parquet files) and publishes whole files to a dataset elsewhere (object storage, another
disk) after every compaction and merge, and on close. See publisher.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from .dataset_writer import DatasetWriter
from .filesystem import DatasetLocation, default_journal_dir, default_writer_id, open_location
from .fleet_layout import HOME
from .publisher import DatasetPublisher

log = logging.getLogger("xcomlog.publisher")

#: Seconds between publish attempts while the store refuses (the files wait locally).
RETRY_SECONDS = 30.0


class PublishedDatasetWriter(DatasetWriter):
    """Write locally in ``journal`` (default: a per-output folder under the user cache) and
    publish to ``out`` (any path or pyarrow URI) in the ``home`` or ``fleet`` layout."""

    def __init__(
        self,
        out: str | os.PathLike | DatasetLocation,
        journal: str | os.PathLike | None = None,
        *,
        layout: str = HOME,
        writer_id: str | None = None,
        **kwargs,
    ) -> None:
        self.target = out if isinstance(out, DatasetLocation) else open_location(out)
        work = journal if journal is not None else default_journal_dir(self.target.text)
        self.writer_id = writer_id or default_writer_id(work)
        self.publisher = DatasetPublisher(work, self.target, self.writer_id, layout)
        self._publish_lock = threading.Lock()
        self._published_mark: tuple | None = None
        self._next_try = 0.0
        self.publish_error: BaseException | None = None
        if layout != HOME:  # a fleet file holds every site: put it again per rotation only
            kwargs["publish_interval"] = kwargs.get("rotate_interval", 3600.0)
        super().__init__(work, **kwargs)

    def _compact_pending(self) -> None:
        super()._compact_pending()
        self.publish()

    def publish(self, *, force: bool = False) -> None:
        """Publish what changed since the last time (a failure is logged and retried)."""
        stats = self.stats
        mark = tuple(stats.get(k) for k in ("files", "bytes", "rows_compacted", "publishes"))
        if not force and (mark == self._published_mark or time.monotonic() < self._next_try):
            return
        with self._publish_lock:
            try:
                self.publisher.sync()
            except Exception as exc:  # noqa: BLE001 - the store is down: files wait locally
                self.publish_error = exc
                self._next_try = time.monotonic() + RETRY_SECONDS
                log.warning("could not publish to %s (retrying): %s", self.target.text, exc)
                return
            self.publish_error = None
            self._published_mark = mark

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.publish(force=True)


def open_dataset_writer(
    out: str | os.PathLike,
    *,
    journal: str | os.PathLike | None = None,
    layout: str = HOME,
    writer_id: str | None = None,
    **kwargs,
) -> DatasetWriter:
    """The writer for ``out``: a plain DatasetWriter for a local folder in the home layout
    without ``journal``; otherwise a PublishedDatasetWriter working in ``journal``."""
    from .filesystem import is_uri

    if not is_uri(out) and journal is None and layout == HOME and writer_id is None:
        return DatasetWriter(out, **kwargs)
    return PublishedDatasetWriter(out, journal, layout=layout, writer_id=writer_id, **kwargs)
