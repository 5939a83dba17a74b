"""Catalog benchmark: how fast the full appendix catalog loads, looks up, searches and decodes.

The issue's target is a load under 50 ms (``read_catalog`` parses the ~1,400-row CSV and
builds the indexes). Side by side in the same run: a fresh interpreter importing and
loading the catalog against a bare interpreter; the cached ``load_catalog()`` against a
cold read; and, when the ``xcom-proto`` peer is installed (``pip install -e '.[bench]'``),
lookup by number and decoding against its 45 hand-picked datapoints.
"""

from __future__ import annotations

import statistics
import struct
import subprocess
import sys
import time

from xcomlog.catalog import load_catalog, read_catalog


def _median_seconds(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _per_call(func, calls: int, repeat: int = 3) -> float:
    """Median seconds per call of ``func`` over ``repeat`` batches of ``calls``."""

    def batch():
        for _ in range(calls):
            func()

    return _median_seconds(batch, repeat) / calls


def _process_seconds(code: str, repeat: int) -> float:
    def run():
        subprocess.run([sys.executable, "-c", code], check=True)

    return _median_seconds(run, repeat)


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows: load, cached load, fresh-process load, lookup, search, decode."""
    repeat = 5 if quick else 21
    results: list[dict] = []

    def row(name: str, metric: str, value: float, unit: str, **extra) -> None:
        results.append(
            {
                "benchmark": f"catalog.{name}",
                "metric": metric,
                "value": value,
                "unit": unit,
                **extra,
            }
        )

    cat = load_catalog()
    cold = _median_seconds(read_catalog, repeat)
    row(
        "load",
        "read_catalog (cold parse)",
        cold * 1e3,
        "ms",
        target_ms=50,
        datapoints=len(cat),
        messages=len(cat.messages),
        within_target=cold < 0.05,
    )
    cached = _per_call(load_catalog, 1000)
    row("load", "load_catalog (cached)", cached * 1e6, "us", ratio_cold_to_cached=cold / cached)

    proc_repeat = 3 if quick else 7
    bare = _process_seconds("pass", proc_repeat)
    full = _process_seconds("from xcomlog.catalog import load_catalog; load_catalog()", proc_repeat)
    row(
        "load",
        "fresh process: import + load",
        full * 1e3,
        "ms",
        bare_interpreter_ms=bare * 1e3,
        added_ms=(full - bare) * 1e3,
        ratio_to_bare=full / bare,
    )

    numbers = [dp.number for dp in cat.datapoints(family="xt", kind="info")]
    calls = 2_000 if quick else 20_000
    get = _per_call(lambda: [cat.get(n) for n in numbers[:10]], calls // 10) / 10
    row("lookup", "get(number)", get * 1e9, "ns")

    search = _per_call(lambda: cat.search("battery voltage"), 20 if quick else 100)
    row("search", "search('battery voltage')", search * 1e3, "ms")
    fuzzy = _per_call(lambda: cat.search("batery voltge"), 20 if quick else 100)
    row("search", "search('batery voltge') fuzzy", fuzzy * 1e3, "ms")

    dp = cat.get(3000)
    data = struct.pack("<f", 52.5)
    decode = _per_call(lambda: cat.decode(dp, data), calls)
    from xcomlog import codec
    from xcomlog.protocol import Format

    raw = _per_call(lambda: codec.unpack_value(Format.FLOAT, data), calls)
    row(
        "decode",
        "decode FLOAT info",
        decode * 1e9,
        "ns",
        codec_unpack_ns=raw * 1e9,
        codec=codec.IMPLEMENTATION,
        ratio_to_codec=decode / raw,
    )
    validate = _per_call(lambda: cat.validate(1138, 30.0), calls)
    row("validate", "validate FLOAT parameter", validate * 1e9, "ns")

    try:
        from xcom_proto.parameters import Dataset
    except ImportError:
        row("peer", "xcom-proto not installed", float("nan"), "", skipped=True)
        return results
    peer_ids = [p.id for p in Dataset._getDatapoints()]
    peer_get = (
        _per_call(lambda: [Dataset.getParamByID(n) for n in peer_ids[:10]], calls // 100) / 10
    )
    ours_get = _per_call(lambda: [cat.find(n) for n in peer_ids[:10]], calls // 10) / 10
    row(
        "peer",
        "lookup by number vs xcom-proto",
        ours_get * 1e9,
        "ns",
        xcom_proto_ns=peer_get * 1e9,
        speedup=peer_get / ours_get,
        datapoints=len(cat),
        xcom_proto_datapoints=len(peer_ids),
    )
    peer_dp = Dataset.getParamByID(3011)  # AC input voltage, FLOAT: in both catalogs
    ours_dp = cat.get(3011)
    ours_decode = _per_call(lambda: cat.decode(ours_dp, data), calls)
    peer_decode = _per_call(lambda: peer_dp.unpackValue(data), calls)
    row(
        "peer",
        "decode FLOAT vs xcom-proto",
        ours_decode * 1e9,
        "ns",
        xcom_proto_ns=peer_decode * 1e9,
        ratio=ours_decode / peer_decode,
    )
    return results


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
