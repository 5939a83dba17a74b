"""Moving values: a small physical model of the installation, evaluated per local day.

Each simulated day is computed once, minute by minute, from a seeded weather draw: PV
production on a day curve with passing clouds, a household load with morning and evening
peaks, a battery whose state of charge integrates what goes in and out (grid charging when
low, charge current tapering when full). Energy counters are running integrals that only
grow and restart at local midnight. Every user info of the catalog is then mapped, by its
name, unit and format, to one quantity of that model, so the simulator never lists info
numbers of its own. A replay of a real SD-card datalog can overlay measured values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from ..protocol import Family
from .installation import Device, Installation

MINUTES = 1440
_EPOCH_ORDINAL = dt.date(2020, 1, 1).toordinal()
NOMINAL_AC_V = 230.0
NOMINAL_HZ = 50.0


def _const(value: float) -> Callable[[State], float]:
    """A value function that always gives ``value``."""
    v = float(value)
    return lambda s: v


def _noise(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) for ``key``: the same for the same seed and key."""
    return (zlib.crc32(key.encode(), seed & 0xFFFFFFFF) & 0xFFFFFF) / float(0x1000000)


@dataclass
class DayTable:
    """Minute-by-minute state of one local day (arrays of 1440, cumulative ones of 1441)."""

    date: dt.date
    sun: np.ndarray  # 0..1 irradiance fraction
    pv_kw: np.ndarray  # total PV power actually produced
    load_kw: np.ndarray  # total AC consumption
    grid_kw: np.ndarray  # total power taken from AC-In
    ibat: np.ndarray  # battery current, A, > 0 charging
    ubat: np.ndarray  # battery voltage, V
    soc: np.ndarray  # %
    phase: np.ndarray  # 0 night/none, 1 bulk, 2 absorption, 4 floating
    tbat: np.ndarray  # battery temperature, degC
    e_pv: np.ndarray  # cumulative kWh since midnight (1441)
    e_load: np.ndarray
    e_grid: np.ndarray
    e_bat_out: np.ndarray
    ah_in: np.ndarray  # cumulative Ah charged (1441)
    ah_out: np.ndarray  # cumulative Ah discharged (1441)
    ah_pv: np.ndarray  # cumulative Ah produced by PV (1441)
    sun_h: np.ndarray  # cumulative irradiation hours (1441)
    abs_h: np.ndarray  # cumulative hours in absorption (1441)


class Plant:
    """The installation's physics: one :class:`DayTable` per local date, cached."""

    def __init__(self, installation: Installation, seed: int = 0) -> None:
        self.installation = installation
        self.seed = seed
        self.tz = ZoneInfo(installation.timezone)
        self._days: dict[dt.date, DayTable] = {}
        n_pv = installation.variotracks + installation.variostrings
        self.pv_weights: dict[int, float] = {}
        k = 0
        for device in installation.devices:
            if device.family in (Family.VARIOTRACK, Family.VARIOSTRING):
                self.pv_weights[device.address] = 1.0 - 0.08 * k + 0.04 * _noise(f"pv{k}", seed)
                k += 1
        self.pv_peak_total = (
            installation.pv_peak_kw * sum(self.pv_weights.values()) if n_pv else 0.0
        )
        n_xt = installation.xtenders
        self.xt_weights = {
            d.address: (1.0 + 0.1 * (_noise(f"xt{d.index}", seed) - 0.5)) / max(n_xt, 1)
            for d in installation.devices
            if d.family is Family.XTENDER
        }
        total = sum(self.xt_weights.values()) or 1.0
        self.xt_weights = {a: w / total for a, w in self.xt_weights.items()}
        self.capacity_ah = max(installation.battery_ah, 1.0)
        self.cells = installation.cells

    # --- time ----------------------------------------------------------------------

    def local(self, t: float) -> dt.datetime:
        """Local wall time of posix time ``t`` in the installation's zone."""
        return dt.datetime.fromtimestamp(t, self.tz)

    def device_time(self, t: float) -> int:
        """What the devices' clock reads: local wall time expressed as posix seconds."""
        local = self.local(t)
        return int(t + (local.utcoffset() or dt.timedelta()).total_seconds())

    # --- the day simulation --------------------------------------------------------

    def day(self, date: dt.date) -> DayTable:
        """The table of a local date, computed on first use (a few ms) and cached."""
        table = self._days.get(date)
        if table is None:
            if len(self._days) > 16:
                self._days.clear()
            table = self._compute(date, self._start_soc(date))
            self._days[date] = table
        return table

    def _start_soc(self, date: dt.date) -> float:
        # The day before, run from a seeded state of charge, sets where this day starts:
        # every date gets the same start whatever order days are asked in.
        before = date - dt.timedelta(days=1)
        seeded = 40.0 + 35.0 * _noise(f"soc{before}", self.seed)
        return float(self._compute(before, seeded).soc[-1])

    def _compute(self, date: dt.date, soc0: float) -> DayTable:
        inst = self.installation
        seed = self.seed
        hours = (np.arange(MINUTES) + 0.5) / 60.0
        doy = date.timetuple().tm_yday
        season = 0.5 - 0.5 * math.cos(2 * math.pi * (doy - 10) / 365.25)  # 0 winter, 1 summer
        sunrise = 7.6 - 2.2 * season
        sunset = 16.9 + 4.3 * season
        span = sunset - sunrise
        x = np.clip((hours - sunrise) / span, 0.0, 1.0)
        clear = np.sin(np.pi * x) ** 1.3
        cloudy_day = _noise(f"wx{date}", seed)
        base = 0.35 + 0.65 * (1.0 - cloudy_day**2)
        phases = [2 * math.pi * _noise(f"cl{date}{i}", seed) for i in range(3)]
        clouds = (
            np.sin(hours * 2 * math.pi / 0.37 + phases[0])
            + 0.6 * np.sin(hours * 2 * math.pi / 0.13 + phases[1])
            + 0.4 * np.sin(hours * 2 * math.pi / 1.7 + phases[2])
        )
        cloud_factor = np.clip(
            base + (1 - base) * 0.2 * clouds - cloudy_day * 0.15 * (clouds > 0.8), 0.05, 1.0
        )
        sun = clear * cloud_factor
        pv_avail = self.pv_peak_total * (0.3 + 0.7 * season) ** 0.3 * sun

        morning = np.exp(-(((hours - 7.5) / 1.2) ** 2))
        evening = np.exp(-(((hours - 19.5) / 2.0) ** 2))
        ripple = 0.08 * np.sin(hours * 2 * math.pi / 0.21 + phases[1])
        load = inst.load_kw * (0.45 + 0.7 * morning + 1.1 * evening + 0.25 * x + ripple)
        load = np.maximum(load, 0.05 * inst.load_kw)

        n = MINUTES
        pv = np.empty(n)
        grid = np.zeros(n)
        ibat = np.empty(n)
        ubat = np.empty(n)
        soc = np.empty(n)
        phase = np.zeros(n, dtype=np.int64)
        cap = self.capacity_ah
        cells = self.cells
        has_battery_chargers = self.pv_peak_total > 0
        grid_ok = inst.grid and inst.xtenders > 0
        charging_from_grid = False
        s = soc0
        for m in range(n):
            u_rest = cells * (1.96 + 0.17 * s / 100.0)
            pv_m = pv_avail[m] if has_battery_chargers else 0.0
            # Charge current limit tapers above 85 % (absorption), floating when full.
            if s >= 99.0:
                limit_a = 0.01 * cap
                ph = 4
            elif s >= 85.0:
                limit_a = cap * 0.2 * (100.0 - s) / 15.0 + 0.01 * cap
                ph = 2
            else:
                limit_a = cap * 0.2
                ph = 1 if pv_m > 0.02 else 0
            if grid_ok and (s < 30.0 or (charging_from_grid and s < 45.0)):
                charging_from_grid = True
                g = load[m] + min(limit_a * u_rest / 1000.0, inst.load_kw * 2)
                ph = 1
            else:
                charging_from_grid = False
                g = 0.0
            net_kw = pv_m + g - load[m]
            i = net_kw * 1000.0 / u_rest
            if i > limit_a:
                # Too much PV: the chargers curtail their production.
                i = limit_a
                pv_m = max(0.0, load[m] - g + i * u_rest / 1000.0)
            if s <= 5.0 and i < 0:
                i = 0.0  # low-voltage disconnect: the inverters stop
            s = min(100.0, max(0.0, s + i / 60.0 / cap * 100.0))
            pv[m] = pv_m
            grid[m] = g
            ibat[m] = i
            soc[m] = s
            ubat[m] = u_rest + 0.012 * i * 100.0 / cap * (2.0 if i > 0 else 1.0)
            phase[m] = ph
        tbat = (
            18.0
            + 4.0 * season
            + 3.0 * np.sin(np.pi * np.clip((hours - 9) / 12, 0, 1))
            + 0.002 * np.abs(ibat)
        )

        def cumulate(per_minute: np.ndarray) -> np.ndarray:
            out = np.zeros(n + 1)
            np.cumsum(per_minute / 60.0, out=out[1:])
            return out

        ubat_nonzero = np.maximum(ubat, 1.0)
        return DayTable(
            date=date,
            sun=sun,
            pv_kw=pv,
            load_kw=load,
            grid_kw=grid,
            ibat=ibat,
            ubat=ubat,
            soc=soc,
            phase=phase,
            tbat=tbat,
            e_pv=cumulate(pv),
            e_load=cumulate(load),
            e_grid=cumulate(grid),
            e_bat_out=cumulate(np.maximum(-ibat, 0) * ubat / 1000.0),
            ah_in=cumulate(np.maximum(ibat, 0)),
            ah_out=cumulate(np.maximum(-ibat, 0)),
            ah_pv=cumulate(pv * 1000.0 / ubat_nonzero),
            sun_h=cumulate((sun > 0.1).astype(float)),
            abs_h=cumulate((phase == 2).astype(float)),
        )


@dataclass
class State:
    """The installation at one instant, as plain floats (what the value functions read)."""

    t: float
    minute: int
    frac: float
    day: DayTable
    yesterday: DayTable
    day_index: int  # local days since 2020-01-01
    year_day: int  # local days since the 1st of January
    day_fraction: float  # 0..1 of the local day gone
    jitter: float  # -1..1, changes every second

    def __post_init__(self) -> None:
        # Memo of everything read at this instant: many infos share a quantity.
        self._memo: dict[tuple[str, str], float] = {}

    def _get(self, kind: str, name: str, compute: Callable[[], float]) -> float:
        key = (kind, name)
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = float(compute())
        return value

    def at(self, name: str) -> float:
        return self._get("at", name, lambda: getattr(self.day, name)[self.minute])

    def cum(self, name: str) -> float:
        def compute() -> float:
            arr = getattr(self.day, name)
            return arr[self.minute] + (arr[self.minute + 1] - arr[self.minute]) * self.frac

        return self._get("cum", name, compute)

    def progress(self, name: str) -> float:
        """How much of today's total of a cumulative quantity is done (0..1)."""
        full = float(getattr(self.day, name)[-1])
        return self.cum(name) / full if full > 1e-9 else self.day_fraction

    def yday(self, name: str) -> float:
        return self._get("yday", name, lambda: getattr(self.yesterday, name)[-1])

    def running_max(self, name: str) -> float:
        return self._get("max", name, lambda: np.max(getattr(self.day, name)[: self.minute + 1]))

    def running_min(self, name: str) -> float:
        return self._get("min", name, lambda: np.min(getattr(self.day, name)[: self.minute + 1]))


ValueFn = Callable[[State], float]


class ValueModel:
    """Maps every user info of every device to a function of the :class:`State`."""

    def __init__(
        self, installation: Installation, infos: dict[Family, list], seed: int = 0
    ) -> None:
        self.installation = installation
        self.plant = Plant(installation, seed)
        self.seed = seed
        self._fns: dict[tuple[int, int], ValueFn] = {}
        for device in installation.devices:
            for dp in infos.get(device.family, ()):
                self._fns[(device.address, dp.number)] = self._function(device, dp)
        self._state_second: int | None = None
        self._state: State | None = None

    def state(self, t: float) -> State:
        """The state at posix time ``t`` (recomputed at most once per second)."""
        second = int(t)
        if second != self._state_second or self._state is None:
            local = self.plant.local(t)
            date = local.date()
            sec = local.hour * 3600 + local.minute * 60 + local.second + (t - second)
            minute = min(int(sec // 60), MINUTES - 1)
            self._state = State(
                t=t,
                minute=minute,
                frac=(sec - minute * 60) / 60.0,
                day=self.plant.day(date),
                yesterday=self.plant.day(date - dt.timedelta(days=1)),
                day_index=date.toordinal() - _EPOCH_ORDINAL,
                year_day=date.timetuple().tm_yday - 1,
                day_fraction=sec / 86400.0,
                jitter=2.0 * _noise(str(second), self.seed) - 1.0,
            )
            self._state_second = second
        return self._state

    def value(self, address: int, number: int, t: float) -> float:
        """The value of info ``number`` on device ``address`` at time ``t``."""
        return self._fns[(address, number)](self.state(t))

    def has(self, address: int, number: int) -> bool:
        return (address, number) in self._fns

    # --- mapping infos to quantities -----------------------------------------------

    def _function(self, device: Device, dp) -> ValueFn:
        """Choose the quantity an info shows from its name, unit, format and options."""
        name = (dp.name or "").lower()
        rcc_unit = (getattr(dp, "rcc_unit", "") or "").strip().lower()
        unit = (dp.unit or "").strip().lower().replace("°", "")
        ac = rcc_unit in ("vac", "aac") or unit in ("vac", "aac")
        family = device.family
        seed = self.seed
        plant = self.plant
        address = device.address
        inst = self.installation
        pv_w = plant.pv_weights.get(address, 0.0)
        pv_total_w = sum(plant.pv_weights.values()) or 1.0
        xt_w = plant.xt_weights.get(address, 0.0)
        is_pv_dev = family in (Family.VARIOTRACK, Family.VARIOSTRING)
        is_xt = family is Family.XTENDER
        options = dict(getattr(dp, "options", None) or {})
        key = f"{address}:{dp.number}"
        # One MPPT input of two (VarioString PV1/PV2) carries about half.
        half = 0.5 if re.search(r"\bpv[12]\b", name) else 1.0
        spread = 0.004 if (ac or unit == "hz") else 0.015
        sign = (
            -1.0
            if ("(minute min)" in name or "power min" in name)
            else 1.0
            if "(minute max)" in name
            else 0.0
        )

        def jittered(fn: ValueFn) -> ValueFn:
            if not sign:
                return fn
            return lambda s: fn(s) + sign * spread * abs(fn(s))

        # Identification infos: the device model's codes (xcomlog.models), then software
        # version and FID encoded as the specification says (sections 4.4.3-4.4.4).
        if dp.number in device.codes:
            return _const(device.codes[dp.number])
        if "soft" in name and ("msb" in name or "lsb" in name):
            x, y, z = device.software
            word = (x << 24) | (y << 8) | z
            return _const(word >> 16 if "msb" in name else word & 0xFFFF)
        if "fid" in name and ("msb" in name or "lsb" in name):
            return _const(device.fid >> 16 if "msb" in name else device.fid & 0xFFFF)
        if "defined phase" in name:
            return _const({1: 1.0, 2: 2.0, 3: 4.0}[device.phase or 1])
        if "number of battery elements" in name:
            return _const(inst.cells)
        if name.startswith("id ") and not options:
            if unit in ("v", "vdc", "vac"):
                return _const(NOMINAL_AC_V if ac else float(inst.nominal_voltage))
            if unit in ("a", "aac", "adc"):
                return _const(35.0)
            return _const(1 + int(8 * _noise(key, seed)))
        if any(w in name for w in ("nbr", "number of", "debug", "error counter", "lockings")):
            return _const(0.0)
        if unit in ("ctmp", "cdyn") or "injection" in name or "freezed" in name:
            return _const(0.0)

        if options:
            return self._enum_function(device, name, options, key)

        # Which flow does the info belong to?
        if any(w in name for w in ("pv", "solar", "production", "produced", "irradiation")) or (
            is_pv_dev and "power" in name
        ):
            flow = "pv"
        elif any(w in name for w in ("consumer", "output", "ac out", "out ")):
            flow = "load"
        elif any(w in name for w in ("ac-in", "input", "ac in")):
            flow = "grid"
        elif "discharge of battery" in name:
            flow = "bat_out"
        else:
            flow = "battery"

        def share(total: float) -> float:
            if flow == "pv":
                return total * (pv_w / pv_total_w * half if is_pv_dev else 1.0)
            if is_xt:
                return total * xt_w
            return total

        # Totals: years of history at a plausible daily average, plus today.
        daily = {
            "pv": inst.pv_peak_kw * 3.2 * pv_total_w,
            "load": inst.load_kw * 9.0,
            "grid": inst.load_kw * 2.0,
            "bat_out": inst.load_kw * 5.0,
            "battery": inst.load_kw * 5.0,
        }[flow]
        since_install = 400.0 + 900.0 * _noise(f"age{address}", seed)

        def day_or_total(cum_name: str, scale: float = 1.0, per_day: float = daily) -> ValueFn:
            if "previous day" in name or "yesterday" in name:
                return lambda s: share(s.yday(cum_name)) * scale
            if "current day" in name or "today" in name:
                return lambda s: share(s.cum(cum_name)) * scale
            # Totals grow by one typical day per day, spread over the day as the real
            # flow goes: continuous at midnight and never decreasing. Resettable and custom
            # counters restart on the 1st of January.
            if "resettable" in name or "custom" in name:
                return lambda s: share(per_day * (s.year_day + s.progress(cum_name))) * scale
            return lambda s: (
                share(per_day * (since_install + s.day_index + s.progress(cum_name))) * scale
            )

        if unit in ("kwh", "wh", "mwh"):
            cum_name = {
                "pv": "e_pv",
                "load": "e_load",
                "grid": "e_grid",
                "bat_out": "e_bat_out",
            }.get(flow, "e_load")
            return day_or_total(cum_name, 0.001 if unit == "mwh" else 1.0)
        if unit in ("ah", "kah"):
            scale = 0.001 if unit == "kah" else 1.0
            per_day_ah = daily * 1000.0 / (2.0 * inst.cells)
            if flow == "pv":
                return day_or_total("ah_pv", scale, per_day_ah)
            if "discharg" in name:
                return day_or_total("ah_out", scale, per_day_ah)
            return day_or_total("ah_in", scale, per_day_ah)
        if unit in ("kw", "kva", "w", "va") or "power" in name:
            scale = 1000.0 if unit in ("w", "va") else 1.0
            apparent = 1.08 if unit in ("kva", "va") else 1.0
            if flow == "pv":
                if "max" in name and "current day" in name:
                    return lambda s: share(s.running_max("pv_kw"))
                return jittered(lambda s: share(s.at("pv_kw")) * scale)
            if flow == "load":
                return jittered(
                    lambda s: share(s.at("load_kw") * (1 + 0.01 * s.jitter)) * scale * apparent
                )
            if flow == "grid":
                return jittered(lambda s: share(s.at("grid_kw")) * scale * apparent)
            # Battery power (BSP): voltage times current.
            return lambda s: s.at("ubat") * s.at("ibat") * (scale / 1000.0)
        if unit in ("v", "vdc", "vac") or "voltage" in name:
            if "pv" in name:
                voc = 140.0 if family is Family.VARIOTRACK else 420.0
                if "earth" in name:
                    return lambda s: -0.4 * voc * min(1.0, s.at("sun") * 3)
                if "max" in name and "current day" in name:
                    return lambda s: voc * 0.82 if s.running_max("sun") > 0.01 else 2.0
                return jittered(
                    lambda s: voc * (0.76 + 0.06 * s.at("sun")) if s.at("sun") > 0.01 else 2.0
                )
            if "earth" in name:
                return _const(0.2)
            if ac and flow == "grid":
                return jittered(lambda s: NOMINAL_AC_V + 3.0 * s.jitter if inst.grid else 0.0)
            if ac:
                return jittered(lambda s: NOMINAL_AC_V + 0.5 * s.jitter)
            if "min battery voltage" in name:
                return lambda s: s.running_min("ubat")
            if "max battery voltage" in name:
                return lambda s: s.running_max("ubat")
            if "low voltage" in name or "discharge voltage" in name:
                return _const(1.93 * inst.cells)
            if "limit" in name or "target" in name or "set point" in name:
                return _const(2.26 * inst.cells)
            if "ripple" in name or "relay voltage" in name:
                return lambda s: 0.1 + 0.05 * abs(s.jitter)
            return jittered(lambda s: s.at("ubat") + 0.02 * s.jitter)
        if unit in ("a", "adc", "aac") or "current" in name:
            if flow == "pv":
                voc = 140.0 if family is Family.VARIOTRACK else 420.0
                return jittered(lambda s: share(s.at("pv_kw")) * 1000.0 / (voc * 0.8))
            if is_pv_dev:  # a charger's battery current is its production
                if "max" in name:
                    return lambda s: share(s.running_max("pv_kw")) * 1000.0 / (2.0 * inst.cells)
                return jittered(lambda s: share(s.at("pv_kw")) * 1000.0 / max(s.at("ubat"), 1.0))
            if ac and flow == "grid":
                return jittered(lambda s: share(s.at("grid_kw")) * 1000.0 / NOMINAL_AC_V)
            if ac:
                return jittered(lambda s: share(s.at("load_kw")) * 1000.0 / NOMINAL_AC_V)
            if any(w in name for w in ("limit", "wanted", "recommended", "allowed")):
                return _const(round(0.2 * self.plant.capacity_ah))
            if is_xt:  # the inverter's share: what it takes from or gives to the battery
                return jittered(
                    lambda s: (
                        xt_w * (s.at("grid_kw") - s.at("load_kw")) * 1000.0 / max(s.at("ubat"), 1.0)
                    )
                )
            return jittered(lambda s: s.at("ibat") + 0.05 * s.jitter)
        if unit == "%" or "state of charge" in name:
            if "charge" in name or "soc" in name:
                return lambda s: s.at("soc")
            if "health" in name:
                return _const(97.0)
            return _const(100.0)
        if unit in ("c", "degc") or "temperature" in name:
            if "batt" in name:
                return jittered(lambda s: s.at("tbat"))
            return jittered(
                lambda s: 28.0 + 15.0 * abs(s.at("ibat")) / self.plant.capacity_ah + 0.3 * s.jitter
            )
        if unit == "hz" or "frequency" in name:
            if flow == "grid":
                return jittered(lambda s: NOMINAL_HZ + 0.03 * s.jitter if inst.grid else 0.0)
            return jittered(lambda s: NOMINAL_HZ + 0.01 * s.jitter)
        if unit == "h":
            if "irradiation" in name:
                if "previous" in name:
                    return lambda s: s.yday("sun_h")
                return lambda s: s.cum("sun_h")
            if "absorption" in name:
                return lambda s: s.cum("abs_h")
            return _const(int(100 * _noise(key, seed)))
        if unit == "days":
            if "total" in name:
                return lambda s: since_install + s.day_index + s.day_fraction
            return _const(1 + int(25 * _noise(key, seed)))
        if unit == "minutes":
            return lambda s: (
                s.at("soc")
                / 100.0
                * self.plant.capacity_ah
                * s.at("ubat")
                / max(s.at("load_kw") * 1000.0, 1.0)
                * 60.0
            )
        # Anything else: a stable small number.
        return _const(int(10 * _noise(key, seed)))

    def _enum_function(self, device: Device, name: str, options: dict, key: str) -> ValueFn:
        """State enums follow the model where their labels say what they mean."""
        labels = {int(k): str(v).lower() for k, v in options.items()}
        valid = [k for k, v in labels.items() if "invalid" not in v] or list(labels)

        def find(*words: str) -> int | None:
            for k, label in labels.items():
                if any(re.search(rf"\b{re.escape(w)}", label) for w in words):
                    return k
            return None

        if "cycle phase" in name:
            mapping = {
                0: find("floating", "float", "night"),
                1: find("bulk"),
                2: find("absorpt"),
                4: find("floating"),
            }
            fallback = valid[0]
            table = {k: (v if v is not None else fallback) for k, v in mapping.items()}
            return lambda s: float(table.get(int(s.at("phase")), fallback))
        if (
            "operating state" in name
            or name == "operating mode"
            or "pv operating mode" in name
            or "pv1 operating" in name
            or "pv2 operating" in name
        ):
            day_option = find("charger", "mppt", "charge")
            night_option = find("inverter", "night")
            grid_option = find("boost", "charger")
            day_v = float(day_option if day_option is not None else valid[0])
            night_v = float(night_option if night_option is not None else valid[-1])
            grid_v = float(grid_option if grid_option is not None else day_v)
            if device.family is Family.XTENDER:
                return lambda s: grid_v if s.at("grid_kw") > 0 else night_v
            return lambda s: day_v if s.at("sun") > 0.02 else night_v
        if "transfer relay" in name:
            closed = find("closed")
            opened = find("opened", "open")
            if closed is not None and opened is not None:
                return lambda s: float(closed) if s.at("grid_kw") > 0 else float(opened)
        if "auxiliary relay" in name or "state of aux" in name:
            on = find("activated", "on")
            off = find("deactivated", "off")
            if on is not None and off is not None and on != off:
                return lambda s: float(on) if s.at("soc") > 90 else float(off)
        if ("state of the" in name or "state" == name.split()[-1]) and len(valid) >= 2:
            on = find("on", "run", "active")
            if on is not None:
                return _const(on)
        return _const(valid[0])
