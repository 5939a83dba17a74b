"""Fleet benchmarks: many sites in one logger process, the two layouts, and the queries.

1. SITES simulated installations (2 Xtenders, a VarioTrack, 2 VarioStrings, a BSP), each
   behind its own TCP link throttled to 38400 baud 8E1, served by one or two simulator
   processes (``sim_host``: one event loop, one pacing heap and 16 simulators each);
   one logger process (``xcomlog log --config``, fleet layout, published to a local
   folder) polls all their user infos back to back. Measured: each site's wire
   efficiency (its request and answer bytes at 11 bits a byte over the time it was
   polled, counted by its simulator, from 10 s after every site polls; median and
   worst; targets >= 0.95 and >= 0.9), that values stored = values served, the
   logger's CPU over the same window (target < 1 core) and the simulators', its
   resident memory each minute (flat: growth over the second half) and per site.
   Full: 1,000 sites for 10 minutes; ``--quick``: 50 sites for 40 s.
2. Files per site-year and bytes per value in both layouts, from that run's rows (the
   home layout in the writer's working folder, the fleet layout in the published one).
3. A month of one site and a day of all sites, in DuckDB and (with Java and PySpark)
   Spark, over a month of synthetic minute values in both layouts.

Run: ``.venv/bin/python -m benchmarks --only fleet [--quick]``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xcomlog import codec

DEVICES = ["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"]
BAUD = 38400


# --- simulators ---------------------------------------------------------------------------

#: Distinct simulated installations per simulator process; its sites share them in turn.
INSTALLATIONS_PER_PROCESS = 16
#: Seconds after the last site of a simulator process started polling before its sites'
#: wire is measured: the logger's start-up (plans, labels, first flushes) is not polling.
WARMUP_S = 10.0


class _Throttle:
    """One process's pacing of every link: a heap of (due time, answer) and one timer.

    An answer leaves when the request's bytes and then its own have crossed the link at
    ``baud`` 8E1 (11 bits a byte, as the simulator's own links pace them). One timer for
    the earliest answer of the whole process, not one per link and answer: the answers
    due by then go out in the same wake-up. It also holds when the process's measured
    window opens (``measure_from``)."""

    def __init__(self, loop, byte_time: float, links: int) -> None:
        self.loop = loop
        self.byte_time = byte_time
        self.heap: list = []
        self.seq = 0
        self.timer = None
        self.timer_at = math.inf
        self.waiting = links  # links that have not had a request yet
        self.measure_from = math.inf

    def started(self, now: float) -> None:
        """A link had its first request; once all have, the window opens after WARMUP_S."""
        self.waiting -= 1
        if self.waiting == 0:
            self.measure_from = now + WARMUP_S

    def push(self, due: float, link: _SiteLink, data: bytes) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, link, data))
        if due < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = due
            self.timer = self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        heap = self.heap
        now = self.loop.time()
        while heap and heap[0][0] <= now:
            due, _, link, data = heapq.heappop(heap)
            link.deliver(data, due, now)
        if heap:
            self.timer_at = heap[0][0]
            self.timer = self.loop.call_at(self.timer_at, self._fire)
        else:
            self.timer, self.timer_at = None, math.inf


class _LinkAccount:
    """One site's wire, as its simulator saw it (times are ``time.monotonic()``).

    ``started``: its first request's arrival; ``first``: the first request's arrival in
    the measured window; ``last``: the last answer's departure; ``wire``: the bytes of the
    window's answered requests and of their answers; ``late``: how long the window's
    answers left after their due time (the simulator's own delay, not the logger's);
    ``answers``: all answers sent."""

    __slots__ = ("started", "first", "last", "wire", "late", "unanswered", "answers")

    def __init__(self) -> None:
        self.started = self.first = self.last = None
        self.wire = self.unanswered = self.answers = 0
        self.late = 0.0

    def row(self) -> list:
        return [self.started, self.first, self.last, self.wire, self.late, self.answers]


class _SiteLink:
    """One site's TCP link (an asyncio protocol): requests decoded and answered by the
    site's simulator, answers paced by the process's throttle, the wire counted."""

    __slots__ = ("sim", "throttle", "decoder", "transport", "rx_free", "tx_free", "account")

    def __init__(self, sim, throttle: _Throttle, account: _LinkAccount) -> None:
        self.sim = sim
        self.throttle = throttle
        self.decoder = codec.StreamDecoder()
        self.transport = None
        self.rx_free = self.tx_free = 0.0
        self.account = account

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def eof_received(self) -> None:
        return None

    def pause_writing(self) -> None:
        return None

    def resume_writing(self) -> None:
        return None

    def data_received(self, data: bytes) -> None:
        throttle = self.throttle
        now = throttle.loop.time()
        account = self.account
        if account.first is None:
            if account.started is None:
                account.started = now
                throttle.started(now)
            if now >= throttle.measure_from:
                account.first = now
        if account.first is not None:
            account.unanswered += len(data)
        self.rx_free = max(now, self.rx_free) + len(data) * throttle.byte_time
        for frame in self.decoder.feed(data):
            for out in self.sim.handle_frame(frame):
                self.tx_free = max(self.rx_free, self.tx_free) + len(out) * throttle.byte_time
                throttle.push(self.tx_free, self, out)

    def deliver(self, data: bytes, due: float, now: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        account = self.account
        account.answers += 1
        if account.first is not None:
            account.last = now
            account.late += now - due
            account.wire += account.unanswered + len(data)
            account.unanswered = 0


def sim_host(count: int, baud: int, first_seed: int = 0) -> None:
    """Serve ``count`` simulated sites from one asyncio loop, one TCP port each, paced at
    ``baud`` 8E1; print the ports as one JSON line, serve until SIGTERM, then print each
    port's wire account (``_LinkAccount.row``) as one JSON line (a simulator process).

    The simulator's own links use two threads per link; a thousand of them would measure
    the scheduler, not the logger. Here every answer still comes from
    ``Simulator.handle_frame``, but one process serves its sites from
    ``INSTALLATIONS_PER_PROCESS`` simulators (site k from simulator k mod that): a
    simulator computes its values once a simulated second and keeps the encoded answers
    until the next (its own cache), so the sites sharing it cost one computation a second
    instead of one each. Pacing is one heap for the process (``_Throttle``)."""
    import asyncio

    from xcomlog.protocol import BITS_PER_BYTE_8E1
    from xcomlog.sim import Simulator

    async def main() -> None:
        loop = asyncio.get_running_loop()
        throttle = _Throttle(loop, BITS_PER_BYTE_8E1 / baud, count)
        sims = [
            Simulator(seed=first_seed + k) for k in range(min(count, INSTALLATIONS_PER_PROCESS))
        ]
        servers, ports, accounts = [], [], []
        for k in range(count):
            account = _LinkAccount()
            sim = sims[k % len(sims)]
            server = await loop.create_server(
                lambda sim=sim, account=account: _SiteLink(sim, throttle, account),
                "127.0.0.1",
                0,
            )
            servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
            accounts.append(account)
        print(json.dumps(ports), flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for server in servers:
            server.close()
        print(json.dumps([a.row() for a in accounts]), flush=True)

    asyncio.run(main())


def _start_sims(sites: int, processes: int) -> tuple[list[subprocess.Popen], list[int]]:
    procs, ports = [], []
    per = [sites // processes + (k < sites % processes) for k in range(processes)]
    for k, count in enumerate(per):
        code = (
            "from benchmarks.fleet_bench import sim_host; "
            f"sim_host({count}, {BAUD}, {k * INSTALLATIONS_PER_PROCESS})"
        )
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


def _stop_sims(procs) -> list[list]:
    """Stop the simulator processes; each site's wire account (``_LinkAccount.row``)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    accounts: list[list] = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=30)
            accounts += json.loads(out.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            proc.kill()
    return accounts


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


def _wire_efficiency(accounts: list[list], *, less_late: bool = True) -> list[float]:
    """Each site's wire time over its polling time: the bytes of its requests and their
    answers at 11 bits a byte (8E1) and ``BAUD``, over the time from the arrival of its
    first request in the measured window to its last answer's departure, less the time
    the simulator sent answers after they were due (``less_late``: its delay is not the
    logger's). 1.0: the link never idle. The window opens WARMUP_S after every site of the
    simulator process has started polling (the logger's start-up opens links, compiles
    plans and writes labels; no scan: the devices are configured)."""
    from xcomlog.protocol import BITS_PER_BYTE_8E1

    return [
        wire * BITS_PER_BYTE_8E1 / BAUD / (last - first - (late if less_late else 0.0))
        for _, first, last, wire, late, _ in accounts
        if first is not None and last is not None and last > first
    ]


def _stored_values(out: Path) -> int:
    """Values rows the logger published."""
    import pyarrow.dataset as ds

    return ds.dataset(out / "values", format="parquet", partitioning="hive").count_rows()


def _values_per_answer(config: Path) -> float:
    from xcomlog.logger.config import load_config
    from xcomlog.logger.plan import compile_plan

    group = compile_plan(load_config(config).sites[0]).groups[0]
    return group.values / len(group.requests)


def many_sites(sites: int, seconds: float, sim_processes: int) -> tuple[list[dict], Path]:
    import numpy as np
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-fleet-bench-"))
    procs, ports = _start_sims(sites, sim_processes)
    samples: list[tuple] = []  # (wall s, logger CPU s, logger RSS MiB, simulators CPU s)
    accounts: list[list] = []
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
        sim_ps = [psutil.Process(p.pid) for p in procs]
        t0 = time.monotonic()
        while logger.poll() is None:
            try:
                cpu = ps.cpu_times()
                sims_cpu = sum(sum(p.cpu_times()[:2]) for p in sim_ps)
                samples.append(
                    (
                        time.monotonic() - t0,
                        cpu.user + cpu.system,
                        ps.memory_info().rss / 2**20,
                        sims_cpu,
                    )
                )
            except psutil.Error:
                break
            time.sleep(min(5.0, max(0.5, seconds / 120)))
        err = logger.stderr.read()
        if logger.wait() != 0:
            raise RuntimeError(f"the logger failed: {err[-2000:]}")
    finally:
        accounts = _stop_sims(procs)
    ratios = _wire_efficiency(accounts) or [0.0]
    raw = _wire_efficiency(accounts, less_late=False) or [0.0]
    windows = [a[2] - a[1] for a in accounts if a[1] is not None and a[2] is not None]
    late_share = sum(a[4] for a in accounts if a[1] is not None) / (sum(windows) or 1.0)
    started = [a[0] - t0 for a in accounts if a[0] is not None]
    polling_after = max(started) if len(started) == sites else math.inf
    served = sum(a[5] for a in accounts) * _values_per_answer(config)
    stored = _stored_values(tmp / "out")
    s = np.array(samples)
    # CPU over the measured window: every site polling, after the warm-up
    steady = s[s[:, 0] >= min(polling_after + WARMUP_S, seconds * 0.5)]
    span = float(steady[-1, 0] - steady[0, 0])
    cores = float(steady[-1, 1] - steady[0, 1]) / span
    sims_cores = float(steady[-1, 3] - steady[0, 3]) / span
    # memory while polling: the logger's own start-up and closing merge are not steady
    ends = [a[2] - t0 for a in accounts if a[2] is not None]
    polled = s[(s[:, 0] >= polling_after) & (s[:, 0] <= max(ends, default=s[-1, 0]))]
    half = polled[polled[:, 0] >= (polled[0, 0] + polled[-1, 0]) / 2] if len(polled) else s
    slope = float(np.polyfit(half[:, 0] / 60.0, half[:, 2], 1)[0]) if len(half) > 2 else 0.0
    rss_peak = float(s[:, 2].max())
    minutes = [float(s[s[:, 0] <= m * 60.0][-1, 2]) for m in range(1, int(s[-1, 0] // 60) + 1)]
    label = f"{sites} sites at {BAUD} baud, {seconds:g} s"
    rows = [
        {
            "benchmark": label,
            "metric": "median wire efficiency per site",
            "value": float(np.median(ratios)),
            "unit": "ratio",
            "sites_measured": len(ratios),
            "window_s": float(np.median(windows)) if windows else 0.0,
            "all_sites_polling_after_s": polling_after,
            "values_stored_of_served": stored / served if served else 0.0,
            "median_with_simulators_delay": float(np.median(raw)),
            "simulators_delay_share": late_share,
            "simulators_cores": sims_cores,
            "target": 0.95,
            "meets_target": bool(np.median(ratios) >= 0.95),
        },
        {
            "benchmark": label,
            "metric": "worst site's wire efficiency",
            "value": float(min(ratios)),
            "unit": "ratio",
            "worst_with_simulators_delay": float(min(raw)),
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
            "rss_peak_mib": rss_peak,
            "rss_mib_each_minute": [round(m) for m in minutes],
        },
        {
            "benchmark": label,
            "metric": "logger memory per site",
            "value": rss_peak / sites,
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
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars in the table
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
    sim_processes = 1 if sites <= 100 else 2
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
