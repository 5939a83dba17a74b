"""Reading a dataset back into pandas: long or wide, pruned to the days and sites asked for.

Only the ``date=`` folders inside [start, end) of the chosen sites are listed and opened,
so reading one day of one site out of years of data touches only that day's files.

Rows still in a logger's journal (a running logger's last flushes, or what a ``kill -9``
left) are read too, each row once: every journal segment stands for one ``live-*`` file,
which holds the segment's first rows (see xcomlog.storage.journal.read_live_segment).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .dataset import (
    DATAPOINTS_TABLE,
    JOURNAL_DIR,
    SCHEMAS,
    TABLES,
    journal_segments,
    labels_from_metadata,
    read_labels,
    read_live_segment,
)
from .protocol import device_name, parse_device
from .storage.file_listing import TableFiles, list_table_files
from .storage.filesystem import DatasetLocation, is_uri, open_location
from .storage.fleet_layout import drop_doubles

if TYPE_CHECKING:  # pandas is optional at run time (the ``analysis`` extra)
    import pandas as pd

log = logging.getLogger("xcomlog.reader")

_PARTITION_SCHEMA = pa.schema([("site", pa.string()), ("date", pa.string())])
_SITE = _PARTITION_SCHEMA.field("site")


def _pandas():
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "xcomlog.read returns pandas DataFrames: install pandas "
            "(pip install 'xcomlog[analysis]'), or open the dataset with pyarrow.dataset"
        ) from exc
    return pandas


def to_utc(value, *, name: str = "time", tz: str | None = None) -> pd.Timestamp | None:
    """A tz-aware UTC Timestamp from a string, date, datetime, Timestamp or POSIX seconds.

    Naive values are taken in the zone ``tz`` (``"Europe/Zurich"``), else as UTC; aware
    values and POSIX seconds are absolute.
    """
    pd = _pandas()
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ts = pd.Timestamp(value, unit="s")
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            ts = pd.Timestamp(value.isoformat())
        else:
            ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: cannot read {value!r} as a time ({exc})") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name}: {value!r} is not a time")
    if ts.tzinfo is not None:
        return ts.tz_convert("UTC")
    if tz is None or isinstance(value, (int, float)):
        return ts.tz_localize("UTC")
    try:
        local = ts.tz_localize(tz, ambiguous="raise", nonexistent="shift_forward")
    except Exception as exc:  # noqa: BLE001 - unknown zone or an ambiguous autumn hour
        raise ValueError(f"{name}: cannot place {value!r} in the zone {tz!r} ({exc})") from exc
    return local.tz_convert("UTC")


def _as_list(value, what: str) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [value]
    try:
        return list(value)
    except TypeError as exc:
        raise ValueError(f"{what}: expected a value or a list, got {value!r}") from exc


def _table_dir(path: Path, table: str) -> Path:
    """The folder of ``table`` under a dataset root (or the table folder itself)."""
    if path.name == table and any(path.glob("site=*")):  # the table folder was given
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no dataset at {path}")
    if not (path / table).is_dir() and not any(
        (path / t).is_dir() for t in (*TABLES, DATAPOINTS_TABLE)
    ):
        raise FileNotFoundError(
            f"{path} is not an xcomlog dataset (expected {path / table}/site=<SITE>/date=<DAY>/)"
        )
    return path / table  # may not exist yet: an empty table


def _check_table(table: str) -> None:
    if table not in TABLES and table != DATAPOINTS_TABLE:
        raise ValueError(
            f"unknown table {table!r}; tables are {', '.join((*TABLES, DATAPOINTS_TABLE))}"
        )


def dataset_sites(path: str | os.PathLike) -> list[str]:
    """Every site of a dataset, in any table (or only in the journal so far)."""
    root = Path(path)
    found = {
        p.name[5:]
        for base in (root, root / JOURNAL_DIR)
        for t in (*TABLES, DATAPOINTS_TABLE)
        for p in (base / t).glob("site=*")
        if p.is_dir()
    }
    return sorted(found)


def _check_sites(root: Path, sites: list | None) -> None:
    """An unknown site is an error naming the sites there are, not an empty frame."""
    if sites is None:
        return
    known = dataset_sites(root)
    unknown = [s for s in sites if str(s) not in known]
    if unknown:
        there = ", ".join(known) if known else "none yet"
        raise ValueError(
            f"no site {', '.join(map(repr, unknown))} in the dataset {root}; sites are: {there}"
        )


def _day_bounds(start, end, tz: str | None) -> tuple[str | None, str | None]:
    """The first and last UTC ``date=`` folder names [start, end) overlaps."""
    t0, t1 = to_utc(start, name="start", tz=tz), to_utc(end, name="end", tz=tz)
    first = t0.date().isoformat() if t0 is not None else None
    # end is exclusive: a midnight end does not include that day's folder
    last = (t1 - _pandas().Timedelta(microseconds=1)).date().isoformat() if t1 is not None else None
    return first, last


def dataset_files(
    path: str | os.PathLike,
    table: str = "values",
    *,
    site: str | Iterable[str] | None = None,
    start=None,
    end=None,
    tz: str | None = None,
) -> list[Path]:
    """The Parquet files of ``table`` for the sites and the UTC days overlapping [start, end).

    Lists only the matching ``date=`` folders: other days' files are never opened.
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
    table_dir = _table_dir(Path(path), table)
    first, last = _day_bounds(start, end, tz)
    sites = _as_list(site, "site")
    if sites is None:
        site_dirs = sorted(p for p in table_dir.glob("site=*") if p.is_dir())
    else:
        site_dirs = [table_dir / f"site={s}" for s in sites]
    files: list[Path] = []
    for site_dir in site_dirs:
        if not site_dir.is_dir():
            continue
        for day_dir in sorted(site_dir.glob("date=*")):
            day = day_dir.name[5:]
            if (first is not None and day < first) or (last is not None and day > last):
                continue
            files.extend(
                p
                for p in sorted(day_dir.iterdir())
                if p.suffix == ".parquet" and not p.name.startswith((".", "_"))
            )
    return files


def _locate(path: str | os.PathLike, table: str) -> tuple[DatasetLocation, str, object]:
    """(filesystem location, path of the table folder in it, dataset root for the labels)
    of a dataset given as a folder (or its table folder) or as a URI."""
    if not is_uri(path):
        table_dir = _table_dir(Path(path), table)
        location = open_location(table_dir.parent)
        return location, location.path(table_dir.name), table_dir.parent
    location = open_location(path)
    if not location.is_dir(location.base):
        raise FileNotFoundError(f"no dataset at {path}")
    return location, location.path(table), location


def _read_files(
    location: DatasetLocation,
    files: TableFiles,
    table_dir: str,
    table: str,
    expr,
    sites: list[str] | None,
) -> tuple[pa.Table, list]:
    """The rows of both layouts' files matching ``expr`` (plus a ``site`` column)."""
    schema = SCHEMAS[table]
    columns = [*schema.names, "site"]
    tables, fragments = [], []
    if files.home:
        dataset = ds.dataset(
            files.home,
            filesystem=location.filesystem,
            schema=pa.schema(list(schema) + list(_PARTITION_SCHEMA)),
            format="parquet",
            partitioning=ds.partitioning(_PARTITION_SCHEMA, flavor="hive"),
            partition_base_dir=table_dir,
        )
        tables.append(dataset.to_table(filter=expr, columns=columns))
        fragments = list(dataset.get_fragments())
    if files.fleet:
        date_schema = pa.schema([_PARTITION_SCHEMA.field("date")])
        dataset = ds.dataset(
            files.fleet,
            filesystem=location.filesystem,
            schema=pa.schema([_PARTITION_SCHEMA.field("site"), *schema, *date_schema]),
            format="parquet",
            partitioning=ds.partitioning(date_schema, flavor="hive"),
            partition_base_dir=table_dir,
        )
        fleet_expr = expr
        if sites is not None:
            in_sites = pc.field("site").isin(pa.array([str(s) for s in sites], pa.string()))
            fleet_expr = in_sites if expr is None else expr & in_sites
        tables.append(dataset.to_table(filter=fleet_expr, columns=columns).select(columns))
    if not tables:
        empty = pa.schema(list(schema) + [_PARTITION_SCHEMA.field("site")])
        return pa.Table.from_batches([], schema=empty), fragments
    arrow = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return arrow, fragments


def _journal_rows(
    root: Path, table: str, sites: list | None, start, end, tz: str | None
) -> tuple[set[Path], list[pa.Table]]:
    """Rows still in the journal for these sites and days, with a ``site`` column, and the
    ``live-*`` files they already include (not to be read a second time)."""
    first, last = _day_bounds(start, end, tz)
    wanted = None if sites is None else {str(s) for s in sites}
    covered: set[Path] = set()
    tables = []
    for site, day, segment in journal_segments(root, table):
        name = day.isoformat()
        if (wanted is not None and site not in wanted) or (first and name < first):
            continue
        if last and name > last:
            continue
        live, rows = read_live_segment(root, table, site, day, segment)
        covered.add(live)
        if rows is not None and rows.num_rows:
            tables.append(rows.append_column("site", pa.repeat(pa.scalar(site), rows.num_rows)))
    return covered, tables


def _labels_for(
    root: Path, sites: list[str], fragments, pairs: set[tuple[str, int, int]]
) -> dict[tuple[str, int, int], tuple[str, str, str]]:
    """(site, address, number) -> (name, unit, family): the datapoints table first, then
    the metadata of the files read (files copied out of a dataset still carry labels)."""
    out: dict[tuple[str, int, int], tuple[str, str, str]] = {}
    for site in sites:
        try:
            labels = read_labels(root, site)
        except (OSError, pa.ArrowException, ValueError):
            labels = {}
        for (address, number), label in labels.items():
            out[(site, address, number)] = (label[2], label[3], label[4])
    if pairs - out.keys():
        for fragment in fragments:
            site = Path(fragment.path).parent.parent.name[5:]
            try:
                meta = fragment.physical_schema.metadata
            except (OSError, pa.ArrowException):
                continue
            for (address, number), label in labels_from_metadata(meta).items():
                out.setdefault((site, address, number), (label[2], label[3], label[4]))
            if not pairs - out.keys():
                break
    return out


def column_label(
    site: str | None, address: int, number: int, name: str = "", unit: str = ""
) -> str:
    """The wide-format column name: ``"xt1 3000 Battery voltage [Vdc]"`` (site first when
    several sites are read: ``"home xt1 3000 ..."``)."""
    text = f"{device_name(address)} {number}"
    if name:
        text += f" {name}"
    if unit:
        text += f" [{unit}]"
    return f"{site} {text}" if site else text


def read(
    path: str | os.PathLike,
    start=None,
    end=None,
    numbers: int | Iterable[int] | None = None,
    site: str | Iterable[str] | None = None,
    addresses: int | str | Iterable[int | str] | None = None,
    wide: bool = True,
    *,
    table: str = "values",
    freq: str | None = None,
    tz: str | None = None,
    quantities: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read a dataset into a pandas DataFrame.

    ``start``/``end`` bound the time ([start, end); naive times are in ``tz``, else UTC, so
    ``start="2024-06-10", end="2024-06-11", tz="Europe/Zurich"`` is that local day); ``numbers`` and
    ``addresses`` (``101`` or ``"xt1"``) select datapoints; ``site`` one or more sites.
    ``wide=True`` (values only) gives a time index and one column per site, device and
    number, labelled with name and unit; ``freq`` (e.g. ``"1min"``) first floors times so
    values polled a few ms apart share a row. ``tz`` also converts the times for display.
    ``table`` reads ``messages``, ``events``, ``parameters`` or ``devices`` (always long),
    or ``datapoints`` (the labels; only ``site`` applies). An unknown table or site is a
    ValueError naming those there are. Rows a running (or killed) logger has journalled
    but not yet published are included, each once.
    ``quantities`` (``["State of Charge", "PV power"]``) reads one series per device and
    quantity from whichever infos recorded it, live or imported, with a ``source`` per
    row (see :mod:`xcomlog.quantities`; ``numbers`` does not apply).
    """
    if quantities is not None:
        from .quantities import read_quantities

        return read_quantities(
            path, quantities, start=start, end=end, site=site, addresses=addresses,
            wide=wide, freq=freq, tz=tz,
        )  # fmt: skip
    _pandas()
    _check_table(table)
    if table == DATAPOINTS_TABLE:
        return read_datapoints(path, site=site)
    location, table_dir, root = _locate(path, table)
    if location.local and not any((Path(root) / table).glob("date=*")):  # home layout
        _check_sites(root, _as_list(site, "site"))
    schema = SCHEMAS[table]
    t0, t1 = to_utc(start, name="start", tz=tz), to_utc(end, name="end", tz=tz)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise ValueError(f"end ({t1}) must be after start ({t0})")
    first, last = _day_bounds(start, end, tz)
    sites = _as_list(site, "site")

    numbers_list = _as_list(numbers, "numbers")
    address_list = _as_list(addresses, "addresses")
    if address_list is not None:
        address_list = [parse_device(a) for a in address_list]

    expr = None

    def both(e):
        return e if expr is None else expr & e

    if t0 is not None:
        expr = both(
            pc.field("time") >= pa.scalar(t0.to_pydatetime(), type=schema.field("time").type)
        )
    if t1 is not None:
        expr = both(
            pc.field("time") < pa.scalar(t1.to_pydatetime(), type=schema.field("time").type)
        )
    if numbers_list is not None and "number" in schema.names:
        expr = both(pc.field("number").isin(pa.array([int(n) for n in numbers_list], pa.uint16())))
    if address_list is not None and "address" in schema.names:
        expr = both(pc.field("address").isin(pa.array(address_list, pa.uint16())))

    columns = [*schema.names, "site"]
    for attempt in range(3):  # a day merge or a compaction may remove a file meanwhile
        try:
            covered, journal = set(), []
            if location.local:  # a remote dataset's journals are on its writers' disks
                covered, journal = _journal_rows(root, table, sites, start, end, tz)
            covered_paths = {str(Path(p).absolute()) for p in covered}
            files = list_table_files(location, table_dir, sites, first, last)
            files.home = [f for f in files.home if f not in covered_paths]
            arrow, fragments = _read_files(location, files, table_dir, table, expr, sites)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    parts = [arrow]
    for rows in journal:
        parts.append(ds.dataset(rows).to_table(filter=expr, columns=columns))
    arrow = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    if files.may_overlap:  # a merge's or compaction's result and its sources, for a moment
        arrow = drop_doubles(arrow, table)
    if table == "values":
        df = arrow.to_pandas()
    else:  # nullable address/number stay integers (pandas' UInt16) instead of floats
        pd = _pandas()
        nullable = {pa.uint16(): pd.UInt16Dtype(), pa.int32(): pd.Int32Dtype()}
        df = arrow.to_pandas(types_mapper=nullable.get)
    df["site"] = df["site"].astype("category")
    if tz is not None:
        for col in ("time", "logged"):
            if col in df:
                df[col] = df[col].dt.tz_convert(tz)

    if table != "values" or not wide:
        sort_cols = [c for c in ("time", "site", "address", "number") if c in df]
        df = df.sort_values(sort_cols, kind="stable").reset_index(drop=True)
        if table == "values" and len(df):
            _add_label_columns(df, root, fragments)
        return df
    return _to_wide(df, root, fragments, freq)


def read_datapoints(
    path: str | os.PathLike, site: str | Iterable[str] | None = None
) -> pd.DataFrame:
    """The names, units and families of the datapoints of one or more sites (one row per
    site, address and number), from ``OUT/datapoints``."""
    pd = _pandas()
    location = open_location(path)
    if not location.is_dir(location.base):
        raise FileNotFoundError(f"no dataset at {path}")
    root = Path(location.base) if location.local else location
    sites = _as_list(site, "site")
    if sites is None:
        sites = sorted(
            i.base_name[5:]
            for i in location.list_dir(location.path(DATAPOINTS_TABLE))
            if i.base_name.startswith("site=")
        )
    frames = []
    for s in sites:
        labels = read_labels(root, s)
        if labels:
            frame = pd.DataFrame(
                [label for _, label in sorted(labels.items())],
                columns=["address", "number", "name", "unit", "family", "kind"],
            )
            frame.insert(0, "site", s)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["site", "address", "number", "name", "unit", "family", "kind"])
    out = pd.concat(frames, ignore_index=True)
    out.insert(3, "device", [device_name(int(a)) for a in out["address"]])
    return out


def _add_label_columns(df, root: Path, fragments) -> None:
    pd = _pandas()
    sites = [str(s) for s in df["site"].cat.categories]
    keys = df[["site", "address", "number"]].drop_duplicates()
    pairs = {(str(s), int(a), int(n)) for s, a, n in keys.itertuples(index=False)}
    labels = _labels_for(root, sites, fragments, pairs)
    names = {k: labels.get(k, ("", "", ""))[0] for k in pairs}
    units = {k: labels.get(k, ("", "", ""))[1] for k in pairs}
    index = pd.MultiIndex.from_frame(df[["site", "address", "number"]].astype({"site": str}))
    df["device"] = pd.Categorical([device_name(int(a)) for a in df["address"]])
    df["name"] = pd.Categorical(index.map(lambda k: names.get((k[0], int(k[1]), int(k[2])), "")))
    df["unit"] = pd.Categorical(index.map(lambda k: units.get((k[0], int(k[1]), int(k[2])), "")))


def _to_wide(df, root: Path, fragments, freq: str | None):
    pd = _pandas()
    import numpy as np

    sites = [str(s) for s in df["site"].cat.categories if (df["site"] == s).any()]
    multi_site = len(sites) > 1
    site_code = df["site"].cat.codes.to_numpy().astype(np.int64)
    key = (
        (site_code << 32)
        | (df["address"].to_numpy().astype(np.int64) << 16)
        | df["number"].to_numpy().astype(np.int64)
    )
    times = df["time"]
    if freq is not None:
        times = times.dt.floor(freq)
    long = pd.DataFrame({"time": times, "key": key, "value": df["value"]})
    long = long.drop_duplicates(subset=["time", "key"], keep="last")
    wide = long.pivot(index="time", columns="key", values="value").sort_index()
    categories = list(df["site"].cat.categories)
    keys = {
        k: (str(categories[k >> 32]), (k >> 16) & 0xFFFF, k & 0xFFFF)
        for k in (int(c) for c in wide.columns)
    }
    labels = _labels_for(root, sites, fragments, set(keys.values()))
    names = {}
    info = {}
    for k, (site, address, number) in keys.items():
        name, unit, family = labels.get((site, address, number), ("", "", ""))
        label = column_label(site if multi_site else None, address, number, name, unit)
        names[k] = label
        info[label] = {
            "site": site,
            "address": address,
            "device": device_name(address),
            "number": number,
            "name": name,
            "unit": unit,
            "family": family,
        }
    wide = wide.rename(columns=names)
    wide.columns.name = None
    wide.index.name = "time"
    wide.attrs["datapoints"] = info
    return wide


__all__ = ["read", "read_datapoints", "dataset_files", "column_label", "to_utc"]
