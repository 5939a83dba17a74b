"""Replay of a real SD-card datalog: measured minute values served instead of the model's.

The day file is read with xcomlog's own importer (:mod:`xcomlog.sdcard`); each column is
mapped to the simulated device it came from (``L2-2`` -> the second Xtender, ``L1`` -> the
master of phase 1, ``1`` -> VarioTrack/VarioString 1 or the BSP), and its values are served
at the same local time of day, every day. Infos the file does not hold keep the model's
values. A ``(minute avg)`` column also feeds the instantaneous info of the same name, so a
client reading {3000} sees the logged {3092}.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ValidationError
from ..protocol import ADDRESS_PHASE_L1, Family, family_of_address, is_multicast, is_phase
from .installation import Installation

_MINUTE_SUFFIX = re.compile(r"\s*\(minute avg\)\s*$", re.IGNORECASE)


def _read(path: str | Path) -> Any:
    from ..sdcard import read_datalog

    try:
        return read_datalog(path, phase_columns="phase")
    except Exception as exc:  # a clear message naming the file, whatever the parser says
        raise ValidationError(f"cannot replay {path}: {exc}") from None


def installation_for(path: str | Path, **overrides: Any) -> Installation:
    """An installation with the devices a datalog file shows (inventory and columns)."""
    log = _read(path)
    xt_phases: dict[int, int] = {}
    counts = {Family.VARIOTRACK: 0, Family.VARIOSTRING: 0}
    battery = False
    for column in log.columns:
        if column.label.upper().startswith("DEV"):
            continue  # diagnostic columns exist whether or not the device does
        token = column.device.upper()
        m = re.fullmatch(r"L([123])-(\d+)", token)
        if m:
            xt_phases[int(m.group(2))] = int(m.group(1))
        elif column.family in counts and token.isdigit():
            counts[column.family] = max(counts[column.family], int(token))
        elif column.family in (Family.BSP, Family.XCOM_CAN_BMS) and column.family is not None:
            battery = True
    if not xt_phases and any(is_phase(c.address) for c in log.columns):
        xt_phases = {1: 1}
    n_xt = max(xt_phases) if xt_phases else 0
    settings: dict[str, Any] = dict(
        xtenders=n_xt,
        phases=tuple(xt_phases.get(i, 1) for i in range(1, n_xt + 1)) if n_xt else None,
        variotracks=counts[Family.VARIOTRACK],
        variostrings=counts[Family.VARIOSTRING],
        battery="bsp" if battery else None,
        replay=str(path),
    )
    settings.update(overrides)
    return Installation(**settings)


class Replay:
    """Values of one datalog by (address, number) and local minute of the day."""

    def __init__(
        self, path: str | Path, installation: Installation, infos: dict | None = None
    ) -> None:
        log = _read(path)
        self.name = log.name
        self.plant_tz = installation.timezone
        from zoneinfo import ZoneInfo

        self._tz = ZoneInfo(installation.timezone)
        minutes = log.local_times.astype("datetime64[m]").astype(np.int64) % 1440
        self._rows = np.full(1440, -1, dtype=np.int64)
        self._rows[minutes] = np.arange(len(minutes))
        # Minutes the file lacks (a truncated day) take the nearest earlier row.
        last = -1
        for m in range(1440):
            if self._rows[m] >= 0:
                last = self._rows[m]
            elif last >= 0:
                self._rows[m] = last
        first_row = int(self._rows[self._rows >= 0][0]) if (self._rows >= 0).any() else -1
        self._rows[self._rows < 0] = first_row
        self._data = log.data
        devices = installation.devices
        by_address = {d.address: d for d in devices}
        self._columns: dict[tuple[int, int], int] = {}
        for j, column in enumerate(log.columns):
            address = column.address
            if is_phase(address):
                p = address - ADDRESS_PHASE_L1 + 1
                master = next(
                    (d for d in devices if d.family is Family.XTENDER and d.phase == p), None
                )
                if master is None:
                    continue
                address = master.address
            if is_multicast(address) or address not in by_address:
                continue
            self._columns.setdefault((address, column.number), j)
            # The averaged column also stands for the instantaneous info of the same name.
            family = family_of_address(address)
            if infos and family in infos:
                base = self._base_number(infos[family], column.number)
                if base is not None:
                    self._columns.setdefault((address, base), j)
        if not self._columns:
            raise ValidationError(
                f"cannot replay {path}: no column matches the installation's devices"
            )

    @staticmethod
    def _base_number(infos: Any, number: int) -> int | None:
        items = infos.values() if isinstance(infos, dict) else infos
        by_number = {dp.number: dp for dp in items}
        dp = by_number.get(number)
        if dp is None or not _MINUTE_SUFFIX.search(dp.name or ""):
            return None
        base_name = _MINUTE_SUFFIX.sub("", dp.name).strip().lower()
        for other in items:
            if other.number != number and (other.name or "").strip().lower() == base_name:
                return other.number
        return None

    def keys(self) -> set[tuple[int, int]]:
        """(address, number) pairs the replay serves."""
        return set(self._columns)

    def value(self, address: int, number: int, t: float) -> float | None:
        """The logged value at the local time of day of ``t``, or None (not in the file, NaN)."""
        j = self._columns.get((address, number))
        if j is None:
            return None
        local = dt.datetime.fromtimestamp(t, self._tz)
        row = self._rows[local.hour * 60 + local.minute]
        if row < 0:
            return None
        value = float(self._data[row, j])
        return None if math.isnan(value) else value
