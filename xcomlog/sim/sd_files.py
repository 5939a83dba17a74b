"""The simulated SD card (``SdCard``): ``LGyymmdd.CSV`` day files written by our own code from the model.

The Xcom-232i datalogger writes one file per local day to ``CSVFILES/LOG``. The simulator
lists the last ``sd_days`` complete days and renders each file on first request in the
layout real firmware uses (three header lines, one row per minute, parameter and day
counter lines, the device inventory), with values from the same model the live reads
serve. Nothing is copied from real files.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from ..protocol import (
    DATALOG_DAY_INFOS,
    DATALOG_INFOS,
    DATALOG_PARAMETERS,
    DATALOG_SOLAR_POWER_ALL,
    Family,
    Format,
    datalog_file_date,
    datalog_file_name,
)
from .installation import Device, Installation


class DatalogSource(Protocol):
    """What the SD card reads from the installation it logs (the ``DatalogSource`` is one)."""

    installation: Installation
    custom_datalog_field: str

    @property
    def model(self) -> Any:
        """The value model: ``model.plant`` (local time, zone) and ``model.state(t)``."""

    def devices_by_family(self) -> dict[Family, list[Device]]:
        """The installation's devices, per family, in address order."""

    def info_datapoints(self, family: Family) -> dict[int, Any]:
        """The catalog's user infos of ``family``, by number."""

    def parameter_datapoints(self, family: Family) -> dict[int, Any]:
        """The catalog's parameters of ``family``, by number."""

    def parameter_flash(self, device: Device, number: int) -> Any:
        """The flash value of parameter ``number`` of ``device``."""

    def value_at(self, address: int, number: int, t: float) -> float:
        """Info ``number`` of the device at ``address`` at posix time ``t``."""


VERSION = "v7.0"
ENCODING = "latin-1"
NEWLINE = "\r\n"
_PREFIX = {
    Family.XTENDER: "XT",
    Family.VARIOTRACK: "VT",
    Family.VARIOSTRING: "VS",
    Family.BSP: "BSP",
    Family.XCOM_CAN_BMS: "BSP",
}
_FAMILY_ORDER = (Family.XTENDER, Family.VARIOSTRING, Family.VARIOTRACK, Family.BSP)
_INT_FORMATS = (Format.SHORT_ENUM, Format.LONG_ENUM, Format.INT32, Format.BOOL)


file_name = datalog_file_name


def parse_name(name: str) -> dt.date | None:
    """The date of a datalog file name, or None if it is not one."""
    return datalog_file_date(name.strip())


class SdCard:
    """Day files of one simulator: which exist, their bytes, the new-file flag."""

    def __init__(self, sim: DatalogSource) -> None:
        self._sim = sim
        self.days = sim.installation.sd_days
        self.new_file = self.days > 0
        self._files: dict[dt.date, bytes] = {}
        self._date: dt.date | None = None

    def dates(self, now: float) -> list[dt.date]:
        """Dates of the complete days on the card, oldest first."""
        today = self._sim.model.plant.local(now).date()
        return [today - dt.timedelta(days=k) for k in range(self.days, 0, -1)]

    def names(self, now: float) -> list[str]:
        return [file_name(d) for d in self.dates(now)]

    def read(self, name: str, now: float) -> bytes | None:
        """The bytes of file ``name`` or None when the card has no such file."""
        date = parse_name(name)
        if date is None or date not in self.dates(now):
            return None
        data = self._files.get(date)
        if data is None:
            if len(self._files) > 8:
                self._files.clear()
            data = render_day(self._sim, date)
            self._files[date] = data
        return data

    def mark_read(self, name: str) -> None:
        """A file was downloaded: the gateway resets its new-file flag."""
        self.new_file = False

    def tick(self, now: float) -> None:
        """Midnight writes yesterday's file: the new-file flag comes on."""
        date = self._sim.model.plant.local(now).date()
        if self._date is not None and date != self._date and self.days:
            self.new_file = True
        self._date = date


def _label(family: Family, dp: Any) -> str:
    name = dp.name.lower()
    short = getattr(dp, "short_name", "") or dp.name
    suffix = " (MIN)" if "minute min" in name else " (MAX)" if "minute max" in name else ""
    unit = getattr(dp, "rcc_unit", "") or dp.unit or ""
    return f"{_PREFIX[family]}-{short}{suffix} [{unit}]"


def _columns(sim: DatalogSource) -> list[tuple[str, str, str, Any, bool]]:
    """(label, info token, device token, value getter(t), integer) per column, in file order."""
    model = sim.model
    inst = sim.installation
    families = sim.devices_by_family()
    columns: list[tuple[str, str, str, Any, bool]] = []
    for family in _FAMILY_ORDER:
        source: Family | None = family
        if family is Family.BSP:
            source = inst.battery_family
        devices = families.get(source) if source is not None else None
        if not devices:
            continue
        infos = sim.info_datapoints(source)
        for number, split in DATALOG_INFOS.get(family, ()):
            dp = infos.get(number)
            if dp is None:
                continue
            integer = dp.format in _INT_FORMATS
            group: list[tuple[str, Any]] = []
            if split == "phase":
                for p in sorted({d.phase or 1 for d in devices}):
                    master = next(d for d in devices if (d.phase or 1) == p)
                    group.append((f"L{p}", _reader(sim, [master.address], number)))
            else:
                for d in devices:
                    token = (
                        f"L{d.phase or 1}-{d.index}" if family is Family.XTENDER else str(d.index)
                    )
                    group.append((token, _reader(sim, [d.address], number)))
                if split == "device+all":
                    group.append(("ALL", _reader(sim, [d.address for d in devices], number)))
            for i, (token, getter) in enumerate(group):
                label = _label(family, dp) if i == 0 else ""
                columns.append((label, f"I{number}", token, getter, integer))
    has_pv = any(families.get(f) for f in (Family.VARIOTRACK, Family.VARIOSTRING))

    def solar(t: float) -> float:
        return model.state(t).at("pv_kw") if has_pv else 0.0

    columns.append(("Solar power (ALL) [kW]", f"I{DATALOG_SOLAR_POWER_ALL}", "ALL", solar, False))
    return columns


def _reader(sim: Any, addresses: list[int], number: int) -> Any:
    """A getter of the sum of info ``number`` over ``addresses`` at time t."""
    value_at = sim.value_at
    if len(addresses) == 1:
        address = addresses[0]
        return lambda t: value_at(address, number, t)
    return lambda t: sum(value_at(a, number, t) for a in addresses)


def _fmt(value: float, integer: bool) -> str:
    if value != value:  # NaN
        return "nan"
    return str(int(round(value))) if integer else f"{value:.2f}"


def render_day(sim: DatalogSource, date: dt.date) -> bytes:
    """The complete ``LGyymmdd.CSV`` of one local day, as the datalogger writes it."""
    model = sim.model
    tz = model.plant.tz
    columns = _columns(sim)
    lines = [
        ",".join([VERSION] + [c[0] for c in columns]) + ",",
        ",".join([""] + [c[1] for c in columns]) + ",",
        ",".join([""] + [c[2] for c in columns]) + ",",
    ]
    midnight = dt.datetime(date.year, date.month, date.day, tzinfo=tz)
    for minute in range(1440):
        local = midnight + dt.timedelta(minutes=minute)
        t = local.timestamp()
        cells = [_fmt(getter(t), integer) for _, _, _, getter, integer in columns]
        lines.append(f"{local:%d.%m.%Y %H:%M}," + ",".join(cells) + ",,")
    end = (midnight + dt.timedelta(days=1)).timestamp() - 1.0
    lines.extend(_parameter_lines(sim))
    lines.append("")
    lines.extend(_day_info_lines(sim, end))
    lines.append("")
    lines.extend(_inventory_lines(sim))
    if sim.custom_datalog_field:
        lines.append(sim.custom_datalog_field)
    lines.extend(["", "", ""])
    return NEWLINE.join(lines).encode(ENCODING, errors="replace")


def _parameter_lines(sim: DatalogSource) -> list[str]:
    out = []
    for number in DATALOG_PARAMETERS:
        cells = []
        for family, devices in sim.devices_by_family().items():
            if number in sim.parameter_datapoints(family):
                values = [sim.parameter_flash(d, number) for d in devices[:3]]
                cells = [f"{float(v or 0):.2f}" for v in values]
                break
        cells += ["0.00"] * (3 - len(cells))
        out.append(f"P{number}," + ",".join(cells) + ",")
    return out


def _day_info_lines(sim: DatalogSource, t: float) -> list[str]:
    out = []
    for number in DATALOG_DAY_INFOS:
        cells: list[str] = []
        for family, devices in sim.devices_by_family().items():
            if number in sim.info_datapoints(family):
                cells = [f"{sim.value_at(d.address, number, t):.2f}" for d in devices]
                break
        out.append(f"I{number}," + "".join(c + "," for c in cells))
    return out


def _inventory_lines(sim: DatalogSource) -> list[str]:
    xts = []
    others = []
    counters: dict[str, int] = {}
    for d in sim.installation.devices:
        x, y, z = d.software
        soft = f"Soft:{x}.{y}.{z}"
        fid = f"FID:{d.fid:08X}"
        if d.family is Family.XTENDER:
            xts.append(
                f"L{d.phase or 1}-{d.index}:{d.model} (230-31) {soft} Cmd:11.4 Pwr:3.1 Params:447 {fid}"
            )
        else:
            kind = "gateway" if d.family is Family.RCC else d.family.value
            counters[kind] = counters.get(kind, 0) + 1
            params = (
                f" Params:{len(sim.parameter_datapoints(d.family))}"
                if d.family is not Family.RCC
                else ""
            )
            others.append(f"{d.index}:{d.model} {soft} Cmd:1.0{params} {fid}")
    return xts + [""] + others
