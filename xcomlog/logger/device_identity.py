"""A site's devices identified once after its scan: model, firmware, serial, system voltage.

The logger asks what the client's scan and ``detect_system_voltage`` ask, with the same
code (``xcomlog.identification``), through the site's own engine, once per start when
MQTT is on: the ``devices`` table gets model, firmware and serial, MQTT discovery gets
them for Home Assistant, and parameter writes are validated at the installation's system
voltage (the identified "ID batt voltage"s are not read again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine import run_async
from ..identification import DeviceIdentity, identify, read_system_voltage

if TYPE_CHECKING:
    from .config import DeviceSpec
    from .loop import SiteLogger


async def identify_site(
    site: SiteLogger, transport, devices: tuple[DeviceSpec, ...]
) -> tuple[dict[int, DeviceIdentity], int | None]:
    """(identity by address, system voltage) of ``devices``; raises LinkError only.

    Nothing is read unless ``site.identify`` (the identification infos are not logged as
    values: every info the plain logger reads is in the values table)."""
    if not site.identify:
        return {}, None
    engine = site.engine
    sends = engine.stats.sends
    identities: dict[int, DeviceIdentity] = {}
    try:
        for device in devices:
            if site._stop is not None and site._stop.is_set():
                break
            found = await run_async(
                transport, identify(engine, site.catalog, device.address, device.family)
            )
            if found is not None:
                identities[device.address] = found
        volts = await run_async(
            transport, read_system_voltage(engine, site.catalog, identities.values())
        )
    finally:
        site.stats.requests += engine.stats.sends - sends
    return identities, volts


def device_columns(identity: DeviceIdentity | None) -> dict[str, str | None]:
    """The ``devices`` table's model, firmware and serial of one device."""
    if identity is None:
        return {"model": None, "firmware": None, "serial": None}
    return {"model": identity.model, "firmware": identity.firmware, "serial": identity.serial}


__all__ = ["device_columns", "identify_site"]
