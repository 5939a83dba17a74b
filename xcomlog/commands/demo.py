"""``xcomlog demo``: the simulator in another process, the logger for ~20 s, a summary and a plot.

What ``make demo`` runs on a fresh machine: no hardware, no configuration. It shows the
whole product once: discovery, polling groups, the Parquet dataset, the events table, how
to read the data back, and a PNG of a few series next to the data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Marks a folder this command created, so a second run may replace it.
MARKER = ".xcomlog-demo"

#: Series drawn in the PNG: (family value, number, title).
PLOT_SERIES = (
    ("bsp", 7002, "Battery state of charge"),
    ("xt", 3000, "Battery voltage"),
    ("vs", 15010, "PV power (VarioString)"),
    ("vt", 11004, "PV power (VarioTrack)"),
    ("xt", 3136, "Output active power"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="log the built-in simulator for a few seconds and show the result",
        description=(
            "Start the simulated installation in another process, log it for --seconds "
            "into --out, then print a summary (rows, values/s, files, bytes per value), "
            "how to open the data in pandas, and write a PNG plot next to the data."
        ),
    )
    from ..options import DAY_S
    from ._options import duration, number

    parser.add_argument(
        "--duration",
        "--seconds",
        dest="seconds",
        type=duration(maximum=DAY_S),
        default=20.0,
        metavar="DURATION",
        help="how long to log (default 20s; e.g. 90s, 5min)",
    )
    parser.add_argument("--out", default="demo-data", help="dataset folder (default demo-data)")
    parser.add_argument(
        "--speed",
        type=number(0.0, 1e6, low_open=True),
        default=DEFAULT_SPEED,
        help="simulated seconds per real second, so the plot shows a day "
        f"(default {DEFAULT_SPEED:g})",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--no-status", action="store_true", help="no live status line")
    parser.set_defaults(func=run)


def _prepare_out(out: Path) -> None:
    """Use an empty or earlier demo folder; never touch a folder of someone else's data."""
    import shutil

    from ..exceptions import ConfigError

    from ._options import writable_folder

    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ConfigError(
                f"{out} exists and is not a demo dataset: give another --out (nothing was changed)"
            )
        shutil.rmtree(out)
    writable_folder(out, "--out")
    (out / MARKER).write_text("created by xcomlog demo; the next demo run replaces this folder\n")


def start_simulator(extra: list[str] | None = None, *, timeout: float = 30.0):
    """``python -m xcomlog sim --tcp-server 127.0.0.1:0`` in a child process.

    Returns (process, "HOST:PORT") once the simulator printed where to connect.
    """
    import subprocess
    import threading

    from ..exceptions import LinkError

    cmd = [sys.executable, "-m", "xcomlog", "sim", "--tcp-server", "127.0.0.1:0", *(extra or [])]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = first[0].strip() if first else ""
    if not line or ":" not in line:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise LinkError(f"the simulator did not start: {line or 'no output'} {err.strip()}")
    return proc, line


def stop_process(proc, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not go."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def demo_config(address: str, out: Path):
    """Every user info each second and an hourly parameter snapshot (taken at start)."""
    from ..logger.config import config_from_dict

    return config_from_dict(
        {
            "out": str(out),
            "flush_interval": 2,
            "group": [
                {"name": "infos", "interval": "1s", "points": ["all-infos"]},
                {"name": "parameters", "interval": "1h", "points": ["all-parameters"]},
            ],
            "site": [{"name": "demo", "link": f"tcp://{address}", "devices": "auto"}],
        },
        source="demo",
    )


def summarize(out: Path, logger) -> dict:
    """Rows per table, files and bytes of the dataset, from the files themselves."""
    import pyarrow.parquet as pq

    summary: dict = {"tables": {}}
    value_bytes = value_data = 0
    files = 0
    for table in ("values", "events", "messages", "parameters", "devices"):
        paths = sorted((out / table).rglob("*.parquet")) if (out / table).exists() else []
        metas = [pq.ParquetFile(p).metadata for p in paths]
        rows = sum(m.num_rows for m in metas)
        size = sum(p.stat().st_size for p in paths)
        summary["tables"][table] = (rows, len(paths), size)
        files += len(paths)
        if table == "values":
            value_bytes = size
            value_data = sum(
                m.row_group(g).column(c).total_compressed_size
                for m in metas
                for g in range(m.num_row_groups)
                for c in range(m.num_columns)
            )
    values = summary["tables"]["values"][0]
    totals = logger.totals()
    summary.update(
        values=values,
        files=files,
        bytes=sum(t[2] for t in summary["tables"].values()),
        bytes_per_value=value_bytes / values if values else float("nan"),
        data_bytes_per_value=value_data / values if values else float("nan"),
        values_per_s=totals["values"] / max(totals["elapsed"], 1e-9),
        elapsed=totals["elapsed"],
        errors=int(totals["timeouts"] + totals["device_errors"] + totals["damaged_frames"]),
    )
    return summary


def plot(out: Path, site: str = "demo") -> Path | None:
    """A PNG of a few series next to the data (None when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import xcomlog

    df = xcomlog.read(out, site=site, numbers=[n for _, n, _ in PLOT_SERIES], wide=False)
    if df.empty:
        return None
    labels = xcomlog.read(out, table="datapoints", site=site)
    family_of = {(int(r.address), int(r.number)): r.family for r in labels.itertuples()}
    panels = []
    for family, number, title in PLOT_SERIES:
        part = df[df["number"] == number]
        part = part[[family_of.get((int(a), number)) == family for a in part["address"]]]
        if not part.empty:
            panels.append((title, part))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True, squeeze=False
    )
    from ..protocol import device_name

    for ax, (title, part) in zip(axes[:, 0], panels, strict=True):
        for address, series in part.groupby("address"):
            unit = series["unit"].iloc[0] if "unit" in series else ""
            ax.plot(series["time"], series["value"], label=f"{device_name(int(address))} [{unit}]")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time (UTC), logged from the simulator")
    fig.tight_layout()
    path = out / "demo.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


HOW_TO_READ = """\
Open the data in pandas:

    import xcomlog
    df = xcomlog.read("{out}", site="demo")              # wide: one column per device and datapoint
    soc = xcomlog.read("{out}", numbers=[7002], wide=False)  # long: time, address, number, value
    events = xcomlog.read("{out}", table="events")

or with plain pandas / DuckDB (hive-partitioned Parquet, no xcomlog needed):

    import pandas as pd
    pd.read_parquet("{out}/values")
    duckdb -c "SELECT address, number, avg(value) FROM read_parquet('{out}/values/**/*.parquet', hive_partitioning=true) GROUP BY ALL"
"""


def run(args: argparse.Namespace) -> int:
    import datetime as dt

    from ..exceptions import ConfigError
    from ..logger.loop import run_logger
    from ..logger.status import StatusLine

    if not args.seconds > 0:
        raise ConfigError("--seconds must be > 0")
    out = Path(args.out)
    _prepare_out(out)
    # A simulated morning: the sun rises over the minutes the demo runs.
    today = dt.datetime.now(dt.timezone.utc).date()
    start = f"{today.isoformat()}T08:00Z"
    extra = ["--seed", "1", "--speed", f"{args.speed:g}", "--start", start]
    proc, address = start_simulator(extra)
    print(
        f"simulator running in process {proc.pid} at {address} (speed {args.speed:g}x)",
        file=sys.stderr,
    )
    status = None if args.no_status else StatusLine()
    try:
        cfg = demo_config(address, out)
        logger = run_logger(cfg, duration=args.seconds, status=status)
    finally:
        if status is not None:
            status.close()
        stop_process(proc)
    s = summarize(out, logger)
    print()
    print(
        f"logged {s['values']:,} values in {s['elapsed']:.1f} s ({s['values_per_s']:,.0f} values/s), {s['errors']} errors"
    )
    for table, (rows, files, size) in s["tables"].items():
        if files:
            print(f"  {table:<11} {rows:>9,} rows  {files:>3} files  {size:>10,} bytes")
    print(
        f"  {s['data_bytes_per_value']:.2f} bytes per value of column data (Parquet, zstd); "
        f"{s['bytes_per_value']:.2f} with the file footers and labels, which day-long files amortize"
    )
    print()
    print(HOW_TO_READ.format(out=out))
    if not args.no_plot:
        path = plot(out)
        if path is not None:
            print(f"plot of a few series: {path}")
        else:
            print("(install matplotlib for a PNG plot: pip install 'xcomlog[analysis]')")
    return 0
