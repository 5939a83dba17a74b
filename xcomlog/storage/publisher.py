"""Publishing a writer's local files to a dataset elsewhere (object storage, another disk).

A writer whose ``--out`` is a URI (or that was given ``--journal``) writes its journal and
its Parquet files to a local working folder exactly as it would write a local dataset; the
publisher then puts whole files into the shared dataset after every compaction and merge:

- ``home`` layout: each local file becomes ``<same folders>/<name>.<writer>[.<merge>].parquet``
  (the writer id in every name, so writers never overwrite each other's files; a day file's
  merge id in its name, so a later merge of late rows never overwrites an earlier one);
- ``fleet`` layout (fleet_layout.py): the new live files of a (table, day) go into one
  ``live-<writer>-<id>.parquet`` with a ``site`` column; once every site of that day is
  merged, one ``day-<writer>-<id>.parquet`` replaces the writer's files of that day.

Every new file is put before the files it replaces are deleted, so nothing is ever
missing; for the moment between the two (the time of a few deletes, or until the next
start after a crash there) a plain reader can see a row twice, and ``xcomlog.read`` drops
such doubles. What was published is kept in ``<working folder>/_publish.json`` (written
atomically after each step), so a restarted writer carries on where it stopped: a put that
was not recorded is done again under the same name. The working folder keeps the last
RETAIN_DAYS days; older days are dropped locally once published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .day_merge import META_MERGE_ID
from .filesystem import DatasetLocation, put_file
from .fleet_layout import FLEET, HOME, check_layout, write_fleet_sites
from .layout import DATAPOINTS_TABLE, DAY_PREFIX, JOURNAL_DIR, LIVE_PREFIX
from .parquet_files import write_small_file
from .table_schemas import SCHEMAS

log = logging.getLogger("xcomlog.publisher")

STATE_FILE = "_publish.json"
WORK_DIR = "_publish"
#: Days kept in the working folder after they were published (late rows of a day that was
#: dropped locally are published as a file of their own).
RETAIN_DAYS = 2


def _signature(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _parse(rel: str) -> tuple[str, str | None, str | None, str]:
    """(table, site, date, name) of a working-folder path ``table/site=S[/date=D]/name``."""
    parts = rel.split("/")
    table = parts[0]
    site = parts[1][5:] if len(parts) > 2 and parts[1].startswith("site=") else None
    date = parts[2][5:] if len(parts) > 3 and parts[2].startswith("date=") else None
    return table, site, date, parts[-1]


def _merge_pending(day_files: dict[str, Path]) -> bool:
    """True while a site of this day still has live files its writer will merge (a site
    folder with a live file among two or more files; merge_day leaves a lone file alone)."""
    per_site: dict[str | None, list[str]] = {}
    for rel in day_files:
        per_site.setdefault(_parse(rel)[1], []).append(_parse(rel)[3])
    return any(
        len(names) > 1 and any(n.startswith(LIVE_PREFIX) for n in names)
        for names in per_site.values()
    )


class DatasetPublisher:
    """Puts the files of a local working folder into a dataset, whole files only."""

    def __init__(
        self, work: str | os.PathLike, target: DatasetLocation, writer_id: str, layout: str = HOME
    ) -> None:
        self.work = Path(work)
        self.target = target
        self.writer_id = writer_id
        self.layout = check_layout(layout)
        self.state_path = self.work / STATE_FILE
        self.state = self._load()

    def _load(self) -> dict:
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            state = {}
        except ValueError:
            log.warning("unreadable %s: publishing every local file again", self.state_path)
            state = {}
        state.setdefault("files", {})  # home: local rel -> {"sig", "remote", "retired"}
        state.setdefault("units", [])  # fleet: {"remote", "table", "date", "sources", ...}
        return state

    def _save(self) -> None:
        write_small_file(self.state_path, json.dumps(self.state, sort_keys=True).encode())

    def _local_files(self) -> dict[str, Path]:
        out = {}
        for table in (*SCHEMAS, DATAPOINTS_TABLE):
            folder = self.work / table
            if folder.is_dir():
                for p in folder.rglob("*.parquet"):
                    if not p.name.startswith((".", "_")):
                        out[p.relative_to(self.work).as_posix()] = p
        return out

    def sync(self, *, today: dt.date | None = None, retire: bool = True) -> int:
        """Publish what changed locally since the last call; returns files put. ``retire``
        drops published days older than RETAIN_DAYS from the working folder."""
        today = today or dt.datetime.now(dt.timezone.utc).date()
        local = self._local_files()
        if self.layout == HOME:
            put = self._sync_home(local)
        else:
            put = self._sync_fleet(local, today)
        if retire:
            self._retire(local, today)
        return put

    # -- home layout -------------------------------------------------------------------

    def _remote_name(self, rel: str, path: Path) -> str:
        folder, _, name = rel.rpartition("/")
        table = rel.split("/", 1)[0]
        if table == DATAPOINTS_TABLE:
            return rel  # one per site, and a site has one writer
        stem = name[: -len(".parquet")]
        if not name.startswith((DAY_PREFIX, LIVE_PREFIX)):
            return rel  # imported days (sd-*) keep their names: importing again replaces them
        tag = ""
        if name.startswith(DAY_PREFIX):
            merge_id = (pq.read_schema(path).metadata or {}).get(META_MERGE_ID)
            tag = "." + (merge_id.decode()[:8] if merge_id else uuid.uuid4().hex[:8])
        return f"{folder}/{stem}.{self.writer_id}{tag}.parquet"

    def _sync_home(self, local: dict[str, Path]) -> int:
        files = self.state["files"]
        put = 0
        for rel, path in sorted(local.items()):
            sig = _signature(path)
            entry = files.get(rel)
            if entry is not None and entry["sig"] == sig:
                continue
            remote = self._remote_name(rel, path)
            put_file(self.target, self.target.path(remote), path)
            put += 1
            old = entry["remote"] if entry else None
            files[rel] = {"sig": sig, "remote": remote}
            self._save()
            if old and old != remote and not entry.get("retired"):
                self.target.delete(self.target.path(old))
        gone = [rel for rel, e in files.items() if rel not in local and not e.get("retired")]
        for rel in gone:  # merged into a day file that is already published
            self.target.delete(self.target.path(files[rel]["remote"]))
            del files[rel]
        if gone:
            self._save()
        return put

    # -- fleet layout ------------------------------------------------------------------

    def _sync_fleet(self, local: dict[str, Path], today: dt.date) -> int:
        units = self.state["units"]
        put = self._sync_home({r: p for r, p in local.items() if r.startswith(DATAPOINTS_TABLE)})
        published = {rel for u in units for rel in u["sources"]}
        by_day: dict[tuple[str, str], dict[str, Path]] = {}
        for rel, path in local.items():
            table, site, date, _ = _parse(rel)
            if table in SCHEMAS and site and date:
                by_day.setdefault((table, date), {})[rel] = path
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        for (table, date), day_files in sorted(by_day.items()):
            live = [
                u
                for u in units
                if u["table"] == table and u["date"] == date and not u.get("retired")
            ]
            finished = date < today.isoformat() and (
                not _merge_pending(day_files) or date < yesterday
            )
            if finished:
                # One day file per writer: every local file of the day, replacing the
                # writer's earlier files of that day (unless it is already exactly that).
                sources = {rel: _signature(p) for rel, p in day_files.items()}
                if not (
                    len(live) == 1 and live[0]["kind"] == "day" and live[0]["sources"] == sources
                ):
                    put += self._put_unit(table, date, day_files, "day", replaces=live)
                continue
            # Today: a unit whose live files grew (the writer republishes a growing segment's
            # live file) is put again whole under a new name, replacing the old one; then
            # the new live files go in a new unit. Day files wait for the day's end (their
            # rows may already be in live units).
            for unit in live:
                sources = unit["sources"]
                if all(rel in day_files for rel in sources) and any(
                    _signature(day_files[rel]) != sig for rel, sig in sources.items()
                ):
                    current = {rel: day_files[rel] for rel in sources}
                    put += self._put_unit(table, date, current, "live", replaces=[unit])
            new = {
                r: p
                for r, p in day_files.items()
                if r not in published and _parse(r)[3].startswith(LIVE_PREFIX)
            }
            if new:
                put += self._put_unit(table, date, new, "live", replaces=[])
        return put

    def _put_unit(
        self, table: str, date: str, sources: dict[str, Path], kind: str, replaces: list
    ) -> int:
        by_site: dict[str, list[Path]] = {}
        for rel, path in sorted(sources.items()):
            by_site.setdefault(_parse(rel)[1], []).append(path)

        def loader(paths: list[Path]):
            return lambda: pa.concat_tables(
                [pq.read_table(p, partitioning=None).replace_schema_metadata(None) for p in paths],
                promote_options="permissive",
            )

        signatures = {rel: _signature(p) for rel, p in sorted(sources.items())}
        # Named after its sources: a put whose record a crash lost is redone under the same
        # name (replacing it) instead of adding a second copy of the same rows.
        digest = hashlib.sha1(json.dumps(signatures, sort_keys=True).encode()).hexdigest()[:12]
        remote = f"{table}/date={date}/{kind}-{self.writer_id}-{digest}.parquet"
        tmp = self.work / WORK_DIR / f"{uuid.uuid4().hex}.parquet"
        try:
            write_fleet_sites(table, [(s, loader(p)) for s, p in by_site.items()], tmp)
            put_file(self.target, self.target.path(remote), tmp)
        finally:
            tmp.unlink(missing_ok=True)
        units = self.state["units"]
        units[:] = [u for u in units if u["remote"] != remote]
        units.append(
            {"remote": remote, "table": table, "date": date, "kind": kind, "sources": signatures}
        )
        self._save()
        for old in replaces:
            if old["remote"] != remote:
                self.target.delete(self.target.path(old["remote"]))
            if old in units and old["remote"] != remote:
                units.remove(old)
        if replaces:
            self._save()
        return 1

    # -- the working folder ------------------------------------------------------------

    def _retire(self, local: dict[str, Path], today: dt.date) -> None:
        """Drop days older than RETAIN_DAYS from the working folder once published."""
        oldest = (today - dt.timedelta(days=RETAIN_DAYS)).isoformat()
        files = self.state["files"]
        units = self.state["units"]
        in_units = {rel for u in units for rel in u["sources"]}
        changed = False
        for rel, path in local.items():
            table, site, date, name = _parse(rel)
            if table not in SCHEMAS or date is None or date >= oldest:
                continue
            if not name.startswith(DAY_PREFIX) and not name.startswith("sd-"):
                continue  # live files wait for their day merge
            if self.layout == HOME:
                entry = files.get(rel)
                if entry is None or entry["sig"] != _signature(path):
                    continue
                entry["retired"] = True
            elif rel not in in_units:
                continue
            path.unlink()
            changed = True
        if self.layout == FLEET:
            for u in units:
                if u["date"] < oldest and not u.get("retired"):
                    if not any((self.work / rel).exists() for rel in u["sources"]):
                        u["retired"] = True
                        changed = True
        if changed:
            self._save()
            for folder in sorted(self.work.glob("*/site=*/date=*")):
                try:
                    folder.rmdir()
                except OSError:
                    pass

    def remove_work(self) -> None:
        """Delete the working folder (tests, or a writer that moved elsewhere)."""
        if (self.work / JOURNAL_DIR).exists():
            shutil.rmtree(self.work)
