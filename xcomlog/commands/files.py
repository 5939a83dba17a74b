"""``xcomlog files list|get``: the datalog files on the Xcom-232i's SD card, over the link.

    xcomlog files list --tcp 192.168.1.50:4001
    xcomlog files get --since 2024-06-01 --out sd/ --tcp 192.168.1.50:4001
    xcomlog files get LG240601.CSV --import --site home --tz Europe/Zurich --out data/ --serial /dev/ttyUSB0

``--out`` is where things go, as in every command: the folder the files are saved in, or
with ``--import`` the dataset (``--save DIR`` then keeps the files as well). Destinations
are checked before anything is transferred. Downloaded files appear complete or not at
all (written under a temporary name, then renamed), and a file that was transferred is
never dropped: if it cannot be saved where asked, it is saved in the current folder.
On a terminal a bar shows the bytes received and the rate (a day file takes about two
minutes at 38400 baud).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from ..protocol import datalog_file_date
from ._link import add_device_command_options, client_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``files`` with its ``list`` and ``get`` sub-commands."""
    files = subparsers.add_parser(
        "files",
        help="list or download the SD-card datalog files over the link",
        description="The datalog files (LGyymmdd.CSV) on the gateway's SD card.",
    )
    actions = files.add_subparsers(dest="files_command", metavar="ACTION")
    files.set_defaults(func=lambda args: (files.print_help(), 2)[1])

    listing = actions.add_parser("list", help="list the datalog files")
    listing.add_argument("--since", metavar="DATE", help="only files of this day or later")
    add_device_command_options(listing)
    listing.set_defaults(func=run_list)

    get = actions.add_parser(
        "get",
        help="download datalog files (and import them)",
        epilog=(
            "examples:\n"
            "  xcomlog files get --since 2024-06-01 --out sd/ --tcp 192.168.1.50:4001\n"
            "  xcomlog files get --import --site home --tz Europe/Zurich --out data/ --udp 192.168.1.50\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("names", nargs="*", metavar="NAME", help="files to get (default: all)")
    get.add_argument("--since", metavar="DATE", help="only files of this day or later")
    get.add_argument(
        "--out",
        metavar="DIR",
        help="folder the files are saved in; with --import the dataset folder (default data)",
    )
    get.add_argument("--save", metavar="DIR", help="with --import: also keep the files in DIR")
    get.add_argument(
        "--import", dest="do_import", action="store_true", help="import them into the dataset"
    )
    get.add_argument("--site", help="site name for --import")
    get.add_argument("--tz", metavar="ZONE", help="zone of the datalogger clock for --import")
    # The old spelling of the dataset folder: --out now says it, as in every other command.
    get.add_argument("--data", metavar="DIR", default=None, help=argparse.SUPPRESS)
    get.add_argument(
        "--force", action="store_true", help="with --import: replace days already imported"
    )
    add_device_command_options(get)
    get.set_defaults(func=run_get)


def _since(text: str | None) -> dt.date | None:
    from ..exceptions import ValidationError

    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"invalid --since {text!r}: use YYYY-MM-DD") from None


def _select(names: list[str], since: dt.date | None) -> list[str]:
    if since is None:
        return names
    out = []
    for name in names:
        day = datalog_file_date(name)
        if day is not None and day >= since:
            out.append(name)
    return out


def reach_gateway(client, link: str) -> None:
    """Fail fast, with one sentence, when nothing answers on the link.

    A file transfer retries and restarts many times before it gives up (about 46 s on a
    silent link); one cheap request first tells a silent link apart in
    ``timeout x (retries + 1)`` seconds.
    """
    from ..exceptions import DeviceError, LinkError, XcomTimeout
    from ._progress import note

    note(f"waiting for the gateway to answer on {link} ...")
    try:
        client.read_guid()
    except DeviceError:
        return  # it answered, with an error: the link works
    except XcomTimeout:
        session = client.session
        waited = session.timeout * (session.retries + 1)
        raise LinkError(
            f"no answer from the gateway on {link} in {waited:g} s: check that the link "
            "(host, port or serial device) is the Xcom-232i's and that it is powered"
        ) from None


def _link_text(args: argparse.Namespace) -> str:
    from ._link import link_url

    return link_url(args) or "the link"


def run_list(args: argparse.Namespace) -> int:
    from ._progress import following, received_bytes

    since = _since(args.since)
    with client_from_args(args) as client:
        reach_gateway(client, _link_text(args))
        with following(received_bytes(client), "file list", bytes_=True):
            names = _select(client.list_datalog_files(), since)
    if args.json:
        json.dump(
            [{"name": n, "date": str(datalog_file_date(n) or "")} for n in names],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    for name in names:
        print(name)
    if not names:
        print("no datalog files", file=sys.stderr)
    return 0


def _save(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` so that the file is either absent or complete."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.part"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def keep(name: str, data: bytes, folder: Path | None) -> tuple[Path, str | None]:
    """Save a transferred file in ``folder``; if that fails, in the current folder, then tmp.

    Returns the path and, when the file had to go elsewhere, why. A transferred file is
    never dropped: only when no folder at all takes it does OSError reach the caller.
    """
    import tempfile

    problem = None
    candidates = [f for f in (folder, Path.cwd(), Path(tempfile.gettempdir())) if f is not None]
    for i, candidate in enumerate(candidates):
        try:
            return _save(candidate, name, data), problem
        except OSError as exc:
            problem = problem or f"cannot save in {candidate} ({exc.strerror or exc})"
            if i == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


def run_get(args: argparse.Namespace) -> int:
    from ..exceptions import DeviceError, ValidationError, XcomError, XcomTimeout
    from ._options import writable_folder
    from ._progress import following, received_bytes

    if args.do_import and (not args.site or not args.tz):
        raise ValidationError("--import needs --site and --tz (the zone of the datalogger clock)")
    if args.data is not None:
        print("xcomlog files get: --data is deprecated, say --out DIR", file=sys.stderr)
        if not args.do_import:
            raise ValidationError("--data names the dataset of --import: say --out DIR")
        dataset, files_dir = args.data, args.out or args.save
    elif args.do_import:
        dataset, files_dir = args.out or "data", args.save
    else:
        if args.save:
            raise ValidationError("--save goes with --import; without it, say --out DIR")
        dataset, files_dir = None, args.out
    if not args.do_import and not files_dir:
        raise ValidationError("say where the files go: --out DIR, and/or --import")
    for name in args.names:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValidationError(f"invalid file name {name!r}")
    since = _since(args.since)
    # Every destination is checked before the first byte is transferred.
    out = (
        writable_folder(files_dir, "--save" if args.do_import and args.save else "--out")
        if files_dir
        else None
    )
    importer = None
    if args.do_import:
        from .. import importer as importer_module
        from ..dataset import check_site
        from ..sdcard import zone

        importer = importer_module
        try:  # refuse a bad site or zone before downloading anything
            check_site(args.site)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        zone(args.tz)
        writable_folder(dataset, "--data" if args.data is not None else "--out")
    results = []
    failed = 0
    with client_from_args(args) as client:
        reach_gateway(client, _link_text(args))
        with following(received_bytes(client), "file list", bytes_=True):
            available = client.list_datalog_files()
        wanted = args.names or available
        missing = [n for n in wanted if n not in available]
        for name in missing:
            print(f"{name}: not on the SD card", file=sys.stderr)
            failed += 1
        wanted = _select([n for n in wanted if n in available], since)
        for name in wanted:
            entry: dict[str, object] = {"name": name}
            try:
                with following(received_bytes(client), name, bytes_=True):
                    data = client.download_datalog_file(name)
            except (DeviceError, XcomTimeout) as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                failed += 1
                results.append(entry)
                print(f"{name}: download failed: {exc}", file=sys.stderr)
                continue
            entry["bytes"] = len(data)
            if out is not None:
                path, problem = keep(name, data, out)
                entry["path"] = str(path)
                if problem:
                    failed += 1
                    entry["error"] = problem
                    print(f"{name}: {problem}; kept in {path}", file=sys.stderr)
            if importer is not None:
                try:
                    summary = importer.import_sources(
                        [(name, data)],
                        site=args.site,
                        tz=args.tz,
                        out=dataset,
                        progress=False,
                        force=args.force,
                    )
                except (XcomError, OSError) as exc:
                    failed += 1
                    entry["import"] = "failed"
                    entry["reason"] = str(exc)
                    if out is None:  # the only copy: keep it
                        path, _ = keep(name, data, None)
                        entry["path"] = str(path)
                    print(f"{name}: import failed: {exc}", file=sys.stderr)
                else:
                    report = summary.reports[0] if summary.reports else None
                    entry["import"] = report.status if report is not None else "nothing"
                    if report is not None and report.status == "failed":
                        failed += 1
                        entry["reason"] = report.reason
            results.append(entry)
            if not args.json:
                where = f" -> {entry['path']}" if "path" in entry else ""
                imported = f" ({entry['import']})" if "import" in entry else ""
                print(f"{name}: {len(data)} bytes{where}{imported}")
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not results and not missing:
        print("no datalog files to get", file=sys.stderr)
    return 1 if failed else 0
