"""``xcomlog compact``: re-lay finished days of a dataset (a folder or s3://...) into the fleet
layout, one file per table and day holding every site."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compact",
        help="re-lay finished days into the fleet layout (one file per table and day)",
        description=(
            "Turn the files of each finished UTC day (a folder per site and day, or several "
            "fleet files) into one file per table and day holding every site, sorted by site. "
            "Atomic per day (the new file is complete before any old one is deleted), safe to "
            "interrupt and to run again. Works on folders and on URIs (s3://...)."
        ),
        epilog=(
            "examples:\n"
            "  xcomlog compact data/\n"
            "  xcomlog compact 's3://lake/studer?endpoint_override=127.0.0.1:9000&scheme=http'\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="DIR_OR_URI", help="the dataset")
    parser.add_argument(
        "--before",
        metavar="DATE",
        help="compact days before this UTC date (default: yesterday; days still being "
        "written must not be compacted)",
    )
    parser.add_argument("--since", metavar="DATE", help="compact days from this UTC date on")
    parser.add_argument(
        "--table",
        action="append",
        choices=("values", "messages", "events", "parameters", "devices"),
        help="only this table (repeatable; default: every table)",
    )
    parser.set_defaults(func=run)


def _date(text: str | None, option: str) -> dt.date | None:
    from ..exceptions import ConfigError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a date such as 2024-06-30") from None


def run(args: argparse.Namespace) -> int:
    from ..storage.compaction import compact_dataset
    from ..storage.filesystem import open_location
    from ..storage.table_schemas import TABLES

    location = open_location(args.out)
    if not location.is_dir(location.base):
        print(f"xcomlog compact: error: no dataset at {args.out}", file=sys.stderr)
        return 2
    report = compact_dataset(
        location,
        tables=tuple(args.table) if args.table else TABLES,
        before=_date(args.before, "--before"),
        since=_date(args.since, "--since"),
    )
    print(report.format())
    return 0
