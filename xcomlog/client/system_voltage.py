"""The client's system-voltage detection: what battery-voltage limits its writes check.

The appendix gives the battery-voltage parameters' limits for 48 V systems; on 24 V and
12 V systems they are halved and quartered (``Catalog.for_system_voltage``). Before a
write of such a parameter the client needs the installation's voltage: the sources, their
order and what each value says live once in ``xcomlog.identification``
(``SYSTEM_VOLTAGE_SOURCES``, ``system_voltage_from``), shared with the logger; here the
client runs that detection (``XcomClient.detect_system_voltage()``) and remembers it.
"""

from __future__ import annotations

from ..catalog import SYSTEM_VOLTAGES
from ..engine import Operation
from ..identification import (
    SYSTEM_VOLTAGE_SOURCES as SOURCES,
)
from ..identification import (
    check_system_voltage,
    read_system_voltage,
    system_voltage_from,
)


class SystemVoltageOperations:
    """The client's system-voltage detection, a generator over the engine's I/O commands."""

    def _detect_system_voltage(self) -> Operation[int | None]:
        """The installation's system voltage (12, 24, 48), None if no device tells it.

        Asks the first device of each family, source by source, and stops at the first
        that tells; a device that is absent or refuses costs one request and is passed over.
        """
        volts = yield from read_system_voltage(
            self._session,  # type: ignore[attr-defined]
            self.catalog,  # type: ignore[attr-defined]
            patient=True,
        )
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
