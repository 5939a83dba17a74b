"""``xcomlog latest DIR``: the newest value of every datapoint of every device in a dataset.

    xcomlog latest data/                      every site
    xcomlog latest data/ --site home --watch  refreshed every 2 s until Ctrl-C

Reads only with the public reader (``xcomlog.read``), which includes the rows a running
logger has journalled but not yet published (each once), the last days of the ``values``
and ``parameters`` tables: it works while a logger writes. Each line: device, number,
name, value with its unit, and its age.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

#: Tables whose rows are (time, address, number, value).
TABLES = ("values", "parameters")
#: UTC days read per site and table: the newest day and the one before (a parameter
#: snapshot taken before midnight is still the latest one after it).
DAYS_READ = 2
#: Names longer than this are cut on screen (the JSON keeps them whole).
NAME_WIDTH = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    from ._options import duration

    parser = subparsers.add_parser(
        "latest",
        help="the latest value of every datapoint in a dataset (works while logging)",
        description=(
            "Print the latest value of every datapoint of every device in a dataset, with "
            "names, units and ages. Works while a logger writes into it."
        ),
        epilog=(
            "examples:\n"
            "  xcomlog latest data/\n"
            "  xcomlog latest data/ --site home --watch\n"
            "  xcomlog latest data/ --json\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", metavar="DIR", help="dataset folder (the logger's --out)")
    parser.add_argument("--site", help="only this site")
    parser.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        default=None,
        type=duration("--watch", maximum=3600.0),
        metavar="EVERY",
        help="refresh until Ctrl-C, every EVERY (default 2s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(func=run)


# --- reading ------------------------------------------------------------------------------


def _recent_rows(root: Path, table: str, site: str):
    """The rows of the newest two days of ``table`` at ``site`` (journalled ones included).

    ``xcomlog.read`` gives published and journalled rows, each once. The last two UTC days
    hold the latest values of a running logger; a site silent for longer is read from the
    day before its newest Parquet day.
    """
    import pandas as pd

    import xcomlog

    from ..reader import dataset_files

    today = pd.Timestamp.now(tz="UTC").normalize()
    start = today - pd.Timedelta(days=DAYS_READ - 1)
    rows = xcomlog.read(root, start=start, site=site, table=table, wide=False)
    if len(rows):
        return rows
    days = sorted({f.parent.name[len("date=") :] for f in dataset_files(root, table, site=site)})
    if not days:
        return rows
    start = pd.Timestamp(days[-1], tz="UTC") - pd.Timedelta(days=DAYS_READ - 1)
    return xcomlog.read(root, start=start, site=site, table=table, wide=False)


def latest_rows(root: Path, site: str | None = None) -> list[dict[str, Any]]:
    """The latest (time, value) of every (site, table, address, number), labelled."""
    import pandas as pd

    import xcomlog

    from ..catalog import load_catalog
    from ..protocol import device_name
    from ..reader import dataset_sites

    catalog = load_catalog()
    rows: list[dict[str, Any]] = []
    now = pd.Timestamp.now(tz="UTC")
    for name in [site] if site else dataset_sites(root):
        labels = xcomlog.read(root, table="datapoints", site=name)
        known = {
            (int(r.address), int(r.number)): (r.name, r.unit, r.family) for r in labels.itertuples()
        }
        for table in TABLES:
            both = _recent_rows(root, table, name)
            if not len(both):
                continue
            both = both[["time", "address", "number", "value"]].copy()
            both["time"] = pd.to_datetime(both["time"], utc=True)
            newest = (
                both.sort_values("time", kind="stable")
                .groupby(["address", "number"], sort=True)
                .tail(1)
            )
            for r in newest.sort_values(["address", "number"]).itertuples():
                address, number = int(r.address), int(r.number)
                label, unit, family = known.get((address, number), ("", "", None))
                dp = None
                try:
                    dp = catalog.at(number, address)
                except Exception:  # an address or number the catalog does not know
                    pass
                if not label and dp is not None:
                    label, unit = dp.name, dp.unit
                rows.append(
                    {
                        "site": name,
                        "table": table,
                        "device": device_name(address),
                        "address": address,
                        "number": number,
                        "name": label,
                        "unit": unit,
                        "value": None if pd.isna(r.value) else float(r.value),
                        "label": catalog.label(dp, r.value) if dp is not None else None,
                        "time": r.time.isoformat(),
                        "age_s": max(0.0, (now - r.time).total_seconds()),
                    }
                )
    return rows


# --- printing -----------------------------------------------------------------------------


def age_text(seconds: float) -> str:
    """``4 s``, ``12 min``, ``3 h 5 min``, ``2 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60} min"
    return f"{seconds / 86400:.0f} d"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print(rows: list[dict[str, Any]], stream=None) -> None:
    from ..formatting import format_quantity

    stream = stream or sys.stdout
    if not rows:
        print("no values yet", file=stream)
        return
    width = min(max(len(r["name"]) for r in rows), NAME_WIDTH)
    current = None
    for r in rows:
        if (r["site"], r["table"]) != current:
            current = (r["site"], r["table"])
            print(f"site {r['site']} ({r['table']})", file=stream)
        if r["value"] is None:
            shown = "-"
        elif r["label"] is not None:
            shown = f"{r['label']} ({int(r['value'])})"
        else:
            shown = format_quantity(r["value"], r["unit"])
        print(
            f"  {r['device']:<8} {r['number']:>5}  {_cut(r['name'], width):<{width}}  {shown:<18} "
            f"{age_text(r['age_s']):>10} ago",
            file=stream,
        )


def run(args: argparse.Namespace) -> int:
    from ..exceptions import ValidationError

    root = Path(args.dataset)
    if not root.is_dir():
        raise ValidationError(f"no dataset at {root}: give the folder a logger writes (--out)")
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ValidationError(
            "xcomlog latest reads with pandas: pip install 'xcomlog[analysis]'"
        ) from None
    if args.site:
        from ..reader import dataset_sites

        known = dataset_sites(root)
        if args.site not in known:
            raise ValidationError(
                f"no site {args.site!r} in {root} (sites: {', '.join(known) or 'none'})"
            )
    if args.watch is None:
        rows = latest_rows(root, args.site)
        if args.json:
            json.dump(rows, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            _print(rows)
        return 0
    clear = sys.stdout.isatty()
    try:
        while True:
            rows = latest_rows(root, args.site)
            if args.json:
                json.dump(rows, sys.stdout)
                sys.stdout.write("\n")
            else:
                if clear:
                    sys.stdout.write("\x1b[H\x1b[2J")
                stamp = dt.datetime.now().strftime("%H:%M:%S")
                print(f"{root} at {stamp} (Ctrl-C to stop)")
                _print(rows)
            sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
