"""What a found device is, and the installation's system voltage, read through the engine.

The client's scan and the logger's discovery ask the same questions, so they are
answered here once, as generators over a ``Session`` (``xcomlog.engine``): run them with
``run_sync`` / ``run_async`` or ``yield from`` them inside a client operation.

- ``identify``: a device's identification infos (appendix V1.6.42): software version
  (ID SOFT msb/lsb, section 4.4.3), factory id (ID FID msb/lsb, section 4.4.4) and the
  model codes ``xcomlog.models.describe_device`` turns into "XTH 8000-48";
- ``read_system_voltage``: the battery voltage the parameter limits are for (12, 24 or
  48 V): the "Voltage of the system" parameters (BSP {6057}, VarioTrack {10001}) when set,
  else the battery voltage the devices identify themselves with ({3127}, {11048}...).

Every read is one try, quiet (a device without an info is no dead link), and a device
that stops answering is not asked further.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from . import codec
from .catalog import SYSTEM_VOLTAGES
from .engine import ERROR, OK, Operation, Request, Session
from .exceptions import XcomError
from .models import IDENTIFICATION_INFOS, describe_device
from .protocol import ErrorCode, Family, ObjectType, Property, Service

#: Identification infos read by name from the catalog (every family names them alike).
_NAMED_INFOS = {
    "soft_msb": "id soft msb",
    "soft_lsb": "id soft lsb",
    "id_type": "id type",
    "fid_msb": "id fid msb",
    "fid_lsb": "id fid lsb",
}
#: The parameter that says an installation's voltage (BSP {6057}, VarioTrack {10001}).
SYSTEM_VOLTAGE_PARAMETER = "Voltage of the system"


class DeviceIdentity(NamedTuple):
    """What a device said about itself (None where it did not say)."""

    address: int
    family: Family
    model: str  # "XTH 8000-48", "VarioString VS-70", "BSP"
    firmware: str | None  # "1.6.30"
    serial: str | None  # the factory id (FID), in decimal
    id_type: int | None
    battery_voltage: int | None  # 12, 24 or 48 from its "ID batt voltage" info


def software_version(msb: float, lsb: float) -> str:
    """Software version from the ID SOFT msb/lsb infos (section 4.4.3): X.Y.Z."""
    high = int(msb) & 0xFFFF
    low = int(lsb) & 0xFFFF
    return f"{high >> 8}.{low >> 8}.{low & 0xFF}"


def factory_id(msb: float, lsb: float) -> int:
    """The unique factory id from the ID FID msb/lsb infos (section 4.4.4)."""
    return ((int(msb) & 0xFFFF) << 16) | (int(lsb) & 0xFFFF)


def identification_points(catalog: Any, family: Family) -> dict[str, Any]:
    """The catalog's identification infos of ``family``: by key (``soft_msb``, ``fid_lsb``,
    ``id_type``...) and the model codes of ``IDENTIFICATION_INFOS`` by number."""
    found: dict[str, Any] = {}
    for dp in catalog.datapoints(family=family, kind="info"):
        name = dp.name.strip().lower()
        for key, text in _NAMED_INFOS.items():
            if name == text and key not in found:
                found[key] = dp
    for number in IDENTIFICATION_INFOS.get(family, ()):
        for dp in catalog.find(number):
            if dp.family is family and dp.kind == "info":
                found.setdefault(str(number), dp)
    return found


def _read(session: Session, request: Request) -> Operation[tuple[int, bytes, int]]:
    """(kind, data, error code) of one quiet, single-try read."""
    outcome = yield from session.run(request, retries=0, quiet=True)
    if outcome.kind == OK:
        return OK, codec.decode_frame(outcome.frame).data, 0
    return outcome.kind, b"", outcome.code


def identify(
    session: Session, catalog: Any, address: int, family: Family
) -> Operation[DeviceIdentity | None]:
    """Read a device's identification infos; None when the gateway says it is not there."""
    values: dict[str, Any] = {}
    for key, dp in identification_points(catalog, family).items():
        request = Request(
            Service.READ,
            ObjectType.USER_INFO,
            dp.number,
            Property.VALUE,
            src=session.src,
            dst=address,
        )
        kind, data, code = yield from _read(session, request)
        if kind == ERROR and code == ErrorCode.DEVICE_NOT_FOUND:
            return None
        if kind != OK:
            if kind == ERROR:
                continue  # the device lacks this info
            break  # it stopped answering: what it said so far is what we know
        try:
            values[key] = catalog.decode(dp, data)
        except XcomError:
            continue
    return identity_from_values(address, family, values)


def identity_from_values(address: int, family: Family, values: dict[str, Any]) -> DeviceIdentity:
    """A DeviceIdentity from decoded identification infos (keys of ``identification_points``)."""
    firmware = None
    if "soft_msb" in values and "soft_lsb" in values:
        firmware = software_version(values["soft_msb"], values["soft_lsb"])
    serial = None
    if "fid_msb" in values and "fid_lsb" in values:
        serial = str(factory_id(values["fid_msb"], values["fid_lsb"]))
    codes = {int(k): float(v) for k, v in values.items() if k.isdigit()}
    if "id_type" in values:
        id_number = IDENTIFICATION_INFOS.get(family, ())
        if id_number:  # the "ID type" info is the first model code
            codes.setdefault(id_number[0], float(values["id_type"]))
    described = describe_device(family, codes)
    id_type = int(values["id_type"]) if "id_type" in values else None
    return DeviceIdentity(
        address, family, described.description, firmware, serial, id_type, described.battery_voltage
    )


def system_voltage_from(
    settings: Iterable[str | None], battery_voltages: Iterable[int | None]
) -> int | None:
    """The system voltage from "Voltage of the system" labels ("24V", "Automatic") and the
    devices' battery voltages: the first definite setting wins, else the first voltage."""
    for label in settings:
        text = (label or "").strip().upper().rstrip("V")
        if text.isdigit() and int(text) in SYSTEM_VOLTAGES:
            return int(text)
    for volts in battery_voltages:
        if volts in SYSTEM_VOLTAGES:
            return volts
    return None


def read_system_voltage(
    session: Session, catalog: Any, identities: Iterable[DeviceIdentity]
) -> Operation[int | None]:
    """The installation's system voltage (12, 24, 48) or None when nothing says it.

    Reads the "Voltage of the system" parameter of each BSP and VarioTrack found (an
    "Automatic" setting defers to the battery voltages the devices identified with).
    """
    identities = list(identities)
    labels: list[str | None] = []
    for device in identities:
        for dp in catalog.datapoints(family=device.family, kind="parameter"):
            if dp.name != SYSTEM_VOLTAGE_PARAMETER or dp.format is None:
                continue
            request = Request(
                Service.READ,
                ObjectType.PARAMETER,
                dp.number,
                Property.VALUE_QSP,
                src=session.src,
                dst=device.address,
            )
            kind, data, _ = yield from _read(session, request)
            if kind == OK:
                try:
                    labels.append(catalog.label(dp, catalog.decode(dp, data)))
                except XcomError:
                    pass
    return system_voltage_from(labels, (d.battery_voltage for d in identities))


__all__ = [
    "SYSTEM_VOLTAGE_PARAMETER",
    "DeviceIdentity",
    "factory_id",
    "identification_points",
    "identify",
    "identity_from_values",
    "read_system_voltage",
    "software_version",
    "system_voltage_from",
]
