"""Logger benchmarks, each against the simulator in another process (``xcomlog sim``).

1. wire efficiency: the link throttled to 38400 and 115200 baud (8E1, 11 bits a byte), no
   device latency; values/s logged over the theoretical maximum of the frames used
   (values per cycle / (request + answer bytes per cycle x 11 / baud)). Target >= 0.95.
2. unthrottled loopback TCP, one site: values/s into Parquet and the CPU seconds per
   million values of this process (read loop + writer thread, dataset closed), side by
   side with ``pystuderxcom``'s multi-value read ``request_infos`` of the same items from
   the same simulator (no storage at all), in five alternating pairs of runs; each
   ratio is taken within a pair and the median pair reported (the machine's load moves
   between runs). Targets: CPU/value <= 1/10, values/s >= 3x.
3. 50 sites at once (all user infos every second each, two simulator processes), in a
   fresh interpreter so nothing left by the other benchmarks shows in its memory:
   aggregate values/s, CPU share, and resident memory sampled over the run (10 minutes;
   ``--quick``: 20 s). Target: memory flat (growth over the second half ~ 0).
4. bytes per value: a real SD-card day replayed by the simulator (60x faster) and logged
   once per simulated minute, against the CSV's bytes per cell for the same minutes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

SD_DATALOG = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sd-datalog"
DEVICES = ["xt1", "xt2", "vt1", "vs1", "vs2", "bsp"]


def _sim(*extra: str):
    from xcomlog.commands.demo import start_simulator

    return start_simulator(["--seed", "1", *extra])


def _stop(proc) -> None:
    from xcomlog.commands.demo import stop_process

    stop_process(proc)


def _config(out: Path, sites: list[tuple[str, str]], points, interval: float = 0.0, **site):
    from xcomlog.logger.config import config_from_dict

    return config_from_dict(
        {
            "out": str(out),
            "group": [{"name": "g", "interval": interval, "points": list(points)}],
            "site": [
                {"name": name, "link": link, "devices": DEVICES, "messages": False, **site}
                for name, link in sites
            ],
        },
        source="benchmark",
    )


class Steady:
    """Where the steady state starts: CPU, wall time and values at the first logged value."""

    cpu = wall = 0.0
    values = 0
    end_wall = end_cpu = 0.0  # end of polling; CPU after the dataset was closed


def _run(cfg, seconds: float, sampler=None, steady: Steady | None = None):
    """Run a Logger in this process for ``seconds`` and close it (the writer compacts).

    Returns (logger, wall seconds of polling, CPU seconds of the process including the
    close). ``steady`` gets the CPU, time and values at the first logged value, so a
    caller can leave the start-up (catalog, plan, connection) out of per-value costs.
    """
    from xcomlog.logger.loop import Logger

    logger = Logger(cfg)
    cpu0 = time.process_time()
    t0 = time.perf_counter()

    async def watch() -> None:
        while not logger.totals()["values"]:
            await asyncio.sleep(0.001)
        steady.cpu, steady.wall = time.process_time(), time.perf_counter()
        steady.values = int(logger.totals()["values"])

    async def main() -> None:
        tasks = [asyncio.create_task(sampler(logger))] if sampler else []
        if steady is not None:
            tasks.append(asyncio.create_task(watch()))
        try:
            await logger.run(duration=seconds)
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(main())
    end = time.perf_counter()
    logger.close()
    if steady is not None:
        steady.end_wall, steady.end_cpu = end, time.process_time()
    return logger, end - t0, time.process_time() - cpu0


def _response_times(out: Path):
    """Arrival times (ms since 1970) of every logged value, whatever unit the dataset
    stores times in (microseconds since the storage change)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    table = ds.dataset(out / "values", format="parquet", partitioning="hive").to_table(
        columns=["time"]
    )
    ms = table.column("time").cast(pa.timestamp("ms", tz="UTC"), safe=False)
    return ms.cast(pa.int64()).to_numpy()


# --- 1. wire efficiency ---------------------------------------------------------------------


class _Timed:
    """Wraps the logger's transports to time each request and answer (for the breakdown)."""

    def __init__(self) -> None:
        self.sends: list[tuple[float, int]] = []
        self.recvs: list[tuple[float, int]] = []

    def __call__(self, url: str):
        from xcomlog.links import open_async_transport

        transport = open_async_transport(url)
        # every request goes out through send_nowait (send calls it; bursts call it
        # directly) and every answer comes in through _feed
        send_nowait, feed = transport.send_nowait, transport._feed

        def timed_send_nowait(data: bytes) -> bool:
            sent = send_nowait(data)
            if sent:
                self.sends.append((time.perf_counter(), len(data)))
            return sent

        def timed_feed(data: bytes) -> None:
            if data:
                self.recvs.append((time.perf_counter(), len(data)))
            feed(data)

        transport.send_nowait, transport._feed = timed_send_nowait, timed_feed
        return transport

    def breakdown(self, baud: int) -> tuple[float, float]:
        """(median ms the logger took between an answer and the next request, median ms
        an exchange took beyond its wire time: the simulator's own response time)."""
        import numpy as np

        from xcomlog.protocol import BITS_PER_BYTE_8E1

        s, r = np.array(self.sends), np.array(self.recvs)
        gaps, excess = [], []
        for i in range(len(s) - 1):
            answer = r[(r[:, 0] > s[i, 0]) & (r[:, 0] < s[i + 1, 0])]
            if len(answer):
                wire = (s[i, 1] + answer[:, 1].sum()) * BITS_PER_BYTE_8E1 / baud
                excess.append(answer[-1, 0] - s[i, 0] - wire)
                gaps.append(s[i + 1, 0] - answer[-1, 0])
        return float(np.median(gaps) * 1e3), float(np.median(excess) * 1e3)


def wire_efficiency(baud: int, seconds: float) -> dict:
    from xcomlog.logger.loop import Logger
    from xcomlog.logger.plan import compile_plan
    from xcomlog.protocol import BITS_PER_BYTE_8E1

    # a frozen simulated clock: answers come from its cache, as fast as it can give them
    proc, address = _sim("--baud", str(baud), "--speed", "0")
    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-bench-"))
    timed = _Timed()
    try:
        cfg = _config(tmp, [("wire", f"tcp://{address}")], ["all-infos"], timeout=5.0)
        plan = compile_plan(cfg.sites[0])
        group = plan.groups[0]
        per_cycle_s = group.wire_bytes * BITS_PER_BYTE_8E1 / baud
        theoretical = group.values / per_cycle_s
        logger = Logger(cfg, transport_factory=timed)
        asyncio.run(logger.run(duration=seconds))
        logger.close()
        times = _response_times(tmp)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    # steady state: from the first answer to the last, the values of every later answer
    stamps, counts = _unique_counts(times)
    span = (stamps[-1] - stamps[0]) / 1000.0
    measured = float((counts.sum() - counts[0]) / span) if span > 0 else 0.0
    ratio = measured / theoretical
    gap_ms, sim_ms = timed.breakdown(baud)
    exchange_ms = per_cycle_s / len(group.requests) * 1e3
    return {
        "benchmark": f"wire efficiency {baud} baud 8E1",
        "metric": "values/s over theoretical",
        "value": ratio,
        "unit": "ratio",
        "values_per_s": measured,
        "theoretical_values_per_s": theoretical,
        "frame_bytes_per_cycle": group.wire_bytes,
        "values_per_cycle": group.values,
        "logger_gap_ms": gap_ms,
        "logger_share": gap_ms / exchange_ms,
        "sim_response_ms": sim_ms,
        "target": 0.95,
        "meets_target": bool(ratio >= 0.95),
    }


def _unique_counts(times):
    import numpy as np

    stamps, counts = np.unique(np.sort(times), return_counts=True)
    return stamps, counts


# --- 2. one site against pystuderxcom -------------------------------------------------------


def _item_lists(cfg):
    """(number, aggregation, address) of each multi-info frame of the plan, keeping only the
    infos pystuderxcom knows (so both read exactly the same items)."""
    from xcomlog.logger.plan import compile_plan

    try:
        from pystuderxcom import XcomDataset
    except ImportError:
        XcomDataset = None
    known = None
    if XcomDataset is not None:
        dataset = XcomDataset.get_instance()
        known = set()
        for dp in dataset._datapoints:  # its public lookups are per number
            if str(dp.userlevel_r) == "INFO" or getattr(dp.userlevel_r, "name", "") == "INFO":
                known.add((dp.family_id, int(dp.nr_or_addr)))
    plan = compile_plan(cfg.sites[0])
    lists = []
    for request in plan.groups[0].requests:
        items = []
        for point in request.points:
            if known is None or (point.family.value, point.number) in known:
                items.append(
                    (
                        point.number,
                        int(request.aggregations[request.points.index(point)]),
                        point.address,
                        point.family.value,
                    )
                )
        lists.append(items)
    return lists


async def _pystuderxcom(address: str, lists, seconds: float) -> tuple[int, float, float]:
    """(values, seconds, CPU seconds) of request_infos in a loop over the item lists."""
    from pystuderxcom import AsyncXcomApiTcp, XcomDataset, XcomValueItem, XcomValueSet
    from pystuderxcom.const import XcomApiTcpMode

    dataset = await XcomDataset.async_get_instance()
    host, port = address.rsplit(":", 1)
    api = AsyncXcomApiTcp(mode=XcomApiTcpMode.CLIENT, remote_ip=host, remote_port=int(port))
    await api.start()
    sets = [
        XcomValueSet(
            [XcomValueItem(dataset.get_by_nr(n, fam), device=addr) for n, _, addr, fam in items]
        )
        for items in lists
    ]
    await api.request_infos(sets[0])  # connected and warm, as the logger's steady state
    values = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            for value_set in sets:
                answer = await api.request_infos(value_set)
                values += len(answer.items)
        return values, time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await api.stop()


def _ours_once(cfg, seconds: float) -> dict:
    """One logger run: steady-state values/s and CPU per million values (close included)."""
    steady = Steady()
    logger, wall, cpu = _run(cfg, seconds, steady=steady)
    total = logger.totals()["values"]
    values = total - steady.values
    return {
        "values_per_s": values / (steady.end_wall - steady.wall),
        "cpu_per_million": (steady.end_cpu - steady.cpu) / values * 1e6,
        "cpu_per_million_with_startup": cpu / total * 1e6,
    }


def _theirs_once(address: str, lists, seconds: float) -> dict:
    n, elapsed, cpu = asyncio.run(_pystuderxcom(address, lists, seconds))
    return {"values_per_s": n / elapsed, "cpu_per_million": cpu / n * 1e6}


def versus_pystuderxcom(seconds: float, rounds: int = 3) -> list[dict]:
    """Alternate runs of ours and theirs (``rounds`` pairs of ``seconds`` each) against one
    simulator; each ratio is taken within a pair (neighbours in time share the machine's
    load) and the median pair is reported, with every pair in the JSON."""
    import statistics

    rows: list[dict] = []
    proc, address = _sim()
    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-bench-"))
    pairs: list[tuple[dict, dict | None]] = []
    error = ""
    try:
        base = _config(tmp, [("one", f"tcp://{address}")], ["all-infos"])
        lists = _item_lists(base)
        points = [f"{_device(addr)}:{n}" for items in lists for n, _, addr, _ in items]
        for i in range(rounds):
            cfg = _config(tmp / f"round{i}", [("one", f"tcp://{address}")], points)
            ours = _ours_once(cfg, seconds)
            theirs = None
            if not error:
                try:
                    theirs = _theirs_once(address, lists, seconds)
                except ImportError:
                    error = "pystuderxcom is not installed (pip install pystuderxcom)"
                except Exception as exc:  # noqa: BLE001 - the comparison must not hide ours
                    error = f"pystuderxcom failed: {type(exc).__name__}: {exc}"
            pairs.append((ours, theirs))
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    items = sum(len(i) for i in lists)
    median = statistics.median
    ours_rows = [o for o, _ in pairs]
    rows.append(
        {
            "benchmark": "one site, loopback TCP, into Parquet (xcomlog)",
            "metric": "values/s",
            "value": median(o["values_per_s"] for o in ours_rows),
            "unit": "values/s",
            "items_per_cycle": items,
            "rounds": [round(o["values_per_s"]) for o in ours_rows],
        }
    )
    rows.append(
        {
            "benchmark": "one site, loopback TCP, into Parquet (xcomlog)",
            "metric": "CPU per million values",
            "value": median(o["cpu_per_million"] for o in ours_rows),
            "unit": "CPU s",
            "with_startup": median(o["cpu_per_million_with_startup"] for o in ours_rows),
            "rounds": [round(o["cpu_per_million"], 3) for o in ours_rows],
            "note": "read loop + writer thread, dataset closed (compacted) included",
        }
    )
    if error or any(t is None for _, t in pairs):
        rows.append(
            {
                "benchmark": "pystuderxcom request_infos",
                "metric": "error",
                "value": 0.0,
                "unit": "",
                "error": error,
            }
        )
        return rows
    theirs_rows = [t for _, t in pairs if t is not None]
    speed = [
        o["values_per_s"] / t["values_per_s"] for o, t in zip(ours_rows, theirs_rows, strict=True)
    ]
    cpu_ratio = [
        o["cpu_per_million"] / t["cpu_per_million"]
        for o, t in zip(ours_rows, theirs_rows, strict=True)
    ]
    rows += [
        {
            "benchmark": "pystuderxcom request_infos, same items, no storage",
            "metric": "values/s",
            "value": median(t["values_per_s"] for t in theirs_rows),
            "unit": "values/s",
            "rounds": [round(t["values_per_s"]) for t in theirs_rows],
        },
        {
            "benchmark": "pystuderxcom request_infos, same items, no storage",
            "metric": "CPU per million values",
            "value": median(t["cpu_per_million"] for t in theirs_rows),
            "unit": "CPU s",
            "rounds": [round(t["cpu_per_million"], 3) for t in theirs_rows],
        },
        {
            "benchmark": "xcomlog vs pystuderxcom",
            "metric": "values/s ratio",
            "value": median(speed),
            "unit": "x",
            "rounds": [round(r, 2) for r in speed],
            "target": 3.0,
            "meets_target": median(speed) >= 3.0,
        },
        {
            "benchmark": "xcomlog vs pystuderxcom",
            "metric": "CPU per value ratio",
            "value": median(cpu_ratio),
            "unit": "x",
            "rounds": [round(r, 4) for r in cpu_ratio],
            "target": 0.1,
            "meets_target": median(cpu_ratio) <= 0.1,
        },
    ]
    return rows


def _device(address: int) -> str:
    from xcomlog.protocol import device_name

    return device_name(address)


# --- 3. fifty sites -------------------------------------------------------------------------


def fifty_sites(seconds: float, sites: int = 50) -> list[dict]:
    import psutil

    procs = [_sim(), _sim()]
    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-bench-"))
    samples: list[tuple[float, float]] = []
    me = psutil.Process()
    period = max(seconds / 60, 1.0)

    async def sampler(logger) -> None:
        t0 = time.monotonic()
        while True:
            samples.append((time.monotonic() - t0, me.memory_info().rss / 2**20))
            await asyncio.sleep(period)

    try:
        links = [(f"site{i:02d}", f"tcp://{procs[i % 2][1]}") for i in range(sites)]
        cfg = _config(tmp, links, ["all-infos"], interval=1.0, timeout=2.0)
        logger, wall, cpu = _run(cfg, seconds, sampler)
        totals = logger.totals()
        disk = sum(p.stat().st_size for p in (tmp / "values").rglob("*.parquet"))
    finally:
        for proc, _ in procs:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    import numpy as np

    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    half = t >= t[-1] / 2
    slope = float(np.polyfit(t[half], rss[half], 1)[0] * 60) if half.sum() >= 3 else float("nan")
    expected = sites * 490  # every info of the default installation, every second
    return [
        {
            "benchmark": f"{sites} sites, all infos every 1 s",
            "metric": "aggregate values/s",
            "value": totals["values"] / wall,
            "unit": "values/s",
            "scheduled_values_per_s": expected,
            "missed_intervals": int(totals["missed"]),
            "seconds": round(wall, 1),
        },
        {
            "benchmark": f"{sites} sites, all infos every 1 s",
            "metric": "CPU share of one core",
            "value": cpu / wall,
            "unit": "cores",
        },
        {
            "benchmark": f"{sites} sites, all infos every 1 s",
            "metric": "resident memory (end)",
            "value": float(rss[-1]),
            "unit": "MiB",
            "rss_after_first_sample": float(rss[1] if len(rss) > 1 else rss[0]),
            "rss_max": float(rss.max()),
        },
        {
            "benchmark": f"{sites} sites, all infos every 1 s",
            "metric": "memory growth, second half",
            "value": slope,
            "unit": "MiB/min",
            "target": "flat (~0)",
            "meets_target": abs(slope) < 1.0,
        },
        {
            "benchmark": f"{sites} sites, all infos every 1 s",
            "metric": "bytes per value (Parquet)",
            "value": disk / totals["values"] if totals["values"] else float("nan"),
            "unit": "B",
        },
    ]


# --- 4. bytes per value against the SD card -------------------------------------------------


def sd_card_bytes(seconds: float) -> list[dict]:
    """Replay a real day at 1440x; log one row per simulated minute; Parquet vs CSV bytes."""
    import datetime as dt

    files = sorted(SD_DATALOG.glob("LG*.CSV")) if SD_DATALOG.is_dir() else []
    if not files:
        return [
            {
                "benchmark": "bytes per value vs SD card",
                "metric": "error",
                "value": 0.0,
                "unit": "",
                "error": f"no SD-card files in {SD_DATALOG}",
            }
        ]
    path = next((f for f in files if f.name == "LG181231.CSV"), files[0])
    from xcomlog.sdcard import read_datalog
    from xcomlog.sim.replay import Replay, installation_for

    log = read_datalog(path, phase_columns="phase")
    inst = installation_for(path)
    from xcomlog.catalog import load_catalog
    from xcomlog.protocol import family_of_address

    cat = load_catalog()
    keys = sorted(
        (a, n)
        for a, n in Replay(path, inst).keys()
        if any(dp.kind == "info" and dp.family is family_of_address(a) for dp in cat.find(n))
    )
    devices = [d.name for d in inst.devices if d.address != 501]
    speed = 1440.0  # a day a minute: one poll per simulated minute, one SD-card row
    day = dt.datetime.strptime(path.stem[2:], "%y%m%d").date()
    proc, address = _sim(
        "--replay", str(path), "--speed", f"{speed:g}", "--start", f"{day.isoformat()}T00:00Z"
    )
    tmp = Path(tempfile.mkdtemp(prefix="xcomlog-bench-"))
    try:
        from xcomlog.logger.config import config_from_dict

        cfg = config_from_dict(
            {
                "out": str(tmp),
                "group": [
                    {
                        "name": "minute",
                        "interval": 60.0 / speed,
                        "points": [f"{a}:{n}" for a, n in keys],
                    }
                ],
                "site": [
                    {
                        "name": "sd",
                        "link": f"tcp://{address}",
                        "devices": devices,
                        "messages": False,
                    }
                ],
            },
            source="benchmark",
        )
        logger, wall, _ = _run(cfg, seconds)
        values = int(logger.totals()["values"])
        data_bytes, file_bytes = _parquet_bytes(tmp / "values")
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    cells = int(log.data.shape[0]) * len(log.columns)
    csv_per_value = path.stat().st_size / cells if cells else float("nan")
    ours = file_bytes / values if values else float("nan")
    return [
        {
            "benchmark": f"{path.name} replayed, logged once per simulated minute",
            "metric": "Parquet bytes per value (files)",
            "value": ours,
            "unit": "B",
            "column_data_bytes_per_value": data_bytes / values if values else float("nan"),
            "values": values,
            "points": len(keys),
            "minutes": values // max(len(keys), 1),
            "target": 0.5,
            "meets_target": ours <= 0.5,
        },
        {
            "benchmark": f"{path.name} as written by the SD card",
            "metric": "CSV bytes per value",
            "value": csv_per_value,
            "unit": "B",
            "csv_over_parquet": csv_per_value / ours if ours else float("nan"),
        },
    ]


def _parquet_bytes(folder: Path) -> tuple[int, int]:
    """(compressed column data bytes, file bytes) of the Parquet files under ``folder``."""
    import pyarrow.parquet as pq

    data = files = 0
    for path in folder.rglob("*.parquet"):
        files += path.stat().st_size
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                data += meta.row_group(g).column(c).total_compressed_size
    return data, files


def _guarded(name: str, func, *args) -> list[dict]:
    """Run one benchmark; a failure becomes an error row and the others still run."""
    import traceback

    try:
        result = func(*args)
    except Exception as exc:  # noqa: BLE001 - keep the rows of the other benchmarks
        traceback.print_exc()
        return [
            {
                "benchmark": name,
                "metric": "error",
                "value": 0.0,
                "unit": "",
                "error": f"{type(exc).__name__}: {exc}",
            }
        ]
    return result if isinstance(result, list) else [result]


def run(quick: bool = False) -> list[dict]:
    """Every logger benchmark; ``quick`` shortens each run (and the 50-site run to 20 s)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    seconds = 3.0 if quick else 10.0
    rows = _guarded("wire efficiency 38400", wire_efficiency, 38400, seconds * 1.5)
    rows += _guarded("wire efficiency 115200", wire_efficiency, 115200, seconds)
    rows += _guarded("one site vs pystuderxcom", versus_pystuderxcom, seconds, 3 if quick else 5)
    rows += _guarded("bytes per value vs SD card", sd_card_bytes, 15.0 if quick else 62.0)
    rows += _guarded("50 sites", _in_own_process, fifty_sites, 20.0 if quick else 600.0)
    return rows


def _in_own_process(func, *args):
    """Run ``func(*args)`` in a fresh interpreter and return its result.

    The memory benchmark must see the logger alone: heap and allocator state left by
    the benchmarks run before it in this process would show up as growth of its RSS.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()
