"""Fleet benchmarks: many sites in one logger process, the two layouts, and the queries.

1. SITES simulated installations (2 Xtenders, a VarioTrack, 2 VarioStrings, a BSP), each
   behind its own TCP link throttled to 38400 baud 8E1, served by a few simulator
   processes; one logger process (``xcomlog log --config``, fleet layout, published to a
   local folder) polls all their user infos back to back. Measured: each site's values/s
   over the theoretical maximum of its frames (median and worst; targets >= 0.95 and
   >= 0.9), the logger's CPU share (target < 1 core), its resident memory sampled over the
   run (flat: growth over the second half) and memory per site. Full: 1,000 sites for
   10 minutes; ``--quick``: 50 sites for 40 s.
2. Files per site-year and bytes per value in both layouts, from that run's rows (the
   home layout in the writer's working folder, the fleet layout in the published one).
3. A month of one site and a day of all sites, in DuckDB and (with Java and PySpark)
   Spark, over a month of synthetic minute values in both layouts.

Run: ``.venv/bin/python -m benchmarks --only fleet [--quick]``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEVICES = ["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"]
BAUD = 38400


# --- simulators ---------------------------------------------------------------------------


def sim_host(count: int, baud: int) -> None:
    """Serve ``count`` simulated installations from one asyncio loop, one TCP port each,
    paced at ``baud`` (8E1: 11 bits a byte, both directions, as the simulator's own links);
    print the ports as one JSON line and serve until SIGTERM (a simulator process's body).

    The simulator's own links use two threads per link; a thousand of them would measure
    the scheduler, not the logger, so this host answers through the same
    ``Simulator.handle_frame`` on one event loop per process."""
    import asyncio

    from xcomlog import codec
    from xcomlog.protocol import BITS_PER_BYTE_8E1
    from xcomlog.sim import Simulator

    byte_time = BITS_PER_BYTE_8E1 / baud

    async def serve(sim) -> int:
        async def handle(reader, writer) -> None:
            loop = asyncio.get_running_loop()
            decoder = codec.StreamDecoder()
            rx_free = tx_free = 0.0
            try:
                while data := await reader.read(65536):
                    rx_free = max(loop.time(), rx_free) + len(data) * byte_time
                    for frame in decoder.feed(data):
                        for out in sim.handle_frame(frame):
                            tx_free = max(rx_free, tx_free) + len(out) * byte_time
                            delay = tx_free - loop.time()
                            if delay > 0:
                                await asyncio.sleep(delay)
                            writer.write(out)
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    servers: list = []

    async def main() -> None:
        ports = [await serve(Simulator(seed=k)) for k in range(count)]
        print(json.dumps(ports), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for server in servers:
            server.close()

    asyncio.run(main())


def _start_sims(sites: int, processes: int) -> tuple[list[subprocess.Popen], list[int]]:
    procs, ports = [], []
    per = [sites // processes + (k < sites % processes) for k in range(processes)]
    for count in per:
        code = f"from benchmarks.fleet_bench import sim_host; sim_host({count}, {BAUD})"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
        )
    for proc in procs:
        ports += json.loads(proc.stdout.readline())
    return procs, ports


def _stop_all(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- 1. many sites --------------------------------------------------------------------------


def _write_config(path: Path, out: Path, journal: Path, ports: list[int]) -> Path:
    lines = [
        f'out = "{out}"',
        f'journal = "{journal}"',
        'layout = "fleet"',
        'writer_id = "bench"',
        "[defaults]",
        "timeout = 5",
        "messages = false",
        "[[group]]",
        'name = "all"',
        "interval = 0",
        'points = ["all-infos"]',
    ]
    for k, port in enumerate(ports):
        lines += [
            "[[site]]",
            f'name = "s{k:04d}"',
            f'link = "tcp://127.0.0.1:{port}"',
            f"devices = {json.dumps(DEVICES)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _theoretical_values_per_s(config: Path) -> float:
    from xcomlog.logger.config import load_config
    from xcomlog.logger.plan import compile_plan
    from xcomlog.protocol import BITS_PER_BYTE_8E1

    group = compile_plan(load_config(config).sites[0]).groups[0]
    return group.values / (group.wire_bytes * BITS_PER_BYTE_8E1 / BAUD)


def _per_site_efficiency(out: Path, theoretical: float) -> list[float]:
    """Each site's steady values/s (first answer to last) over the theoretical rate."""
    import numpy as np
    import pyarrow.dataset as ds

    table = ds.dataset(out / "values", format="parquet", partitioning="hive").to_table(
        columns=["site", "time"]
    )
    sites = table.column("site").to_numpy(zero_copy_only=False)
    times = table.column("time").cast("int64").to_numpy()
    order = np.lexsort((times, sites))
    sites, times = sites[order], times[order]
    out_ratios = []
    bounds = np.flatnonzero(sites[1:] != sites[:-1]) + 1
    for chunk in np.split(np.arange(len(sites)), bounds):
        stamps, counts = np.unique(times[chunk], return_counts=True)
        span = (stamps[-1] - stamps[0]) / 1000.0
        if span > 0:
            out_ratios.append(float((counts.sum() - counts[0]) / span) / theoretical)
    return out_ratios


def many_sites(sites: int, seconds: float, sim_processes: int) -> tuple[list[dict], Path]:
    import numpy as np
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-fleet-bench-"))
    procs, ports = _start_sims(sites, sim_processes)
    samples: list[tuple[float, float, float]] = []  # (wall, cpu s, rss MiB)
    try:
        config = _write_config(tmp / "fleet.toml", tmp / "out", tmp / "work", ports)
        cmd = [sys.executable, "-m", "xcomlog", "log", "--config", str(config), "--no-status"]
        logger = subprocess.Popen(
            [*cmd, "--duration", str(seconds)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        ps = psutil.Process(logger.pid)
        t0 = time.monotonic()
        while logger.poll() is None:
            try:
                cpu = ps.cpu_times()
                samples.append(
                    (time.monotonic() - t0, cpu.user + cpu.system, ps.memory_info().rss / 2**20)
                )
            except psutil.Error:
                break
            time.sleep(min(5.0, max(0.5, seconds / 120)))
        err = logger.stderr.read()
        if logger.wait() != 0:
            raise RuntimeError(f"the logger failed: {err[-2000:]}")
    finally:
        _stop_all(procs)
    theoretical = _theoretical_values_per_s(config)
    ratios = _per_site_efficiency(tmp / "out", theoretical)
    s = np.array([x for x in samples if x[0] <= seconds])
    steady = s[s[:, 0] >= min(30.0, seconds * 0.25)]
    cores = (steady[-1, 1] - steady[0, 1]) / (steady[-1, 0] - steady[0, 0])
    half = s[s[:, 0] >= seconds / 2]
    slope = float(np.polyfit(half[:, 0] / 60.0, half[:, 2], 1)[0]) if len(half) > 2 else 0.0
    rss_end = float(s[-1, 2])
    label = f"{sites} sites at {BAUD} baud, {seconds:g} s"
    rows = [
        {
            "benchmark": label,
            "metric": "median wire efficiency per site",
            "value": float(np.median(ratios)),
            "unit": "ratio",
            "sites_measured": len(ratios),
            "target": 0.95,
            "meets_target": bool(np.median(ratios) >= 0.95),
        },
        {
            "benchmark": label,
            "metric": "worst site's wire efficiency",
            "value": float(min(ratios)),
            "unit": "ratio",
            "target": 0.9,
            "meets_target": bool(min(ratios) >= 0.9),
        },
        {
            "benchmark": label,
            "metric": "logger CPU",
            "value": float(cores),
            "unit": "cores",
            "target": "< 1",
            "meets_target": bool(cores < 1.0),
        },
        {
            "benchmark": label,
            "metric": "logger RSS growth over the second half",
            "value": slope,
            "unit": "MiB/min",
            "rss_start_mib": float(s[0, 2]),
            "rss_end_mib": rss_end,
        },
        {
            "benchmark": label,
            "metric": "logger memory per site",
            "value": rss_end / sites,
            "unit": "MiB/site",
        },
    ]
    return rows, tmp


# --- 2. files and bytes ---------------------------------------------------------------------


def _parquet_stats(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, values rows) of the Parquet files of a dataset folder."""
    import pyarrow.parquet as pq

    files = [p for p in folder.rglob("*.parquet") if "_" not in p.parts[-1][:1]]
    rows = sum(pq.read_metadata(p).num_rows for p in files if "values" in p.parts)
    size = sum(p.stat().st_size for p in files if "values" in p.parts)
    return len(files), size, rows


def layouts_cost(run_dir: Path, sites: int) -> list[dict]:
    """Files per site-year (one file per table, site and day at home once a day is merged;
    one per table and day for the whole writer in the fleet layout) and bytes per value."""
    home_dir, fleet_dir = run_dir / "work", run_dir / "out"
    tables = [
        t
        for t in ("values", "messages", "events", "parameters", "devices")
        if (home_dir / t).is_dir()
    ]
    _, home_bytes, home_rows = _parquet_stats(home_dir / "values")
    _, fleet_bytes, fleet_rows = _parquet_stats(fleet_dir / "values")
    rows = [
        {
            "benchmark": "layouts",
            "metric": "files per site-year, home layout",
            "value": len(tables) * 365,
            "unit": "files",
            "tables": len(tables),
        },
        {
            "benchmark": "layouts",
            "metric": "files per site-year, fleet layout",
            "value": len(tables) * 365 / sites,
            "unit": "files",
            "sites_per_writer": sites,
        },
    ]
    if home_rows:
        rows.append(
            {
                "benchmark": "layouts",
                "metric": "bytes per value, home layout (hourly live files)",
                "value": home_bytes / home_rows,
                "unit": "B",
            }
        )
    if fleet_rows:
        rows.append(
            {
                "benchmark": "layouts",
                "metric": "bytes per value, fleet layout",
                "value": fleet_bytes / fleet_rows,
                "unit": "B",
            }
        )
    return rows


# --- 3. queries -----------------------------------------------------------------------------


def _month_dataset(root: Path, sites: int, points: int) -> tuple[Path, Path]:
    """A month (June 2024) of minute values of ``points`` datapoints for ``sites`` sites in
    the home layout, and the same compacted into the fleet layout."""
    import numpy as np

    from xcomlog.dataset import DatasetWriter
    from xcomlog.storage.compaction import compact_dataset
    from xcomlog.storage.filesystem import open_location

    home = root / "home"
    rng = np.random.default_rng(1)
    with DatasetWriter(home, flush_interval=3600, merge_days=True) as writer:
        for day in range(30):
            start = int(dt.datetime(2024, 6, 1 + day, tzinfo=dt.timezone.utc).timestamp() * 1000)
            t = np.repeat(start + np.arange(1440, dtype=np.int64) * 60_000, points)
            number = np.tile(np.arange(3000, 3000 + points, dtype=np.uint16), 1440)
            for k in range(sites):
                value = np.round(rng.normal(50, 5, len(t)), 1).astype(np.float32)
                writer.append_values(f"s{k:04d}", t, 101, number, value)
            writer.flush()
    fleet = root / "fleet"
    shutil.copytree(home, fleet)
    compact_dataset(open_location(fleet), before=dt.date(2030, 1, 1))
    return home, fleet


def _best_of(func, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def queries(sites: int, points: int) -> list[dict]:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-fleet-query-"))
    rows = []
    try:
        home, fleet = _month_dataset(tmp, sites, points)
        month_site = "site = 's0001' and date between '2024-06-01' and '2024-06-30'"
        day_all = "date = '2024-06-15'"
        con = duckdb.connect()
        for name, root in (("home", home), ("fleet", fleet)):
            rel = f"read_parquet('{root}/values/**/*.parquet', hive_partitioning = true)"
            for what, cond in (
                ("a month of one site", month_site),
                ("a day of all sites", day_all),
            ):
                sql = f"select count(*), avg(value) from {rel} where {cond}"
                seconds = _best_of(lambda sql=sql: con.execute(sql).fetchall())
                count = con.execute(sql).fetchone()[0]
                rows.append(
                    {
                        "benchmark": f"DuckDB, {name} layout",
                        "metric": what,
                        "value": seconds * 1e3,
                        "unit": "ms",
                        "rows": count,
                    }
                )
        rows += _spark_queries(home, fleet, month_site, day_all)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _spark_queries(home: Path, fleet: Path, month_site: str, day_all: str) -> list[dict]:
    if shutil.which("java") is None:
        return [
            {"benchmark": "Spark", "metric": "skipped", "value": 0, "unit": "", "why": "no java"}
        ]
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return [
            {"benchmark": "Spark", "metric": "skipped", "value": 0, "unit": "", "why": "no pyspark"}
        ]
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    rows = []
    try:
        for name, root in (("home", home), ("fleet", fleet)):
            df = spark.read.parquet(str(root / "values"))
            df.createOrReplaceTempView("v")
            for what, cond in (
                ("a month of one site", month_site),
                ("a day of all sites", day_all),
            ):
                sql = f"select count(*), avg(value) from v where {cond}"
                seconds = _best_of(lambda sql=sql: spark.sql(sql).collect())
                rows.append(
                    {
                        "benchmark": f"Spark local, {name} layout",
                        "metric": what,
                        "value": seconds * 1e3,
                        "unit": "ms",
                        "rows": spark.sql(sql).collect()[0][0],
                    }
                )
    finally:
        spark.stop()
    return rows


def run(quick: bool = False) -> list[dict]:
    sites = int(os.environ.get("XCOMLOG_FLEET_SITES", 50 if quick else 1000))
    seconds = float(os.environ.get("XCOMLOG_FLEET_SECONDS", 40 if quick else 600))
    sim_processes = 2 if quick or sites <= 100 else 4
    rows, run_dir = many_sites(sites, seconds, sim_processes)
    try:
        rows += layouts_cost(run_dir, sites)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    rows += queries(sites=20 if quick else 100, points=10)
    return rows


if __name__ == "__main__":
    from benchmarks import __main__ as bench_main  # noqa: F401 - python -m benchmarks --only fleet

    for row in run(quick="--quick" in sys.argv):
        print(row)
