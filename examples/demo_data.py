"""A small synthetic dataset (one site, a few days at 1-minute steps) for the example
notebook and its test: an Xtender, a VarioTrack, a VarioString and a BSP on a sunny site.

Run ``python examples/demo_data.py OUT`` to write it; ``xcomlog demo`` gives real logged
data from the simulator instead.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np

from xcomlog.dataset import DatasetWriter

SITE = "demo"
XT1, VT1, VS1, BSP = 101, 301, 701, 601
#: (address, number, name, unit, family) as in the appendix of the protocol specification.
LABELS = [
    (XT1, 3000, "Battery voltage", "Vdc", "xt"),
    (XT1, 3136, "Output active power", "kW", "xt"),
    (VT1, 11004, "Power of the PV generator", "kW", "vt"),
    (VS1, 15010, "PV power", "kW", "vs"),
    (BSP, 7000, "Battery voltage", "V", "bsp"),
    (BSP, 7002, "State of Charge", "%", "bsp"),
]


def make_demo_dataset(
    out: str | Path,
    *,
    first_day: dt.date = dt.date(2024, 6, 10),
    days: int = 3,
    step_s: int = 60,
    seed: int = 7,
) -> dict[str, dict[str, float]]:
    """Write the demo dataset; returns {date: {device: energy kWh}} of the power values
    written (sum of kW samples x step), which the notebook's daily energy must match."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(first_day, dt.time(), dt.timezone.utc)
    t_ms = int(start.timestamp() * 1000) + np.arange(0, days * 86400, step_s) * 1000
    hours = (t_ms / 3_600_000.0) % 24
    day_index = (t_ms - t_ms[0]) // 86_400_000
    sun = np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None) ** 1.5
    # passing clouds: a few dips of 10-40 minutes each day
    shade = np.zeros(len(t_ms))
    for centre in rng.uniform(0, days * 86400 * 1000, 6 * days):
        width = rng.uniform(600, 2400) * 1000
        shade = np.maximum(shade, rng.uniform(0.3, 0.7) * np.exp(-(((t_ms - centre) / width) ** 2)))
    clouds = 1.0 - shade
    weather = 1.0 - 0.25 * (day_index % 2)  # every other day is hazier
    pv_vt = np.round(3.0 * sun * clouds * weather, 3).astype(np.float32)
    pv_vs = np.round(5.0 * sun * clouds * weather, 3).astype(np.float32)
    load = 0.35 + 1.2 * np.exp(-(((hours - 19.5) / 1.5) ** 2)) + 0.2 * rng.random(len(t_ms))
    load = np.round(load, 3).astype(np.float32)
    soc = np.empty(len(t_ms))
    level = 55.0
    capacity_kwh = 20.0
    for i, net in enumerate(pv_vt + pv_vs - load):
        level = min(100.0, max(10.0, level + 100 * net * step_s / 3600 / capacity_kwh))
        soc[i] = level
    soc = np.round(soc, 1).astype(np.float32)
    ubat = np.round(47.5 + 0.06 * soc + 0.05 * rng.standard_normal(len(t_ms)), 2)
    ubat = ubat.astype(np.float32)

    series = {
        (XT1, 3000): ubat,
        (XT1, 3136): load,
        (VT1, 11004): pv_vt,
        (VS1, 15010): pv_vs,
        (BSP, 7000): ubat,
        (BSP, 7002): soc,
    }
    with DatasetWriter(out) as writer:
        writer.describe(SITE, LABELS)
        writer.append_events(SITE, [{"time_ms": int(t_ms[0]), "kind": "start", "detail": "demo"}])
        for (address, number), values in series.items():
            offset = {XT1: 0, VT1: 40, VS1: 80, BSP: 120}[address]  # frames a few ms apart
            writer.append_values(SITE, t_ms + offset, address, number, values)

    energy: dict[str, dict[str, float]] = {}
    for d in range(days):
        sel = day_index == d
        date = (first_day + dt.timedelta(days=d)).isoformat()
        energy[date] = {
            "xt1": float(load[sel].astype(np.float64).sum() * step_s / 3600),
            "vt1": float(pv_vt[sel].astype(np.float64).sum() * step_s / 3600),
            "vs1": float(pv_vs[sel].astype(np.float64).sum() * step_s / 3600),
        }
    return energy


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data")
    for date, per_device in make_demo_dataset(target).items():
        print(date, {k: round(v, 2) for k, v in per_device.items()})
    print(f"wrote {target}; open it with: import xcomlog; xcomlog.read({str(target)!r})")
