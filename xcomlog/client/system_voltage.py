"""The installation's system voltage (12, 24 or 48 V): what battery-voltage limits apply.

The appendix gives the battery-voltage parameters' limits for 48 V systems; on 24 V and
12 V systems they are halved and quartered (``Catalog.for_system_voltage``). Before a
write of such a parameter the client needs the installation's voltage, found here, in
this order, from the first device that answers:

1. "Voltage of the system" parameters, when set to 12V, 24V or 48V (not "Automatic"):
   VarioTrack {10001}, BSP {6057};
2. the devices' "ID batt voltage" identification infos: Xtender {3127}, VarioTrack
   {11048}, VarioString {15075}, BSP {7035};
3. the measured battery voltage (Xtender {3000}, BSP {7000}), rounded to its system:
   below 18 V a 12 V battery, below 36 V a 24 V one, else 48 V.

``detect_system_voltage`` is the one place that decides; it is a client operation
(``XcomClient.detect_system_voltage()``), and ``system_voltage_from`` decides from values
read some other way (the logger's MQTT writes read them with their own requests).
"""

from __future__ import annotations

import logging
from typing import Any

from ..engine import Operation
from ..exceptions import DeviceError, ValidationError, ValueFormatError
from ..protocol import ADDRESS_BSP, ObjectType, Property, vs, vt, xt

log = logging.getLogger("xcomlog.client")

#: The system voltages the catalog knows (the appendix's values are for 48 V).
SYSTEM_VOLTAGES = (12, 24, 48)
#: "Voltage of the system" parameters: (number, address); their options say 12V/24V/48V.
SYSTEM_VOLTAGE_PARAMETERS: tuple[tuple[int, int], ...] = ((10001, vt(1)), (6057, ADDRESS_BSP))
#: "ID batt voltage" identification infos: (number, address).
ID_BATTERY_VOLTAGE_INFOS: tuple[tuple[int, int], ...] = (
    (3127, xt(1)),
    (11048, vt(1)),
    (15075, vs(1)),
    (7035, ADDRESS_BSP),
)
#: Measured battery voltages: (number, address).
BATTERY_VOLTAGE_INFOS: tuple[tuple[int, int], ...] = ((3000, xt(1)), (7000, ADDRESS_BSP))
#: Upper bounds of the measured battery voltage of a 12 V and a 24 V system.
_MEASURED_BOUNDS = ((18.0, 12), (36.0, 24))

#: Where each source is read from, in the order ``detect_system_voltage`` tries them.
SOURCES: tuple[tuple[str, int, int], ...] = (
    *(("parameter", n, a) for n, a in SYSTEM_VOLTAGE_PARAMETERS),
    *(("id", n, a) for n, a in ID_BATTERY_VOLTAGE_INFOS),
    *(("measured", n, a) for n, a in BATTERY_VOLTAGE_INFOS),
)
_OPTION_VOLTS = {2: 12, 4: 24, 8: 48}  # the options of {10001} and {6057}; 1 is Automatic


def check_system_voltage(value: object, where: str = "system voltage") -> int:
    """``value`` as 12, 24 or 48; ValidationError naming ``where`` and the choices otherwise."""
    try:
        volts = int(str(value).strip().upper().removesuffix("V").strip())
    except ValueError:
        volts = -1
    if volts not in SYSTEM_VOLTAGES:
        raise ValidationError(f"{where} must be 12, 24 or 48 (V), got {value!r}")
    return volts


def system_voltage_from(kind: str, number: int, value: Any) -> int | None:
    """The system voltage one source's value says, None if it says nothing.

    ``kind`` is ``"parameter"`` (a "Voltage of the system" option code), ``"id"`` (an
    "ID batt voltage" in volts) or ``"measured"`` (a battery voltage in volts).
    """
    try:
        number_value = float(value)
    except (TypeError, ValueError):
        return None
    if number_value != number_value:  # NaN
        return None
    if kind == "parameter":
        return _OPTION_VOLTS.get(int(number_value))
    if kind == "id":
        volts = int(round(number_value))
        return volts if volts in SYSTEM_VOLTAGES else None
    if kind == "measured":
        if number_value <= 0:
            return None
        for bound, volts in _MEASURED_BOUNDS:
            if number_value < bound:
                return volts
        return 48
    raise ValueError(f"unknown system-voltage source {kind!r}")


class SystemVoltageOperations:
    """The client's system-voltage detection, a generator over the engine's I/O commands."""

    def _detect_system_voltage(self) -> Operation[int | None]:
        """The installation's system voltage (12, 24, 48), None if no device tells it.

        Asks the sources of ``SOURCES`` in order and stops at the first that tells; a
        device that is absent or refuses costs one request and is passed over.
        """
        for kind, number, address in SOURCES:
            object_type = ObjectType.PARAMETER if kind == "parameter" else ObjectType.USER_INFO
            prop = Property.VALUE_QSP if kind == "parameter" else Property.VALUE
            candidates = [d for d in self.catalog.find(number) if d.format is not None]  # type: ignore[attr-defined]
            if not candidates:
                continue
            try:  # an absent or refusing device answers an error; a dead link raises on
                frame = yield from self._read_property(  # type: ignore[attr-defined]
                    object_type, number, prop, address
                )
                value = self.catalog.decode(candidates[0], frame.data)  # type: ignore[attr-defined]
            except (DeviceError, ValueFormatError) as exc:
                log.debug(
                    "system voltage: %s %d at %d says nothing (%s)", kind, number, address, exc
                )
                continue
            volts = system_voltage_from(kind, number, value)
            if volts is not None:
                log.info("system voltage %d V (from %s %d at %d)", volts, kind, number, address)
                break
        else:
            volts = None
        # Remembered for the client's next writes, unless system_voltage= was given.
        if getattr(self, "_system_voltage", None) is None:
            self._system_voltage = volts
        self._system_voltage_asked = True
        return volts


__all__ = [
    "SOURCES",
    "SYSTEM_VOLTAGES",
    "SystemVoltageOperations",
    "check_system_voltage",
    "system_voltage_from",
]
