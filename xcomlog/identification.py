"""What a found device is, and the installation's system voltage, read through the engine.

The client's scan and the logger's discovery ask the same questions, so they are
answered here once, as generators over a ``Session`` (``xcomlog.engine``): run them with
``run_sync`` / ``run_async`` or ``yield from`` them inside a client operation.

- ``identify``: a device's identification infos (appendix V1.6.42): software version
  (ID SOFT msb/lsb, section 4.4.3), factory id (ID FID msb/lsb, section 4.4.4) and the
  model codes ``xcomlog.models.describe_device`` turns into "XTH 8000-48";
- ``read_system_voltage``: the battery voltage the parameter limits are for (12, 24 or
  48 V), from ``SYSTEM_VOLTAGE_SOURCES`` in order, the first that tells: the "Voltage of
  the system" parameters (VarioTrack {10001}, BSP {6057}) when set, else the "ID batt
  voltage" the devices identify themselves with ({3127}, {11048}, {15075}, {7035}), else
  the measured battery voltage ({3000}, {7000}); ``system_voltage_from`` is the one
  decision of what one source's value says.

The client (``scan``, ``detect_system_voltage`` before a write) reads ``patient``ly: the
session's retries, a timeout raises. The logger reads each info once, quietly (a device
without an info is no dead link), and a device that stops answering is not asked further.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from . import codec
from .catalog import SYSTEM_VOLTAGES, load_catalog
from .engine import ERROR, OK, Operation, Request, Session
from .exceptions import DeviceError, ValidationError, XcomError
from .models import BATTERY_VOLTAGE_INFOS, IDENTIFICATION_INFOS, DeviceType, describe_device
from .protocol import FAMILY_ADDRESSES, ErrorCode, Family, ObjectType, Property, Service

log = logging.getLogger("xcomlog.identification")

#: Identification infos read by name from the catalog (every family names them alike).
_NAMED_INFOS = {
    "soft_msb": "id soft msb",
    "soft_lsb": "id soft lsb",
    "id_type": "id type",
    "fid_msb": "id fid msb",
    "fid_lsb": "id fid lsb",
}

#: Where the installation's system voltage is read, in the order tried (the first that
#: tells wins): (kind, number, family). "Voltage of the system" parameters when set to
#: 12V/24V/48V (not "Automatic"); the devices' "ID batt voltage" infos; last the measured
#: battery voltage (Xtender {3000}, BSP {7000}) rounded to its system.
SYSTEM_VOLTAGE_SOURCES: tuple[tuple[str, int, Family], ...] = (
    ("parameter", 10001, Family.VARIOTRACK),
    ("parameter", 6057, Family.BSP),
    *(("id", number, family) for family, number in BATTERY_VOLTAGE_INFOS.items()),
    ("measured", 3000, Family.XTENDER),
    ("measured", 7000, Family.BSP),
)
#: Upper bounds of the measured battery voltage of a 12 V and a 24 V system.
_MEASURED_BOUNDS = ((18.0, 12), (36.0, 24))


class DeviceIdentity(NamedTuple):
    """What a device said about itself (None where it did not say)."""

    address: int
    family: Family
    model: str  # "XTH 8000-48", "VarioString VS-70", "BSP"
    firmware: str | None  # "1.6.30"
    serial: str | None  # the factory id (FID), in decimal
    id_type: int | None
    battery_voltage: int | None  # 12, 24 or 48 from its "ID batt voltage" info
    device_type: DeviceType | None = None  # the model with its raw identification codes


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
    named = {dp.number for dp in found.values()}
    for number in IDENTIFICATION_INFOS.get(family, ()):
        if number in named:
            continue  # the "ID type" read by name
        for dp in catalog.find(number):
            if dp.family is family and dp.kind == "info":
                found.setdefault(str(number), dp)
    return found


def _read(
    session: Session, request: Request, patient: bool = False
) -> Operation[tuple[int, bytes, int]]:
    """(kind, data, error code) of one read: a quiet single try, or with ``patient`` the
    session's retries, a timeout or dead link raising (the client's way)."""
    if patient:
        try:
            frame = yield from session.exchange(request)
        except DeviceError as exc:
            return ERROR, b"", exc.code
        return OK, frame.data, 0
    outcome = yield from session.run(request, retries=0, quiet=True)
    if outcome.kind == OK:
        return OK, codec.decode_frame(outcome.frame).data, 0
    return outcome.kind, b"", outcome.code


def identify(
    session: Session, catalog: Any, address: int, family: Family, *, patient: bool = False
) -> Operation[DeviceIdentity | None]:
    """Read a device's identification infos; None when the gateway says it is not there.

    ``patient`` (the client's scan): the session's retries, and a timeout raises."""
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
        kind, data, code = yield from _read(session, request, patient)
        if kind == ERROR and code == ErrorCode.DEVICE_NOT_FOUND:
            return None
        if kind != OK:
            if kind == ERROR:
                continue  # the device lacks this info
            break  # it stopped answering: what it said so far is what we know
        try:
            values[key] = catalog.decode(dp, data)
            values.setdefault(str(dp.number), values[key])  # every code read, by number
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
        address,
        family,
        described.description,
        firmware,
        serial,
        id_type,
        described.battery_voltage,
        described,
    )


def check_system_voltage(value: object, where: str = "system voltage") -> int:
    """``value`` as 12, 24 or 48; ValidationError naming ``where`` and the choices otherwise."""
    volts = _volts_in(value)
    if volts is None:
        raise ValidationError(f"{where} must be 12, 24 or 48 (V), got {value!r}")
    return volts


def _volts_in(text: object) -> int | None:
    """12, 24 or 48 from "24", "24V", 24 (a "Voltage of the system" label or a user's
    setting), None for anything else ("Automatic")."""
    digits = str(text if text is not None else "").strip().upper().removesuffix("V").strip()
    if not digits.isdigit() or int(digits) not in SYSTEM_VOLTAGES:
        return None
    return int(digits)


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, None for anything else (text, None, NaN)."""
    try:
        return float(value) if math.isfinite(float(value)) else None
    except (TypeError, ValueError):
        return None


def system_voltage_from(kind: str, number: int, value: Any) -> int | None:
    """The system voltage one source's value says, None if it says nothing.

    ``kind`` is ``"parameter"`` (a "Voltage of the system" option code, or its label such
    as "24V": the catalog's options say which code is which), ``"id"`` (an "ID batt
    voltage" in volts) or ``"measured"`` (a battery voltage in volts).
    """
    if kind == "parameter" and isinstance(value, str):
        return _volts_in(value)
    if kind == "id":  # what the device's identification says (xcomlog.models)
        family = next((f for f, n in BATTERY_VOLTAGE_INFOS.items() if n == number), None)
        info = BATTERY_VOLTAGE_INFOS[family or Family.XTENDER]
        return describe_device(family or Family.XTENDER, {info: value}).battery_voltage
    number_value = _finite(value)
    if number_value is None:
        return None
    if kind == "parameter":
        for dp in load_catalog().find(number):
            if dp.options and int(number_value) in dp.options:
                return _volts_in(dp.options[int(number_value)])
        return None
    if kind == "measured":
        if number_value <= 0:
            return None
        for bound, volts in _MEASURED_BOUNDS:
            if number_value < bound:
                return volts
        return SYSTEM_VOLTAGES[-1]
    raise ValueError(f"unknown system-voltage source {kind!r}")


def system_voltage_of(
    settings: Iterable[Any], battery_voltages: Iterable[int | None]
) -> int | None:
    """The system voltage from values read some other way: the first definite "Voltage of
    the system" setting (option code or label; "Automatic" defers), else the first of
    the devices' "ID batt voltage"s that is a system voltage."""
    said = [system_voltage_from("parameter", SYSTEM_VOLTAGE_SOURCES[0][1], s) for s in settings]
    said += [system_voltage_from("id", SYSTEM_VOLTAGE_SOURCES[2][1], v) for v in battery_voltages]
    return next((volts for volts in said if volts is not None), None)


def read_system_voltage(
    session: Session,
    catalog: Any,
    devices: Iterable[DeviceIdentity | tuple[int, Family]] | None = None,
    *,
    patient: bool = False,
) -> Operation[int | None]:
    """The installation's system voltage (12, 24, 48), None when no device tells it.

    Asks ``SYSTEM_VOLTAGE_SOURCES`` in order of ``devices`` (identities or (address,
    family); by default the first device of each family) and stops at the first that
    tells. An identity's "ID batt voltage" is taken as identified, not read again.
    """
    if devices is None:
        families = dict.fromkeys(family for _, _, family in SYSTEM_VOLTAGE_SOURCES)
        devices = [(FAMILY_ADDRESSES[family][1], family) for family in families]
    devices = list(devices)
    for kind, number, family in SYSTEM_VOLTAGE_SOURCES:
        points = [
            dp for dp in catalog.find(number) if dp.family is family and dp.format is not None
        ]
        if not points:
            continue
        for device in devices:
            address, device_family = device[0], device[1]
            if device_family is not family:
                continue
            if kind == "id" and isinstance(device, DeviceIdentity):
                value: Any = device.battery_voltage
            else:
                is_parameter = kind == "parameter"
                request = Request(
                    Service.READ,
                    ObjectType.PARAMETER if is_parameter else ObjectType.USER_INFO,
                    number,
                    Property.VALUE_QSP if is_parameter else Property.VALUE,
                    src=session.src,
                    dst=address,
                )
                answer, data, _ = yield from _read(session, request, patient)
                try:
                    value = catalog.decode(points[0], data) if answer == OK else None
                except XcomError:
                    value = None
            volts = system_voltage_from(kind, number, value)
            if volts is not None:
                log.info("system voltage %d V (from %s %d at %d)", volts, kind, number, address)
                return volts
            log.debug("system voltage: %s %d at %d says nothing", kind, number, address)
    return None


__all__ = [
    "SYSTEM_VOLTAGE_SOURCES",
    "DeviceIdentity",
    "check_system_voltage",
    "factory_id",
    "identification_points",
    "identify",
    "identity_from_values",
    "read_system_voltage",
    "software_version",
    "system_voltage_from",
    "system_voltage_of",
]
