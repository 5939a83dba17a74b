"""Numbers as people read them: as many decimals as the unit deserves, never an exponent.

A float32 PV power of ``3.572e-21`` kW is "0 kW" and a battery at 48.7565 V is "48.76 V":
each unit gets the resolution the devices actually measure with (appendix increments),
trailing zeros are dropped, and ``-0`` is ``0``. Used wherever a value is shown to a person
(``xcomlog read``/``write``/``latest``, the logger's status line).
"""

from __future__ import annotations

import math

#: Decimals shown per unit (the appendix's units, case-insensitive). Units not listed get
#: ``DEFAULT_DECIMALS``.
UNIT_DECIMALS: dict[str, int] = {
    "v": 2,
    "vdc": 2,
    "vac": 1,
    "mv": 0,
    "mv/°c/cell": 1,
    "a": 1,
    "adc": 1,
    "aac": 1,
    "w": 0,
    "va": 0,
    "kw": 2,
    "kva": 2,
    "kwh": 2,
    "mwh": 3,
    "ah": 1,
    "kah": 2,
    "%": 1,
    "% soc": 1,
    "% pnom": 1,
    "%cap": 1,
    "°c": 1,
    "hz": 2,
    "sec": 1,
    "seconds": 1,
    "min": 1,
    "minutes": 1,
    "h": 2,
    "hours": 2,
    "days": 2,
    "weeks": 2,
}
DEFAULT_DECIMALS = 3


def unit_decimals(unit: str | None) -> int:
    """How many decimals a value in ``unit`` deserves."""
    return UNIT_DECIMALS.get((unit or "").strip().lower(), DEFAULT_DECIMALS)


def format_number(value: float | int, unit: str | None = None) -> str:
    """``value`` rounded to its unit's resolution, without trailing zeros or an exponent."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    text = f"{number:.{unit_decimals(unit)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_quantity(value: float | int, unit: str | None = None) -> str:
    """``format_number`` followed by the unit: ``"48.76 V"``, ``"0 kW"``, ``"3"``."""
    number = format_number(value, unit)
    return f"{number} {unit}" if unit else number


__all__ = ["DEFAULT_DECIMALS", "UNIT_DECIMALS", "format_number", "format_quantity", "unit_decimals"]
