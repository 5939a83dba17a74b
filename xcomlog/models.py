"""Device types: what the appendix's identification infos say a device is, and back.

The appendix (V1.6.42) identifies devices by user infos:

- Xtender: {3124} ID type (XTH family = 1, XTM = 256, XTS = 512), {3125} ID Power (VA),
  {3127} ID batt voltage (Vdc): together "XTH 8000-48";
- VarioTrack: {11047} ID type (VT-65 and VT-80 = 0x2601), {11015} Model of VarioTrack
  (0:VT-80, 1:VT-65, 2:VT-40, 3:VT-HV), {11048} ID batt voltage;
- VarioString: {15074} ID type (VS-120 = 12801 = 0x3201, VS-70 = 13057 = 0x3301), {15075};
- BSP: {7034} ID type (BSP 500 and BSP 1200 = 10241 = 0x2801), {7035} ID batt voltage;
- Xcom-CAN BMS: no ID type; {7067} Manufacturer name (0:OTHERS, 1:BYD, 2:PYLON, 3:WECO);
- RCC / Xcom-232i / Xcom-LAN (address 501): the appendix defines no identification info,
  so the gateway is known by its address only.

The appendix writes the VarioTrack code as "9079d (0x2601)": the hexadecimal is 9729, and
every other family's code has the form 0xNN01, so 9729 is taken as the code and 9079 (the
decimal as printed) is recognized too.

``describe_device`` turns the codes a scan read into a :class:`DeviceType`; ``model_codes``
gives the codes of a model name (what the simulator serves). Software versions and FIDs
are decoded by the client (specification sections 4.4.3 and 4.4.4), not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .catalog import SYSTEM_VOLTAGES
from .exceptions import ValidationError
from .protocol import Family

#: {3124} ID type -> Xtender series.
XTENDER_SERIES = {1: "XTH", 256: "XTM", 512: "XTS"}
VARIOTRACK_ID_TYPE = 0x2601
#: The appendix's printed decimal for the VarioTrack (a typo of 0x2601 = 9729), also recognized.
VARIOTRACK_ID_TYPE_AS_PRINTED = 9079
#: {11015} Model of VarioTrack.
VARIOTRACK_MODELS = {0: "VT-80", 1: "VT-65", 2: "VT-40", 3: "VT-HV"}
#: {15074} ID type -> VarioString model.
VARIOSTRING_MODELS = {0x3201: "VS-120", 0x3301: "VS-70"}
BSP_ID_TYPE = 0x2801
#: {7067} Manufacturer name of the battery behind an Xcom-CAN BMS.
BMS_MANUFACTURERS = {0: "OTHERS", 1: "BYD", 2: "PYLON", 3: "WECO"}

#: The identification infos of each family, in the order a scan reads them.
IDENTIFICATION_INFOS: dict[Family, tuple[int, ...]] = {
    Family.XTENDER: (3124, 3125, 3127),
    Family.VARIOTRACK: (11047, 11015, 11048),
    Family.VARIOSTRING: (15074, 15075),
    Family.BSP: (7034, 7035),
    Family.XCOM_CAN_BMS: (7067,),
    Family.RCC: (),
}
#: The "ID batt voltage" identification info of each family (12, 24 or 48 V).
BATTERY_VOLTAGE_INFOS = {
    Family.XTENDER: 3127,
    Family.VARIOTRACK: 11048,
    Family.VARIOSTRING: 15075,
    Family.BSP: 7035,
}
_XTENDER_MODEL = re.compile(r"^(XTH|XTM|XTS)[ -]?(\d+)-(12|24|48)$")


@dataclass(frozen=True)
class DeviceType:
    """What a device is, as far as its identification infos tell.

    ``description`` is for people ("XTH 8000-48", "VarioString VS-70", "BSP"); ``codes``
    keeps the raw values read ({3124: 1.0, 3125: 8000.0, ...}) for whoever knows better.
    """

    family: Family
    description: str
    series: str = ""
    power_va: int | None = None
    battery_voltage: int | None = None
    codes: Mapping[int, float] = field(default_factory=dict, compare=False)
    known: bool = True  # False when a code is not one the appendix lists

    def __str__(self) -> str:
        return self.description


def _int(codes: Mapping[int, float], number: int) -> int | None:
    value = codes.get(number)
    if value is None:
        return None
    try:
        number_value = float(value)
    except (TypeError, ValueError):
        return None
    if number_value != number_value:  # NaN
        return None
    return int(round(number_value))


def describe_device(family: Family | str, codes: Mapping[int, float]) -> DeviceType:
    """The device type of a ``family`` device from its identification codes.

    ``describe_device("xt", {3124: 1, 3125: 8000, 3127: 48}).description`` is
    ``"XTH 8000-48"``; ``describe_device("vs", {15074: 13057})`` is ``"VarioString VS-70"``.
    Missing codes give what can still be said; an unknown code says so with its value.
    """
    family = Family(family)
    codes = dict(codes)
    volts = _int(codes, BATTERY_VOLTAGE_INFOS.get(family, -1))
    volts = volts if volts in SYSTEM_VOLTAGES else None
    if family is Family.XTENDER:
        id_type, power = _int(codes, 3124), _int(codes, 3125)
        series = XTENDER_SERIES.get(id_type) if id_type is not None else None
        known = id_type is None or series is not None
        name = series or ("Xtender" if id_type is None else f"Xtender (ID type {id_type})")
        if power:
            name += f" {power}"
        if volts:
            name += f"-{volts}" if power else f" {volts} V"
        return DeviceType(family, name, series or "", power, volts, codes, known)
    if family is Family.VARIOTRACK:
        id_type, model = _int(codes, 11047), _int(codes, 11015)
        known = id_type in (None, VARIOTRACK_ID_TYPE, VARIOTRACK_ID_TYPE_AS_PRINTED)
        series = VARIOTRACK_MODELS.get(model, "") if model is not None else ""
        name = f"VarioTrack {series}".strip()
        if not known:
            name += f" (ID type {id_type})"
        return DeviceType(family, name, series, None, volts, codes, known)
    if family is Family.VARIOSTRING:
        id_type = _int(codes, 15074)
        series = VARIOSTRING_MODELS.get(id_type, "") if id_type is not None else ""
        known = id_type is None or bool(series)
        name = f"VarioString {series}".strip() if known else f"VarioString (ID type {id_type})"
        return DeviceType(family, name, series, None, volts, codes, known)
    if family is Family.BSP:
        id_type = _int(codes, 7034)
        known = id_type in (None, BSP_ID_TYPE)
        name = "BSP" if known else f"BSP (ID type {id_type})"
        return DeviceType(family, name, "BSP", None, volts, codes, known)
    if family is Family.XCOM_CAN_BMS:
        maker = _int(codes, 7067)
        label = BMS_MANUFACTURERS.get(maker) if maker is not None else None
        name = "Xcom-CAN BMS" + (f" ({label})" if label else "")
        return DeviceType(family, name, "Xcom-CAN BMS", None, None, codes, True)
    return DeviceType(family, "RCC / Xcom-232i", "", None, None, codes, True)


def model_codes(model: str, system_voltage: int | None = None) -> tuple[Family, dict[int, float]]:
    """The family and identification codes a device of ``model`` answers with.

    Models: ``"XTH 8000-48"``, ``"XTM 4000-48"``, ``"XTS 1200-24"``, ``"VT-80"`` (also
    VT-65, VT-40, VT-HV), ``"VS-120"``, ``"VS-70"``, ``"BSP 500"``, ``"BSP 1200"``,
    ``"Xcom-CAN BMS"`` (optionally ``"Xcom-CAN BMS PYLON"``), ``"Xcom-232i"``,
    ``"Xcom-LAN"``, ``"RCC-02"``, ``"RCC-03"``. An Xtender names its battery voltage;
    the others take ``system_voltage``. ValidationError names the accepted models.
    """
    text = " ".join(str(model).split())
    upper = text.upper()
    m = _XTENDER_MODEL.match(upper)
    if m:
        series, power, volts = m.group(1), int(m.group(2)), int(m.group(3))
        if system_voltage is not None and volts != system_voltage:
            raise ValidationError(
                f"model {text!r} is a {volts} V Xtender, the installation is {system_voltage} V"
            )
        code = next(k for k, v in XTENDER_SERIES.items() if v == series)
        return Family.XTENDER, {3124: float(code), 3125: float(power), 3127: float(volts)}
    volts = float(system_voltage or 48)
    compact = upper.replace(" ", "").replace("VARIOTRACK", "VT-").replace("VT--", "VT-")
    for key, name in VARIOTRACK_MODELS.items():
        if compact in (name, name.replace("-", "")):
            return Family.VARIOTRACK, {
                11047: float(VARIOTRACK_ID_TYPE),
                11015: float(key),
                11048: volts,
            }
    compact = upper.replace(" ", "").replace("VARIOSTRING", "")
    for code, name in VARIOSTRING_MODELS.items():
        if compact in (name, name.replace("-", "")):
            return Family.VARIOSTRING, {15074: float(code), 15075: volts}
    if upper.replace(" ", "") in ("BSP", "BSP500", "BSP1200", "BSP-500", "BSP-1200"):
        return Family.BSP, {7034: float(BSP_ID_TYPE), 7035: volts}
    if upper.startswith("XCOM-CAN BMS") or upper in ("BMS", "XCOM-CAN"):
        maker = (
            upper[len("XCOM-CAN BMS") :].strip(" ()") if upper.startswith("XCOM-CAN BMS") else ""
        )
        codes = {}
        if maker:
            found = [k for k, v in BMS_MANUFACTURERS.items() if v == maker]
            if not found:
                raise ValidationError(
                    f"model {text!r}: battery maker must be one of {', '.join(BMS_MANUFACTURERS.values())}"
                )
            codes[7067] = float(found[0])
        return Family.XCOM_CAN_BMS, codes
    if upper in ("XCOM-232I", "XCOM-LAN", "RCC-02", "RCC-03", "XCOM-GSM"):
        return Family.RCC, {}
    raise ValidationError(
        f"unknown device model {text!r}: use e.g. XTH 8000-48, XTM 4000-48, XTS 1200-24, "
        "VT-80, VT-65, VT-40, VT-HV, VS-120, VS-70, BSP 500, BSP 1200, Xcom-CAN BMS, "
        "Xcom-232i, Xcom-LAN, RCC-02"
    )


__all__ = [
    "BATTERY_VOLTAGE_INFOS",
    "BMS_MANUFACTURERS",
    "DeviceType",
    "IDENTIFICATION_INFOS",
    "VARIOSTRING_MODELS",
    "VARIOTRACK_MODELS",
    "XTENDER_SERIES",
    "describe_device",
    "model_codes",
]
