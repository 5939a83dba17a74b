"""Quantity reads: one series per quantity and device, whatever info it was recorded as.

The logger reads instantaneous infos (BSP {7002} State of Charge, VarioString {15010} PV
power); the SD-card datalogger records their minute averages ({7032}, {15061}). The
catalog knows which infos measure the same quantity (``Catalog.measuring``), so
``xcomlog.read(path, quantities=["State of Charge", "PV power"])`` returns both kinds of
data as one series per device, each row saying where it came from.

Where a device has rows from several sources at about the same time (a day both logged
live and imported from the SD card), the best source wins: an instantaneous info before
its minute average, a more accurate info before a "less accurate" one. A row of a lesser
source is kept only where no better row lies within ``overlap`` (2 minutes by default),
so imported minutes fill exactly the gaps of live logging. Units are made the same
(W -> kW, Wh -> kWh ...) as the best source's.

Address-level forms stay devices of their own: the SD card's phase columns (L1-L3,
addresses 191-193) and family sums ("ALL": 100, 300, 700) are read as the devices
``l1`` or ``vs``, next to the per-device series ``xt1`` or ``vs1``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .catalog import Catalog, Datapoint, load_catalog
from .protocol import FAMILY_ADDRESSES, Family, device_name, family_of_address

if TYPE_CHECKING:  # pandas is optional at run time (the ``analysis`` extra)
    import pandas as pd

log = logging.getLogger("xcomlog.quantities")

#: Rows of a lesser source closer than this to a better source's row are dropped.
DEFAULT_OVERLAP_S = 120.0
#: value in unit -> value in the target unit, for the units a quantity's infos mix.
_UNIT_FACTORS = {
    ("W", "kW"): 1e-3,
    ("kW", "W"): 1e3,
    ("VA", "kVA"): 1e-3,
    ("kVA", "VA"): 1e3,
    ("Wh", "kWh"): 1e-3,
    ("kWh", "Wh"): 1e3,
    ("kWh", "MWh"): 1e-3,
    ("MWh", "kWh"): 1e3,
    ("Ah", "kAh"): 1e-3,
    ("kAh", "Ah"): 1e3,
}
_SAME_UNITS = {("Vdc", "V"), ("V", "Vdc"), ("Adc", "A"), ("A", "Adc"), ("Vac", "V"), ("V", "Vac")}
COLUMNS = [
    "time",
    "site",
    "device",
    "address",
    "quantity",
    "value",
    "unit",
    "number",
    "statistic",
    "source",
]


def unit_factor(unit: str, target: str) -> float | None:
    """The factor from ``unit`` to ``target`` (1.0 if the same), None if they do not convert."""
    if unit == target or (unit, target) in _SAME_UNITS:
        return 1.0
    return _UNIT_FACTORS.get((unit, target))


def _answers(family: Family, address: int) -> bool:
    """True if a device of ``family`` may have recorded at ``address`` (unicast, multicast
    or, for Xtenders, a phase address)."""
    found = family_of_address(address)
    if found is family:
        return True
    multicast, first, last = FAMILY_ADDRESSES[family]
    return address == multicast or first <= address <= last


def sources(
    quantities: str | Iterable[str], catalog: Catalog | None = None
) -> dict[str, list[Datapoint]]:
    """The infos measuring each quantity, best first (the names as the catalog spells them)."""
    cat = catalog or load_catalog()
    names = [quantities] if isinstance(quantities, str) else list(quantities)
    if not names:
        raise ValueError("quantities: give at least one quantity name, e.g. 'State of Charge'")
    found: dict[str, list[Datapoint]] = {}
    for name in names:
        dps = cat.measuring(name)
        # The spelling most of its infos use (Xtender 3007 says "State of charge").
        spellings = Counter(dp.quantity for dp in dps)
        found[spellings.most_common(1)[0][0]] = dps
    return found


def read_quantities(
    path: str | os.PathLike,
    quantities: str | Iterable[str],
    *,
    start=None,
    end=None,
    site: str | Iterable[str] | None = None,
    addresses: int | str | Iterable[int | str] | None = None,
    wide: bool = False,
    freq: str | None = None,
    tz: str | None = None,
    overlap_s: float = DEFAULT_OVERLAP_S,
) -> pd.DataFrame:
    """One series per site, device and quantity, from whichever info recorded it.

    Long (default): columns ``time, site, device, address, quantity, value, unit, number,
    statistic, source``, where ``source`` reads ``"7032 minute avg"``. ``wide=True``:
    a time index (floored to ``freq`` when given), a column ``"bsp State of Charge [%]"``
    per device and quantity and beside it ``"bsp State of Charge source"``;
    ``attrs["series"]`` maps each value column to its site, device, address and quantity.
    """
    from .reader import _pandas, read

    pd = _pandas()
    wanted = sources(quantities)
    by_number: dict[int, list[tuple[str, int, Datapoint]]] = {}
    for quantity, dps in wanted.items():
        for rank, dp in enumerate(dps):
            by_number.setdefault(dp.number, []).append((quantity, rank, dp))
    numbers = sorted(by_number)
    long = read(
        path, start, end, numbers=numbers, site=site, addresses=addresses, wide=False, tz=tz
    )
    frames = []
    if len(long):
        long = long[["time", "site", "address", "number", "value"]]
        for (number, address), rows in long.groupby(["number", "address"], sort=True):
            for quantity, rank, dp in by_number.get(int(number), []):
                if not _answers(dp.family, int(address)):
                    continue
                unit = wanted[quantity][0].unit
                factor = unit_factor(dp.unit, unit)
                if factor is None:
                    log.warning("%s: %s is in %s, not %s: left out", quantity, dp, dp.unit, unit)
                    break
                part = rows.copy()
                part["value"] = part["value"].astype("float64") * factor
                part["quantity"] = quantity
                part["unit"] = unit
                part["statistic"] = dp.statistic
                part["rank"] = rank
                frames.append(part)
                break  # BSP and BMS share 7002: one reading is enough
    if frames:
        data = pd.concat(frames, ignore_index=True)
        data = _best_rows(data, overlap_s)
    else:
        data = pd.DataFrame(
            {
                "time": pd.Series([], dtype="datetime64[ms, UTC]"),
                "site": pd.Series([], dtype="object"),
                "address": pd.Series([], dtype="uint16"),
                "number": pd.Series([], dtype="uint16"),
                "value": pd.Series([], dtype="float64"),
                "quantity": pd.Series([], dtype="object"),
                "unit": pd.Series([], dtype="object"),
                "statistic": pd.Series([], dtype="object"),
            }
        )
    data["site"] = data["site"].astype(str)
    data["device"] = [device_name(int(a)) for a in data["address"]]
    data["source"] = [f"{n} {s}" for n, s in zip(data["number"], data["statistic"], strict=True)]
    data = data[COLUMNS].sort_values(["time", "site", "address", "quantity"], kind="stable")
    data = data.reset_index(drop=True)
    for column in ("site", "device", "quantity", "unit", "statistic", "source"):
        data[column] = data[column].astype("category")
    if not wide:
        return data
    return _to_wide(data, freq)


def _best_rows(data: pd.DataFrame, overlap_s: float) -> pd.DataFrame:
    """Per site, device and quantity: every row of the best source, and a lesser source's
    rows only where no better row is within ``overlap_s``."""
    keep = np.zeros(len(data), dtype=bool)
    window = np.int64(round(overlap_s * 1000))
    times_all = data["time"].dt.tz_convert(None).to_numpy().astype("datetime64[ms]")
    times_all = times_all.astype(np.int64)
    for _, group in data.groupby(["site", "address", "quantity"], sort=False, observed=True):
        kept = np.empty(0, dtype=np.int64)
        for _, same_rank in group.groupby("rank", sort=True):
            index = same_rank.index.to_numpy()
            times = times_all[index]
            if len(kept):
                pos = np.searchsorted(kept, times)
                before = np.abs(times - kept[np.clip(pos - 1, 0, len(kept) - 1)])
                after = np.abs(kept[np.clip(pos, 0, len(kept) - 1)] - times)
                free = np.minimum(before, after) > window
                index, times = index[free], times[free]
            keep[index] = True
            kept = np.sort(np.concatenate([kept, times]))
    return data[keep]


def _to_wide(data: pd.DataFrame, freq: str | None) -> pd.DataFrame:
    from .reader import _pandas

    pd = _pandas()
    multi_site = data["site"].nunique() > 1
    times = data["time"].dt.floor(freq) if freq else data["time"]
    prefix = (data["site"].astype(str) + " ") if multi_site else ""
    name = prefix + data["device"].astype(str) + " " + data["quantity"].astype(str)
    frame = pd.DataFrame(
        {"time": times, "name": name, "unit": data["unit"].astype(str), "value": data["value"]}
    )
    frame["source"] = data["source"].astype(str)
    frame = frame.drop_duplicates(subset=["time", "name"], keep="last")
    values = frame.pivot(index="time", columns="name", values="value")
    origin = frame.pivot(index="time", columns="name", values="source")
    units = dict(zip(frame["name"], frame["unit"], strict=True))
    keys = data.assign(name=name).drop_duplicates("name").set_index("name")
    out = {}
    series = {}
    for column in values.columns:
        unit = units[column]
        label = f"{column} [{unit}]" if unit else column
        out[label] = values[column]
        out[f"{column} source"] = origin[column]
        row = keys.loc[column]
        series[label] = {
            "site": str(row["site"]),
            "device": str(row["device"]),
            "address": int(row["address"]),
            "quantity": str(row["quantity"]),
            "unit": unit,
            "source_column": f"{column} source",
        }
    wide = pd.DataFrame(out, index=values.index).sort_index()
    wide.index.name = "time"
    wide.columns.name = None
    wide.attrs["series"] = series  # value column -> site, device, address, quantity, unit
    return wide


__all__ = ["read_quantities", "sources", "unit_factor", "COLUMNS", "DEFAULT_OVERLAP_S"]
