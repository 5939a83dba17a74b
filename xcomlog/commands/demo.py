"""``xcomlog demo``: the simulator in another process, one simulated day logged in ~20 s, a summary and a plot.

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

#: The simulated day the demo shows: from just after midnight to just before the next one
#: (the devices' day counters reset at midnight), whatever --duration the run has.
DAY_START_S = 5 * 60.0
DAY_END_S = 24 * 3600.0 - 5 * 60.0

#: Panels of the PNG: (title, y label, [(family, number, legend)], lowest y span).
#: The lowest span keeps a 0.2 % wiggle from filling the axis (a "cliff").
PLOT_PANELS = (
    ("PV power", "kW", [("vt", 11004, "VarioTrack"), ("vs", 15010, "VarioString")], 1.0),
    (
        "AC power",
        "kW",
        [("xt", 3136, "to consumers (output)"), ("xt", 3137, "from the grid (input)")],
        1.0,
    ),
    ("Battery state of charge", "%", [("bsp", 7002, "state of charge")], 100.0),
    ("Battery voltage", "V", [("xt", 3000, "battery voltage")], 4.0),
    ("Battery current", "A", [("bsp", 7001, "battery current (+ charging)")], 20.0),
)

#: Day counters summed for the energy summary: (label, family, number).
ENERGY_COUNTERS = (
    ("PV produced", "vt", 11007),
    ("PV produced", "vs", 15017),
    ("consumed", "xt", 3083),
    ("from the grid", "xt", 3081),
)
#: BSP Ah counters of the day: battery in (charged) and out (discharged).
BATTERY_COUNTERS = (("battery in", 7007), ("battery out", 7008))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="log the built-in simulator for a few seconds and show the result",
        description=(
            "Start the simulated installation in another process with its clock running "
            "one simulated day over --duration, log it into --out, then print a summary "
            "(rows, values/s, files, bytes per value), how to open the data in pandas, and "
            "write a PNG next to the data: power, battery and the day's energy, in the "
            "installation's local time."
        ),
    )
    from ..options import DAY_S
    from ._options import duration, number

    parser.add_argument(
        "--duration",
        "--seconds",
        dest="seconds",
        type=duration("--duration", maximum=DAY_S),
        default=20.0,
        metavar="DURATION",
        help="how long to log (default 20s; e.g. 90s, 5min)",
    )
    parser.add_argument("--out", default="demo-data", help="dataset folder (default demo-data)")
    parser.add_argument(
        "--speed",
        type=number("--speed", 0.0, 1e6, low_open=True),
        default=None,
        help="simulated seconds per real second (default: one simulated day over the run)",
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


def demo_config(address: str, out: Path, interval: str = "1s"):
    """Every user info each ``interval`` and an hourly parameter snapshot (taken at start)."""
    from ..logger.config import config_from_dict

    return config_from_dict(
        {
            "out": str(out),
            "flush_interval": 2,
            "group": [
                {"name": "infos", "interval": interval, "points": ["all-infos"]},
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


class SimulatedClock:
    """Maps the logger's times (real UTC) to the simulated installation's wall clock.

    The simulator starts its clock at ``start`` (posix seconds) when its process starts
    (``real_start``) and runs ``speed`` times faster. Its installation's zone is UTC, so
    the simulated wall time is the simulated posix time read as UTC.
    """

    def __init__(self, real_start: float, start: float, speed: float) -> None:
        self.real_start = real_start
        self.start = start
        self.speed = speed

    def wall(self, times):
        """pandas UTC times -> naive simulated wall-clock times."""
        import pandas as pd

        real = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        seconds = self.start + (real - self.real_start) * self.speed
        return pd.to_datetime(seconds, unit="s")


def sensible_limits(values, min_span: float, unit: str) -> tuple[float, float]:
    """y limits that show the data with at least ``min_span`` of range (no cliffs).

    Percentages show 0-100; other data are centred in a span of at least ``min_span``.
    """
    low, high = float(values.min()), float(values.max())
    if unit == "%":
        return 0.0, 100.0
    span = max(high - low, min_span)
    middle = (low + high) / 2
    bottom, top = middle - span * 0.55, middle + span * 0.55
    if low >= 0 and bottom < 0:  # a quantity that cannot go negative starts at 0
        bottom, top = 0.0, max(top - bottom, high * 1.1)
    return bottom, top


def energy_summary(df, family_of) -> list[tuple[str, float, str]]:
    """(label, amount, unit) of the day: PV produced, consumed, from the grid, battery in/out.

    The devices' day counters only grow during a day, so each device's largest value is
    its total; devices of a kind are summed.
    """
    rows: dict[str, float] = {}
    for label, family, number in ENERGY_COUNTERS:
        part = df[df["number"] == number]
        part = part[[family_of.get((int(a), number)) == family for a in part["address"]]]
        if not part.empty:
            total = float(part.groupby("address")["value"].max().sum())
            rows[label] = rows.get(label, 0.0) + total
    out = [(label, value, "kWh") for label, value in rows.items()]
    voltage = df[(df["number"] == 7000)]["value"]
    volts = float(voltage.mean()) if not voltage.empty else None
    for label, number in BATTERY_COUNTERS:
        part = df[df["number"] == number]
        part = part[[family_of.get((int(a), number)) == "bsp" for a in part["address"]]]
        if not part.empty:
            ah = float(part["value"].max())
            if volts:
                out.append((label, ah * volts / 1000.0, "kWh"))
            else:
                out.append((label, ah, "Ah"))
    return out


def plot(out: Path, site: str = "demo", clock: SimulatedClock | None = None) -> Path | None:
    """A PNG next to the data: power, battery, and the day's energy, in simulated local time.

    Returns None when matplotlib is missing or nothing was logged.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import xcomlog

    from ..formatting import format_number
    from ..protocol import device_name

    numbers = {n for _, _, series, _ in PLOT_PANELS for _, n, _ in series}
    numbers |= {n for _, _, n in ENERGY_COUNTERS} | {n for _, n in BATTERY_COUNTERS} | {7000}
    df = xcomlog.read(out, site=site, numbers=sorted(numbers), wide=False)
    if df.empty:
        return None
    labels = xcomlog.read(out, table="datapoints", site=site)
    family_of = {(int(r.address), int(r.number)): r.family for r in labels.itertuples()}
    df["when"] = clock.wall(df["time"]) if clock is not None else df["time"]
    panels = []
    for title, unit, series, min_span in PLOT_PANELS:
        lines = []
        for family, number, legend in series:
            part = df[df["number"] == number]
            part = part[[family_of.get((int(a), number)) == family for a in part["address"]]]
            for address, one in part.groupby("address"):
                lines.append((f"{device_name(int(address))} {legend}", one))
        if lines:
            panels.append((title, unit, lines, min_span))
    fig = plt.figure(figsize=(13, 2.6 * len(panels) + 0.6))
    grid = fig.add_gridspec(len(panels), 2, width_ratios=(3.2, 1), hspace=0.35, wspace=0.25)
    styles = ["-", "--", "-.", ":"]
    first = None
    for row, (title, unit, lines, min_span) in enumerate(panels):
        ax = fig.add_subplot(grid[row, 0], sharex=first)
        first = first or ax
        for k, (legend, one) in enumerate(lines):
            # Devices of one kind carry nearly the same values: each later line is
            # thinner and styled differently, so none hides the ones drawn before it.
            ax.plot(
                one["when"],
                one["value"],
                linestyle=styles[k % len(styles)],
                linewidth=max(3.4 - 0.8 * k, 1.0),
                label=legend,
            )
        values = df.loc[pd_concat_index(lines), "value"]
        ax.set_ylim(*sensible_limits(values, min_span, unit))
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10, loc="left")
        ax.legend(loc="upper left", fontsize=7, ncol=2)
        ax.grid(True, alpha=0.3)
        if row < len(panels) - 1:
            ax.tick_params(labelbottom=False)
    first.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel(
        "simulated local time of the installation (one simulated day; logged at real speed x"
        f"{clock.speed:,.0f})"
        if clock is not None
        else "time (UTC)"
    )
    summary = energy_summary(df, family_of)
    side = fig.add_subplot(grid[:, 1])
    if summary:
        names = [label for label, _, _ in summary]
        amounts = [value for _, value, _ in summary]
        colours = ["#f2a900", "#d0473c", "#7f7f7f", "#2a9d8f", "#264653"][: len(summary)]
        bars = side.barh(names[::-1], amounts[::-1], color=colours[::-1])
        for bar, (_, value, unit) in zip(bars, summary[::-1], strict=True):
            side.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {format_number(value, unit)} {unit}",
                va="center",
                fontsize=9,
            )
        side.set_xlim(0, max(amounts) * 1.45 or 1)
        side.set_xlabel("kWh")
    side.set_title("Energy of the day", fontsize=10, loc="left")
    side.spines[["top", "right"]].set_visible(False)
    fig.suptitle("xcomlog demo: the simulated installation", fontsize=12)
    path = out / "demo.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def pd_concat_index(lines):
    """The row labels of every series of a panel (for its y limits)."""
    index = lines[0][1].index
    for _, one in lines[1:]:
        index = index.append(one.index)
    return index


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
    import time

    from ..logger.loop import run_logger
    from ..logger.status import StatusLine

    out = Path(args.out)
    _prepare_out(out)
    # One simulated day over the run, from just after midnight: PV rises and sets, the
    # battery charges and discharges, the day counters fill.
    speed = args.speed or (DAY_END_S - DAY_START_S) / args.seconds
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    sim_start = today.timestamp() + DAY_START_S
    start = dt.datetime.fromtimestamp(sim_start, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = ["--seed", "1", "--speed", f"{speed:.6g}", "--start", start]
    proc, address = start_simulator(extra)
    # The simulator's clock starts just before it prints its address.
    clock = SimulatedClock(time.time(), sim_start, speed)
    print(
        f"simulator running in process {proc.pid} at {address} (speed {speed:,.0f}x: "
        "one simulated day)",
        file=sys.stderr,
    )
    # About 80 samples of the day, whatever the run's length.
    interval = max(0.05, args.seconds / 80)
    status = None if args.no_status else StatusLine()
    try:
        cfg = demo_config(address, out, interval=f"{interval:.3f}s")
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
        path = plot(out, clock=clock)
        if path is not None:
            print(f"plot of a few series: {path}")
        else:
            print("(install matplotlib for a PNG plot: pip install 'xcomlog[analysis]')")
    return 0
