"""Run every benchmark module and print one table: ``python -m benchmarks [--quick]``.

Each ``benchmarks/*_bench.py`` module exposes ``run(quick: bool = False) -> list[dict]``;
every dict has ``benchmark``, ``metric``, ``value`` and ``unit`` and may carry more keys
(implementation, target, ratio...), which go to the JSON file and into the table's
last column. A module that fails is reported and the others still run; the exit status
is then 1.
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads spin while idle and would steal a core from what is measured
# on small machines; no benchmark here needs threaded BLAS. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = Path("bench-results") / "results.json"
CORE_KEYS = ("benchmark", "metric", "value", "unit")


def discover() -> list[str]:
    """Names of the benchmark modules (``codec`` for ``codec_bench.py``), sorted."""
    return sorted(p.stem[: -len("_bench")] for p in HERE.glob("*_bench.py"))


def _format_value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _extras(row: dict) -> str:
    parts = []
    for key, value in row.items():
        if key in CORE_KEYS or value in (None, ""):
            continue
        parts.append(f"{key}={_format_value(value)}")
    return " ".join(parts)


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    header = ("module", "benchmark", "metric", "value", "unit", "details")
    lines = [
        (
            row.get("module", ""),
            str(row["benchmark"]),
            str(row["metric"]),
            _format_value(row["value"]),
            str(row["unit"]),
            _extras({k: v for k, v in row.items() if k != "module"}),
        )
        for row in rows
    ]
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    widths[-1] = len(header[-1])  # the details column is not padded

    def fmt(cells) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i == 3:
                out.append(cell.rjust(widths[i]))
            elif i < len(cells) - 1:
                out.append(cell.ljust(widths[i]))
            else:
                out.append(cell)
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="less data and shorter timings")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this module (codec, sim, ...); repeatable",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file ({DEFAULT_JSON})"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    args = parser.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(
                f"unknown benchmark module(s) {', '.join(unknown)}; known: {', '.join(names)}"
            )
        names = [n for n in names if n in args.only]

    rows: list[dict] = []
    failures: dict[str, str] = {}
    started = time.time()
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}_bench")
            result = module.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - report and go on with the other modules
            failures[name] = traceback.format_exc()
            print(f"  {name} failed:\n{failures[name]}", file=sys.stderr, flush=True)
            continue
        for row in result:
            missing = [k for k in CORE_KEYS if k not in row]
            if missing:
                failures[name] = f"row without {missing}: {row!r}"
                break
            rows.append({"module": name, **row})
        print(f"  {name}: {len(result)} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    print(table(rows))
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": rows,
        "failures": failures,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json}", file=sys.stderr)
    for name in failures:
        print(f"FAILED: {name}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
