"""The public API of ``xcom-proto`` 0.3.x on top of xcomlog: switch by changing one import.

    from xcomlog.compat import XcomP as param
    from xcomlog.compat import XcomC, XcomRS232, XcomLANUDP, XcomLANTCP

    xcom = XcomLANUDP("192.168.178.110")            # dstPort=4002, srcPort=4001
    soc = xcom.getValue(param.BATT_SOC)
    xcom.setValue(param.SMART_BOOST_LIMIT, 100)     # RAM (the unsaved value) by default
    with XcomLANTCP(port=4001) as xcom: ...         # the Moxa connects to us

The names and calling conventions are xcom-proto's; underneath, every request goes
through ``XcomClient`` (frame matching, timeouts, retries, GATEWAY_BUSY waits). What
differs, on purpose:

* Links open on first use (xcom-proto binds the UDP port when the object is built), so
  building several objects, as its README does, works.
* A write keeps xcom-proto's default target, for compatibility: without ``dstAddr``,
  ``setValue`` writes to ``dstAddr=100``, the multicast address of every Xtender (and
  for another family's parameter, that family's multicast). ``XcomClient.write_param``
  has no default target: it must be named there (issue 16). Pass ``dstAddr=101`` to
  write to one Xtender only.
* With the default ``dstAddr=100`` (all Xtenders), a datapoint of another family goes to
  that family (a BSP info to the BSP, a VarioTrack parameter to all VarioTracks), and a
  read at a multicast address goes to the family's first device: the specification does
  not allow reads at multicast addresses.
* User infos are read with their own property (value), whatever ``propertyID`` says.
* Values are checked against the catalog before a write; a device error is raised as
  ``XcomProtoError``, which is both a ``KeyError`` (as in xcom-proto, args
  ``("Error received", name)``) and xcomlog's ``DeviceError``; a timeout raises
  ``XcomTimeout``, a ``TimeoutError`` like xcom-proto's UDP ``socket.timeout``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from . import codec
from .exceptions import CatalogError, DeviceError, ValueFormatError
from .links import (
    DEFAULT_TCP_PORT,
    DEFAULT_UDP_PORT,
    DEFAULT_UDP_REPLY_PORT,
    SerialTransport,
    TcpServerTransport,
    UdpTransport,
)
from .options import DEFAULT_TIMEOUT_S
from .protocol import (
    ADDRESS_XT_MULTICAST,
    DEFAULT_BAUDRATE,
    FAMILY_ADDRESSES,
    AccessLevel,
    ErrorCode,
    Family,
    Format,
    ObjectType,
    Property,
    Service,
    family_of_address,
    is_multicast,
    is_phase,
)

log = logging.getLogger("xcomlog.compat")


def _u16(value: int) -> bytes:
    return int(value).to_bytes(2, "little")


# --- data types, as xcom-proto names them ------------------------------------------------------

TYPE_BOOL = "BOOL"
TYPE_SINT = "INTEGER"
TYPE_FLOAT = "FLOAT"
TYPE_SHORT_ENUM = "ENUM_SHORT"
TYPE_LONG_ENUM = "ENUM_LONG"
TYPE_STRING = "STRING"
TYPE_BYTES = "BYTES"

_TYPE_FORMATS: dict[str, Format] = {
    TYPE_BOOL: Format.BOOL,
    TYPE_SINT: Format.INT32,
    TYPE_FLOAT: Format.FLOAT,
    TYPE_SHORT_ENUM: Format.SHORT_ENUM,
    TYPE_LONG_ENUM: Format.LONG_ENUM,
    TYPE_STRING: Format.STRING,
    TYPE_BYTES: Format.BYTE_STREAM,
}


class UnknownDatapointException(Exception):
    """No datapoint of ``XcomP`` has this id."""


class XcomProtoError(DeviceError, KeyError):
    """A device error, raised the way xcom-proto does (a KeyError) and as a DeviceError."""

    def __init__(self, code: int, message: str = "") -> None:
        DeviceError.__init__(self, code, message)
        self._text = Exception.__str__(self)
        self.args = ("Error received", self.name)

    def __str__(self) -> str:
        return self._text


class _EqualById:
    """xcom-proto's equality: by ``id`` against its own kind, else against the bare number."""

    id: int

    def __eq__(self, other: object) -> bool:
        if isinstance(other, type(self)):
            return other.id == self.id
        return other == self.id

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(eq=False)
class ValueTuple(_EqualById):
    """An enum value with its name; equal to its number."""

    id: int
    value: str

    def __str__(self) -> str:
        return self.value


@dataclass(eq=False)
class Datapoint(_EqualById):
    """A named datapoint: number (``id``), ``name``, xcom-proto ``type`` string, ``unit``."""

    id: int
    name: str
    type: str
    unit: str = ""

    @property
    def format(self) -> Format:
        try:
            return _TYPE_FORMATS[self.type]
        except KeyError:
            raise TypeError("Unknown datatype", self) from None

    def unpackValue(self, value: bytes) -> Any:  # noqa: N802 - xcom-proto's name
        """Python value of property bytes (enum and bool infos sent as FLOAT are accepted)."""
        fmt = self.format
        data = bytes(value)
        if fmt in (Format.SHORT_ENUM, Format.BOOL) and len(data) == 4:
            number = codec.unpack_value(Format.FLOAT, data)
            if float(number).is_integer():
                return bool(number) if fmt is Format.BOOL else int(number)
            return number
        if fmt is Format.SHORT_ENUM and len(data) == 2:
            return int.from_bytes(data, "little", signed=True)  # xcom-proto reads it signed
        return codec.unpack_value(fmt, data)

    def packValue(self, value: Any) -> bytes:  # noqa: N802
        """Property bytes of ``value`` in this datapoint's type."""
        fmt = self.format
        if fmt is Format.STRING:
            value = str(value)
        if fmt is Format.BOOL:
            value = bool(value)
        return codec.pack_value(fmt, value)

    @staticmethod
    def unpackValueByID(id: int, value: bytes) -> Any:  # noqa: N802, A002
        return Dataset.getParamByID(id).unpackValue(value)


# --- the named datapoints of xcom-proto, and their numbers from the appendix -------------------

_NAMED: tuple[tuple[str, int, str], ...] = (
    # Xtender parameters
    ("MAX_CURR_AC_SOURCE", 1107, TYPE_FLOAT),
    ("SMART_BOOST_ALLOWED", 1126, TYPE_BOOL),
    ("BATTERY_CHARGE_CURR", 1138, TYPE_FLOAT),
    ("MAX_GRID_FEEDING_CURR", 1523, TYPE_FLOAT),
    ("SMART_BOOST_LIMIT", 1607, TYPE_FLOAT),
    ("PARAMS_SAVED_IN_FLASH", 1550, TYPE_BOOL),
    # RCC / Xcom-232i parameter
    ("USER_LEVEL", 5012, TYPE_SHORT_ENUM),
    # Xtender infos
    ("AC_ENERGY_IN_CURR_DAY", 3081, TYPE_FLOAT),
    ("AC_ENERGY_IN_PREV_DAY", 3080, TYPE_FLOAT),
    ("AC_ENERGY_OUT_CURR_DAY", 3083, TYPE_FLOAT),
    ("AC_ENERGY_OUT_PREV_DAY", 3082, TYPE_FLOAT),
    ("AC_FREQ_IN", 3084, TYPE_FLOAT),
    ("AC_FREQ_OUT", 3085, TYPE_FLOAT),
    ("AC_POWER_IN", 3137, TYPE_FLOAT),
    ("AC_POWER_OUT", 3136, TYPE_FLOAT),
    ("AC_VOLTAGE_IN", 3011, TYPE_FLOAT),
    ("AC_VOLTAGE_OUT", 3021, TYPE_FLOAT),
    ("AC_CURRENT_IN", 3012, TYPE_FLOAT),
    ("AC_CURRENT_OUT", 3022, TYPE_FLOAT),
    ("BATT_CYCLE_PHASE_XT", 3010, TYPE_SHORT_ENUM),
    # Xcom-CAN BMS parameters
    ("SOC_LEVEL_FOR_BACKUP", 6062, TYPE_FLOAT),
    ("SOC_LEVEL_FOR_GRID_FEEDING", 6063, TYPE_FLOAT),
    # BSP infos
    ("BATT_VOLTAGE", 7000, TYPE_FLOAT),
    ("BATT_CURRENT", 7001, TYPE_FLOAT),
    ("BATT_SOC", 7032, TYPE_FLOAT),
    ("BATT_TEMP", 7029, TYPE_FLOAT),
    ("BATT_CYCLE_PHASE", 11038, TYPE_SHORT_ENUM),
    ("BATT_POWER", 7003, TYPE_FLOAT),
    ("BATT_CHARGE", 7007, TYPE_FLOAT),
    ("BATT_DISCHARGE", 7008, TYPE_FLOAT),
    ("BATT_CHARGE_PREV_DAY", 7009, TYPE_FLOAT),
    ("BATT_DISCHARGE_PREV_DAY", 7010, TYPE_FLOAT),
    # VarioTrack infos
    ("PV_VOLTAGE", 11041, TYPE_FLOAT),
    ("PV_POWER", 11043, TYPE_FLOAT),
    ("PV_ENERGY_CURR_DAY", 11007, TYPE_FLOAT),
    ("PV_ENERGY_PREV_DAY", 11011, TYPE_FLOAT),
    ("PV_ENERGY_TOTAL", 11009, TYPE_FLOAT),
    ("PV_SUN_HOURS_CURR_DAY", 11025, TYPE_FLOAT),
    ("PV_SUN_HOURS_PREV_DAY", 11026, TYPE_FLOAT),
    ("PV_OPERATION_MODE", 11016, TYPE_SHORT_ENUM),
    ("PV_NEXT_EQUAL", 11037, TYPE_FLOAT),
    # VarioTrack parameters
    ("FORCE_NEW_CYCLE", 10029, TYPE_SINT),
    # VarioString infos
    ("VS_PV_POWER", 15010, TYPE_FLOAT),
    ("VS_PV_PROD", 15017, TYPE_FLOAT),
    ("VS_PV_ENERGY_PREV_DAY", 15027, TYPE_FLOAT),
)

#: Families in the order a number's ambiguity is settled (7xxx: BSP before the BMS).
_FAMILY_ORDER = (
    Family.XTENDER,
    Family.BSP,
    Family.XCOM_CAN_BMS,
    Family.VARIOTRACK,
    Family.VARIOSTRING,
    Family.RCC,
)


def _catalog() -> Any:
    from .catalog import load_catalog

    return load_catalog()


def _lookup(number: int) -> Any | None:
    """The catalog's datapoint for a number, preferring the families in ``_FAMILY_ORDER``."""
    try:
        found = _catalog().find(number)
    except CatalogError:
        return None
    if not found:
        return None
    found.sort(key=lambda dp: _FAMILY_ORDER.index(dp.family) if dp.family in _FAMILY_ORDER else 99)
    return found[0]


def _unit(number: int) -> str:
    dp = _lookup(number)
    return dp.unit if dp is not None else ""


class Dataset:
    """xcom-proto's named datapoints (``XcomP``): ``XcomP.BATT_SOC``, ``getParamByID(7032)``."""

    @staticmethod
    def getParamByID(id: int) -> Datapoint:  # noqa: N802, A002
        for point in Dataset._getDatapoints():
            if point == id:
                return point
        raise UnknownDatapointException(id)

    @staticmethod
    def _getDatapoints() -> list[Datapoint]:  # noqa: N802
        return [v for v in vars(Dataset).values() if type(v) is Datapoint]


for _name, _number, _type in _NAMED:
    setattr(Dataset, _name, Datapoint(_number, _name, _type, _unit(_number)))
del _name, _number, _type


def _option(number: int, label: str) -> int:
    """The number of an enum option of the VarioTrack info ``number`` (from the catalog)."""
    for dp in _catalog().find(number):
        for key, text in dp.options.items():
            if text.strip().lower() == label.lower():
                return key
    raise CatalogError(f"no option {label!r} for {number}")  # pragma: no cover


def _constants() -> SimpleNamespace:
    """``XcomC``: xcom-proto's constants module, built from the protocol and the catalog."""
    c = SimpleNamespace()
    for name, value in globals().items():
        if name.startswith("TYPE_") and isinstance(value, str):
            setattr(c, name, value)
    c.PROPERTY_READ = bytes([Service.READ])
    c.PROPERTY_WRITE = bytes([Service.WRITE])
    c.TYPE_INFO = _u16(ObjectType.USER_INFO)
    c.TYPE_PARAMETER = _u16(ObjectType.PARAMETER)
    c.TYPE_MESSAGE = _u16(ObjectType.MESSAGE)
    c.TYPE_GUID = _u16(ObjectType.GUID)
    c.TYPE_DATALOG = _u16(ObjectType.CUSTOM_DATALOG_FIELD)
    c.QSP_VALUE = _u16(Property.VALUE_QSP)
    c.QSP_MIN = _u16(Property.MIN_QSP)
    c.QSP_MAX = _u16(Property.MAX_QSP)
    c.QSP_LEVEL = _u16(Property.LEVEL_QSP)
    c.QSP_UNSAVED_VALUE = _u16(Property.UNSAVED_VALUE_QSP)
    for level in AccessLevel:
        setattr(c, f"QSP_LEVEL_{level.name}", _u16(level))
    modes = {
        "MODE_NIGHT": "Night",
        "MODE_STARTUP": "StartUp",
        "MODE_CHARGER": "Charger",
        "MODE_SECURITY": "Security",
        "MODE_OFF": "OFF",
        "MODE_CHARGE": "Charge",
        "MODE_CHARGE_V": "Charge V",
        "MODE_CHARGE_I": "Charge I",
        "MODE_CHARGE_T": "Charge T",
    }
    operating_mode = Dataset.PV_OPERATION_MODE.id  # type: ignore[attr-defined]
    for name, label in modes.items():
        setattr(c, name, ValueTuple(_option(operating_mode, label), name))
    c.MODE_CHARGING = (c.MODE_CHARGE, c.MODE_CHARGE_V, c.MODE_CHARGE_I, c.MODE_CHARGE_T)
    phases = {
        "PHASE_BULK": "Bulk",
        "PHASE_ABSORPT": "Absorpt.",
        "PHASE_EQUALIZE": "Equalize",
        "PHASE_FLOATING": "Floating",
        "PHASE_R_FLOAT": "R.float.",
        "PHASE_PER_ABS": "Per.abs.",
    }
    cycle_phase = Dataset.BATT_CYCLE_PHASE.id  # type: ignore[attr-defined]
    for name, label in phases.items():
        setattr(c, name, ValueTuple(_option(cycle_phase, label), name))
    c.ERROR_CODES = {_u16(code): code.name for code in ErrorCode}
    c.Datapoint = Datapoint
    c.ValueTuple = ValueTuple
    c.Dataset = Dataset
    c.UnknownDatapointException = UnknownDatapointException
    return c


XcomC = _constants()
XcomP = Dataset


# --- the link classes -----------------------------------------------------------------------------


def _code(value: bytes | int, what: str) -> int:
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 2:
            raise ValueError(f"{what} must be 2 bytes, got {bytes(value)!r}")
        return int.from_bytes(value, "little")
    return int(value)


class XcomAbs:
    """What every xcom-proto link offers: getValue, setValue and their ...ByID forms."""

    def __init__(self) -> None:
        self._client: Any = None
        self.log = logging.getLogger(f"xcomlog.compat.{type(self).__name__}")

    # Links ---------------------------------------------------------------------------
    def _make_transport(self) -> Any:  # pragma: no cover - every link overrides it
        raise NotImplementedError

    def _timeout(self) -> float:
        return DEFAULT_TIMEOUT_S

    @property
    def client(self) -> Any:
        """The underlying ``XcomClient`` (opened on first use)."""
        if self._client is None:
            from .client import XcomClient

            self._client = XcomClient(self._make_transport(), timeout=self._timeout())
        if not self._client.transport.is_open:
            self._client.open()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # Addressing ------------------------------------------------------------------------
    @staticmethod
    def _family(number: int, object_type: ObjectType) -> Family | None:
        kind = "info" if object_type is ObjectType.USER_INFO else "parameter"
        try:
            found = [dp for dp in _catalog().find(number) if dp.kind in (kind, "menu")]
        except CatalogError:
            return None
        for family in _FAMILY_ORDER:
            if any(dp.family is family for dp in found):
                return family
        return None

    @staticmethod
    def _object_type(number: int) -> ObjectType:
        dp = _lookup(number)
        if dp is not None:
            return ObjectType.USER_INFO if dp.kind == "info" else ObjectType.PARAMETER
        # xcom-proto's own rule for numbers the catalog does not know
        if 3000 <= number <= 3168 or number >= 7000:
            return ObjectType.USER_INFO
        return ObjectType.PARAMETER

    def _address(self, number: int, object_type: ObjectType, dst: int, write: bool) -> int:
        family = self._family(number, object_type)
        if family is None:
            return dst
        multicast, first, _last = FAMILY_ADDRESSES[family]
        if dst == ADDRESS_XT_MULTICAST and family is not Family.XTENDER:
            dst = multicast if (write and multicast is not None) else first
        elif (
            not write and (is_multicast(dst) or is_phase(dst)) and family_of_address(dst) == family
        ):
            dst = first if is_multicast(dst) else dst
        return dst

    def _exchange(self, operation: Any) -> Any:
        try:
            return operation()
        except XcomProtoError:
            raise
        except DeviceError as exc:
            raise XcomProtoError(exc.code, str(exc)) from None

    # The xcom-proto API -------------------------------------------------------------------
    def getValueByID(  # noqa: N802
        self,
        id: int,
        type: str,
        dstAddr: int = ADDRESS_XT_MULTICAST,
        propertyID: bytes | int = XcomC.QSP_UNSAVED_VALUE,  # noqa: A002, N803
    ) -> Any:
        return self.getValue(Datapoint(id, "", type), dstAddr, propertyID)

    def getValue(  # noqa: N802
        self,
        parameter: Datapoint,
        dstAddr: int = ADDRESS_XT_MULTICAST,
        propertyID: bytes | int = XcomC.QSP_UNSAVED_VALUE,  # noqa: N803
    ) -> Any:
        """Read a datapoint: an info's value, or a parameter's property (RAM value by default)."""
        self.log.debug("requesting value %s", parameter)
        number = int(parameter.id)
        object_type = self._object_type(number)
        prop = (
            Property.VALUE
            if object_type is ObjectType.USER_INFO
            else _code(propertyID, "propertyID")
        )
        address = self._address(number, object_type, int(dstAddr), write=False)
        client = self.client
        frame = self._exchange(lambda: client.read_property(object_type, number, prop, address))
        if prop == Property.LEVEL_QSP:
            return int.from_bytes(frame.data[:2], "little")
        try:
            return parameter.unpackValue(frame.data)
        except ValueFormatError as exc:
            raise ValueError(f"{parameter.name or number}: {exc}") from None

    def setValueByID(  # noqa: N802
        self,
        id: int,  # noqa: A002
        type: str,  # noqa: A002
        value: Any,
        dstAddr: int = ADDRESS_XT_MULTICAST,  # noqa: N803
        propertyID: bytes | int = XcomC.QSP_UNSAVED_VALUE,  # noqa: N803
    ) -> None:
        return self.setValue(Datapoint(id, "", type), value, dstAddr, propertyID)

    def setValue(  # noqa: N802
        self,
        parameter: Datapoint,
        value: Any,
        dstAddr: int = ADDRESS_XT_MULTICAST,  # noqa: N803
        propertyID: bytes | int = XcomC.QSP_UNSAVED_VALUE,  # noqa: N803
    ) -> None:
        """Write a parameter: to RAM by default, to flash with ``propertyID=XcomC.QSP_VALUE``.

        The target defaults to ``dstAddr=100``, every Xtender at once, as in xcom-proto
        (kept for compatibility; the family's multicast for another family's parameter).
        """
        self.log.debug("setting value %s", parameter)
        number = int(parameter.id)
        prop = _code(propertyID, "propertyID")
        address = self._address(number, ObjectType.PARAMETER, int(dstAddr), write=True)
        dp = None
        try:
            dp = _catalog().at(number, address)
        except CatalogError:
            dp = _lookup(number)
        client = self.client
        if dp is not None and dp.kind == "parameter" and dp.format is not None:
            volts = None
            if dp.scales_with_system_voltage:  # the installation's 12/24/48 V limits
                volts = client.system_voltage or client.detect_system_voltage()
            value = _catalog().validate(dp, value, system_voltage=volts)
        data = parameter.packValue(value)
        self._exchange(
            lambda: client.write_property(ObjectType.PARAMETER, number, prop, data, address)
        )

    def __enter__(self) -> XcomAbs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class XcomRS232(XcomAbs):
    """Xcom-232i on a serial port (opened on first use, kept open until ``close``)."""

    def __init__(
        self, serialDevice: str, baudrate: int = DEFAULT_BAUDRATE, timeout: float = 2
    ) -> None:  # noqa: N803
        super().__init__()
        self.serialDevice = serialDevice
        self.baudrate = baudrate
        self.timeout = timeout

    def _timeout(self) -> float:
        return float(self.timeout)

    def _make_transport(self) -> Any:
        return SerialTransport(self.serialDevice, self.baudrate)


class XcomLANUDP(XcomAbs):
    """Xcom-LAN in UDP mode: requests to ``serverIP:dstPort``, answers on our ``srcPort``."""

    def __init__(
        self,
        serverIP: str,  # noqa: N803
        dstPort: int = DEFAULT_UDP_PORT,  # noqa: N803
        srcPort: int = DEFAULT_UDP_REPLY_PORT,  # noqa: N803
    ) -> None:
        super().__init__()
        self.serverAddress = (serverIP, dstPort)
        self.clientPort = srcPort

    def _make_transport(self) -> Any:
        host, port = self.serverAddress
        return UdpTransport(host, port, reply_port=self.clientPort)


class XcomLANTCP(XcomAbs):
    """Xcom-LAN in TCP client mode: we listen on ``port`` and the Moxa connects to us.

    Use as a context manager: entering waits for the Moxa (``connectTimeout`` seconds,
    None to wait as long as it takes, like xcom-proto).
    """

    def __init__(
        self, port: int = DEFAULT_TCP_PORT, connectTimeout: float | None = None, host: str = ""
    ) -> None:  # noqa: N803
        super().__init__()
        self.localPort = port
        self.connectTimeout = connectTimeout
        self.host = host

    def _make_transport(self) -> Any:
        return TcpServerTransport(self.host or "0.0.0.0", self.localPort)

    def __enter__(self) -> XcomLANTCP:
        from .client import XcomClient

        self.log.info("Starting TCP server on port %s", self.localPort)
        wait = 7 * 86400.0 if self.connectTimeout is None else float(self.connectTimeout)
        self._client = XcomClient(
            self._make_transport(), timeout=self._timeout(), open_timeout=wait
        )
        self._client.open()
        return self


__all__ = [
    "Datapoint",
    "Dataset",
    "UnknownDatapointException",
    "ValueTuple",
    "XcomAbs",
    "XcomC",
    "XcomLANTCP",
    "XcomLANUDP",
    "XcomP",
    "XcomProtoError",
    "XcomRS232",
]
