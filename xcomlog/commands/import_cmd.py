"""``xcomlog import``: SD-card datalogs (LGyymmdd.CSV) into the dataset, beside live data."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` sub-command."""
    parser = subparsers.add_parser(
        "import",
        help="import SD-card datalogs (LGyymmdd.CSV) into the Parquet dataset",
        description=(
            "Import Studer SD-card datalog files (CSVFILES/LOG/LGyymmdd.CSV written by the "
            "RCC or Xcom-232i) into the same dataset the live logger writes. Copies of a day "
            "are merged value by value: a later copy only adds what the stored one lacks, so "
            "a damaged copy never replaces good data and nothing is stored twice. A damaged "
            "file is reported in the summary and the others are imported."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="datalog files, folders (searched recursively for LG*.CSV) or glob patterns",
    )
    parser.add_argument("--site", required=True, help="site name (a folder name in the dataset)")
    parser.add_argument(
        "--tz",
        required=True,
        metavar="ZONE",
        help="zone of the datalogger clock, e.g. Europe/Zurich (Etc/GMT-1 if it ignores DST)",
    )
    parser.add_argument(
        "--out",
        default="data",
        metavar="DIR_OR_URI",
        help="dataset folder or URI (s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http, "
        "gs://, hdfs://, file://; default: data)",
    )
    parser.add_argument(
        "--journal",
        metavar="DIR",
        help="local working folder when --out is a URI: files are written there, then put "
        "whole into the store (default: ~/.cache/xcomlog/journal/<hash of --out and import>)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace imported days with these copies instead of merging them",
    )
    parser.add_argument(
        "--phase-columns",
        choices=("auto", "phase"),
        default="auto",
        help="XT L1/L2/L3 columns: 'phase' always maps them to 191-193; 'auto' (default) "
        "maps L1 of a single-Xtender installation to that Xtender (101)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import, print the summary; exit code 0, 1 if a file failed, 2 for a bad path or option."""
    from ..exceptions import ConfigError, DatalogError
    from ..importer import import_paths
    from ..storage.filesystem import default_journal_dir, is_uri, open_location
    from ..storage.publisher import DatasetPublisher

    out, target = args.out, None
    try:
        if is_uri(args.out) or args.journal:  # written locally, then put whole into the store
            target = open_location(args.out)
            out = args.journal or default_journal_dir(f"{args.out}#import")
        summary = import_paths(
            args.paths,
            site=args.site,
            tz=args.tz,
            out=out,
            progress=not args.no_progress,
            force=args.force,
            phase_columns=args.phase_columns,
        )
    except (ConfigError, DatalogError) as exc:
        print(f"xcomlog import: error: {exc}", file=sys.stderr)
        return 2
    if target is not None:
        DatasetPublisher(out, target, writer_id="import").sync(retire=False)
        summary.out = args.out
    details = 10_000 if getattr(args, "verbose", 0) else 10
    print(summary.format(details=details))
    return 0 if summary.ok else 1
