"""Xcom protocol constants: the one place where numbers from the specification live.

Everything here comes from the "Xtender serial protocol" specification V1.6.32
(sections 3 and 4). Both codec implementations, the simulator and the client import
these names; no other module defines a protocol number.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid

# --- Frame layout (section 3.3) -------------------------------------------------------
START_BYTE = 0xAA
HEADER_SIZE = 14  # start byte, frame flags, src, dst, data length, header checksum
CHECKSUM_SIZE = 2
FRAME_OVERHEAD = HEADER_SIZE + CHECKSUM_SIZE
SERVICE_HEADER_SIZE = 10  # service flags, service id, object type, object id, property id
#: Smallest valid frame_data: the service flags and service id alone. Field evidence: Studer's
#: own C library (scom_frame) accepts data_length >= 2, so a frame of 2..9 bytes of data (a
#: "short frame", its object fields absent) is valid, not damage (issue 10).
MIN_DATA_LENGTH = 2
#: Largest frame_data in the specification: the screen object response (section 6.2.5).
#: Multi-info responses reach 8 + 76 * 7 + 10 = 550 bytes, file blocks 512 + 10.
MAX_DATA_LENGTH = 1034

# --- RS-232 (section 3.1) ---------------------------------------------------------------
DEFAULT_BAUDRATE = 38400
FAST_BAUDRATE = 115200
BITS_PER_BYTE_8E1 = 11  # start + 8 data + parity + stop
#: The specification's response delay: "can be up to 2 seconds" (section 3.7).
RESPONSE_TIMEOUT_S = 2.0
#: "a periodic increase of the response delay every 60 seconds" (section 3.7).
DATALOGGER_PERIOD_S = 60.0

# --- Multi infos (section 4.9) ----------------------------------------------------------
MULTI_INFO_MAX_ITEMS = 76
MULTI_INFO_OBJECT_ID = 0x00000001
MULTI_INFO_REQUEST_ITEM_SIZE = 3  # uint16 info id, uint8 aggregation
MULTI_INFO_RESPONSE_ITEM_SIZE = 7  # uint16 info id, uint8 aggregation, float32 value
MULTI_INFO_RESPONSE_HEADER_SIZE = 8  # uint32 flags, uint32 posix time
#: Gateways (Xcom-232i, Xcom-LAN) before this firmware answer SERVICE_NOT_SUPPORTED to multi-info.
MULTI_INFO_MIN_GATEWAY_VERSION = (1, 6, 74)

# --- Message objects (section 4.6.6) ----------------------------------------------------
MESSAGE_DATA_SIZE = 18  # total (int32), type (uint16), source (int32), time (int32), value

# --- File transfer (section 4.8) --------------------------------------------------------
FILE_BLOCK_SIZE = 512
FILE_OBJECT_DIRECTORY = 0x00000001
FILE_OBJECT_FILE = 0x00000002

# --- Custom datalog field (section 4.7) -------------------------------------------------
CUSTOM_DATALOG_FIELD_MAX = 250

# --- GUID (section 6.1) -----------------------------------------------------------------
GUID_SIZE = 16
#: The 16 bytes of the example answer of section 6.1.5, and the GUID they are.
SPEC_GUID_EXAMPLE_BYTES = bytes.fromhex("3ad01b0b58c932baec4d3528613d7d40")
SPEC_GUID_EXAMPLE = "407d3d61-2835-4dec-ba32-c9580b1bd03a"


def guid_from_bytes(data: bytes) -> uuid.UUID:
    """The GUID of the 16 wire bytes: one 128-bit little-endian integer (section 6.1.4).

    The spec's example (6.1.5) then reads as a valid version-4 UUID;
    ``uuid.UUID(bytes_le=...)`` (Microsoft's mixed-endian layout) would give another,
    invalid one. Raises ValueError when ``data`` is not 16 bytes.
    """
    if len(data) != GUID_SIZE:
        raise ValueError(f"a GUID is {GUID_SIZE} bytes, got {len(data)}")
    return uuid.UUID(int=int.from_bytes(bytes(data), "little"))


def guid_to_bytes(guid: uuid.UUID | str) -> bytes:
    """The 16 wire bytes of a GUID (a UUID or its text): the inverse of ``guid_from_bytes``."""
    value = guid if isinstance(guid, uuid.UUID) else uuid.UUID(str(guid))
    return value.int.to_bytes(GUID_SIZE, "little")


#: Text encoding of STRING values (section 4.2.3).
STRING_ENCODING = "iso8859_15"


class FrameFlag(enum.IntFlag):
    """Bits of a frame's ``frame_flags`` byte (section 3.3)."""

    MESSAGE_PENDING = 0x01
    RESTARTED = 0x02
    SD_CARD_PRESENT = 0x04
    SD_CARD_FULL = 0x08
    NEW_DATALOG_FILE = 0x10
    DATALOGGER_SUPPORTED = 0x20


class ServiceFlag(enum.IntFlag):
    """Bits of the ``service_flags`` byte (section 4.1)."""

    ERROR = 0x01
    RESPONSE = 0x02


class Service(enum.IntEnum):
    """``service_id`` values (section 4.1)."""

    READ = 0x01
    WRITE = 0x02


class ObjectType(enum.IntEnum):
    """``object_type`` values (sections 4.4-4.9 and 6)."""

    USER_INFO = 0x0001
    PARAMETER = 0x0002
    MESSAGE = 0x0003
    GUID = 0x0004
    CUSTOM_DATALOG_FIELD = 0x0005
    MULTI_INFO = 0x000A
    SCREEN = 0x0100
    DATALOG_TRANSFER = 0x0101


class Property(enum.IntEnum):
    """``property_id`` values (sections 4.4.1, 4.5.1, 4.8)."""

    NONE = 0x0000
    VALUE = 0x0001
    VALUE_QSP = 0x0005
    MIN_QSP = 0x0006
    MAX_QSP = 0x0007
    LEVEL_QSP = 0x0008
    UNSAVED_VALUE_QSP = 0x000D
    SD_START = 0x0021
    SD_DATABLOCK = 0x0022
    SD_ACK_CONTINUE = 0x0023
    SD_NACK_RETRY = 0x0024
    SD_ABORT = 0x0025
    SD_FINISH = 0x0026


class AccessLevel(enum.IntEnum):
    """Values of a parameter's ``level_qsp`` property (section 4.5.2)."""

    VIEW_ONLY = 0x0000
    BASIC = 0x0010
    EXPERT = 0x0020
    INSTALLER = 0x0030
    QSP = 0x0040


class Format(enum.IntEnum):
    """Property data formats (section 4.2.3); the value is a stable code, not a wire number."""

    BOOL = 1
    FORMAT = 2
    SHORT_ENUM = 3
    ERROR = 4
    INT32 = 5
    FLOAT = 6
    STRING = 7
    DYNAMIC = 8
    BYTE_STREAM = 9
    LONG_ENUM = 10


#: Size in bytes of each fixed-size format; STRING, BYTE_STREAM and DYNAMIC vary.
FORMAT_SIZES: dict[Format, int] = {
    Format.BOOL: 1,
    Format.FORMAT: 2,
    Format.SHORT_ENUM: 2,
    Format.ERROR: 2,
    Format.INT32: 4,
    Format.FLOAT: 4,
    Format.LONG_ENUM: 4,
}


class ErrorCode(enum.IntEnum):
    """Error codes of type ERROR (section 4.3)."""

    INVALID_FRAME = 0x0001
    DEVICE_NOT_FOUND = 0x0002
    RESPONSE_TIMEOUT = 0x0003
    SERVICE_NOT_SUPPORTED = 0x0011
    INVALID_SERVICE_ARGUMENT = 0x0012
    SCOM_ERROR_GATEWAY_BUSY = 0x0013
    TYPE_NOT_SUPPORTED = 0x0021
    OBJECT_ID_NOT_FOUND = 0x0022
    PROPERTY_NOT_SUPPORTED = 0x0023
    INVALID_DATA_LENGTH = 0x0024
    PROPERTY_IS_READ_ONLY = 0x0025
    INVALID_DATA = 0x0026
    DATA_TOO_SMALL = 0x0027
    DATA_TOO_BIG = 0x0028
    WRITE_PROPERTY_FAILED = 0x0029
    READ_PROPERTY_FAILED = 0x002A
    ACCESS_DENIED = 0x002B
    SCOM_ERROR_OBJECT_NOT_SUPPORTED = 0x002C
    SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED = 0x002D
    OBJECT_PROPERTY_INVALID = 0x002E
    FILE_OR_DIR_NOT_PRESENT = 0x002F
    FILE_CORRUPTED = 0x0030
    INVALID_SHELL_ARG = 0x0081


#: The meaning column of the specification's error table (section 4.3).
ERROR_MEANINGS: dict[int, str] = {
    ErrorCode.INVALID_FRAME: "malformed frame",
    ErrorCode.DEVICE_NOT_FOUND: "wrong dst_addr field",
    ErrorCode.RESPONSE_TIMEOUT: "no response of the server",
    ErrorCode.SERVICE_NOT_SUPPORTED: "wrong service_id field",
    ErrorCode.INVALID_SERVICE_ARGUMENT: "wrong service_data",
    ErrorCode.SCOM_ERROR_GATEWAY_BUSY: "gateway (for example XCOM-232i) busy",
    ErrorCode.TYPE_NOT_SUPPORTED: "the object_type requested doesn't exist",
    ErrorCode.OBJECT_ID_NOT_FOUND: "no object with this object_id was found",
    ErrorCode.PROPERTY_NOT_SUPPORTED: "the property identified by property_id doesn't exist",
    ErrorCode.INVALID_DATA_LENGTH: "the field property_data has an invalid number of bytes",
    ErrorCode.PROPERTY_IS_READ_ONLY: "a writing to this property is not allowed",
    ErrorCode.INVALID_DATA: "this value is impossible for this property",
    ErrorCode.DATA_TOO_SMALL: "the value is below the minimum limit",
    ErrorCode.DATA_TOO_BIG: "the value is above the maximum limit",
    ErrorCode.WRITE_PROPERTY_FAILED: "writing is possible, but failed",
    ErrorCode.READ_PROPERTY_FAILED: "reading is possible, but failed",
    ErrorCode.ACCESS_DENIED: "insufficient user access",
    ErrorCode.SCOM_ERROR_OBJECT_NOT_SUPPORTED: (
        "this object id, though existent, is not supported by the current implementation "
        "of the gateway"
    ),
    ErrorCode.SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED: (
        "read operation is not supported when used on multicast addresses"
    ),
    ErrorCode.OBJECT_PROPERTY_INVALID: "during a file transfer, the use of this property was unexpected",
    ErrorCode.FILE_OR_DIR_NOT_PRESENT: "attempt to download a file not present on the SD card",
    ErrorCode.FILE_CORRUPTED: "a read error occurred during the download of a file",
    ErrorCode.INVALID_SHELL_ARG: "the command line tool used received the wrong arguments",
}


def error_name(code: int) -> str:
    """The specification's name of an error code, or ``UNKNOWN_ERROR_0x....``."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR_0x{code:04X}"


def error_meaning(code: int) -> str:
    """The specification's meaning of an error code (empty for unknown codes)."""
    return ERROR_MEANINGS.get(code, "")


#: Multi-info refusals meaning "this gateway has no multi-info service": read user infos
#: one by one instead (the client and the logger both fall back on exactly these).
NO_MULTI_INFO_ERRORS = frozenset(
    {
        ErrorCode.SERVICE_NOT_SUPPORTED,
        ErrorCode.TYPE_NOT_SUPPORTED,
        ErrorCode.OBJECT_ID_NOT_FOUND,
        ErrorCode.PROPERTY_NOT_SUPPORTED,
        ErrorCode.SCOM_ERROR_OBJECT_NOT_SUPPORTED,
        ErrorCode.INVALID_SERVICE_ARGUMENT,
    }
)
#: Errors that end a walk through the message log (no message at that index).
NO_SUCH_MESSAGE_ERRORS = frozenset(
    {
        ErrorCode.OBJECT_ID_NOT_FOUND,
        ErrorCode.INVALID_SERVICE_ARGUMENT,
        ErrorCode.READ_PROPERTY_FAILED,
        ErrorCode.INVALID_DATA,
    }
)
#: Device errors worth sending the same request again for (the device did not answer the gateway).
RETRYABLE_ERRORS = frozenset({ErrorCode.RESPONSE_TIMEOUT})

# Plain-int copies of the flag bits the hot paths test (IntFlag arithmetic costs microseconds).
FLAG_MESSAGE_PENDING = int(FrameFlag.MESSAGE_PENDING)
FLAG_RESTARTED = int(FrameFlag.RESTARTED)
FLAG_SD_CARD_PRESENT = int(FrameFlag.SD_CARD_PRESENT)
FLAG_NEW_DATALOG_FILE = int(FrameFlag.NEW_DATALOG_FILE)
FLAG_DATALOGGER_SUPPORTED = int(FrameFlag.DATALOGGER_SUPPORTED)
FLAG_RESPONSE = int(ServiceFlag.RESPONSE)
FLAG_ERROR = int(ServiceFlag.ERROR)


class Aggregation(enum.IntEnum):
    """Multi-info aggregation types (section 4.9.1); 0x01-0x0F address device 1-15."""

    MASTER = 0x00
    AVERAGE = 0xFD
    SUM = 0xFE


AGGREGATION_DEVICE_MIN = 0x01
AGGREGATION_DEVICE_MAX = 0x0F


class MultiInfoFlag(enum.IntFlag):
    """Bits of the 32-bit flags word of a multi-info response (section 4.9.2)."""

    XCOM_GSM = 0x010
    XT_PRESENT = 0x020
    BSP_PRESENT = 0x040
    VT_PRESENT = 0x080
    VS_PRESENT = 0x100


MULTI_INFO_SERVICE_VERSION_MASK = 0x0F


class ScreenButton(enum.IntEnum):
    """Object ids of the screen object (section 6.2.1)."""

    NONE = 0x00
    DOWN = 0x10
    ESC = 0x20
    SET = 0x40
    UP = 0x80


# --- Addresses (sections 3.5 and 3.6) ---------------------------------------------------
ADDRESS_DTE = 1  # the source address the specification's examples use for the PC
ADDRESS_BROADCAST = 0
ADDRESS_XT_MULTICAST = 100
ADDRESS_XT_FIRST, ADDRESS_XT_LAST = 101, 109
ADDRESS_PHASE_L1, ADDRESS_PHASE_L2, ADDRESS_PHASE_L3 = 191, 192, 193
ADDRESS_VT_MULTICAST = 300
ADDRESS_VT_FIRST, ADDRESS_VT_LAST = 301, 315
ADDRESS_GATEWAY = 501  # the Xcom-232i the DTE talks to
ADDRESS_BSP_MULTICAST = 600
ADDRESS_BSP = 601
ADDRESS_VS_MULTICAST = 700
ADDRESS_VS_FIRST, ADDRESS_VS_LAST = 701, 715

MULTICAST_ADDRESSES = frozenset(
    {ADDRESS_XT_MULTICAST, ADDRESS_VT_MULTICAST, ADDRESS_BSP_MULTICAST, ADDRESS_VS_MULTICAST}
)
PHASE_ADDRESSES = (ADDRESS_PHASE_L1, ADDRESS_PHASE_L2, ADDRESS_PHASE_L3)


def _indexed(first: int, last: int, n: int, what: str) -> int:
    count = last - first + 1
    if not 1 <= n <= count:
        raise ValueError(f"{what} index must be 1..{count}, got {n}")
    return first + n - 1


def xt(n: int) -> int:
    """Address of Xtender ``n`` (1-9)."""
    return _indexed(ADDRESS_XT_FIRST, ADDRESS_XT_LAST, n, "Xtender")


def vt(n: int) -> int:
    """Address of VarioTrack ``n`` (1-15)."""
    return _indexed(ADDRESS_VT_FIRST, ADDRESS_VT_LAST, n, "VarioTrack")


def vs(n: int) -> int:
    """Address of VarioString ``n`` (1-15)."""
    return _indexed(ADDRESS_VS_FIRST, ADDRESS_VS_LAST, n, "VarioString")


def phase(n: int) -> int:
    """Virtual address of all Xtenders on phase ``n`` (1-3 for L1-L3)."""
    return _indexed(ADDRESS_PHASE_L1, ADDRESS_PHASE_L3, n, "phase")


def is_multicast(address: int) -> bool:
    """True for the per-family multicast addresses (100, 300, 600, 700)."""
    return address in MULTICAST_ADDRESSES


def is_phase(address: int) -> bool:
    """True for the phase addresses 191-193."""
    return ADDRESS_PHASE_L1 <= address <= ADDRESS_PHASE_L3


class Family(str, enum.Enum):
    """Device families of the appendix; the value is the short name used in data files."""

    XTENDER = "xt"
    VARIOTRACK = "vt"
    VARIOSTRING = "vs"
    BSP = "bsp"
    XCOM_CAN_BMS = "bms"  # answers at the BSP addresses
    RCC = "rcc"  # RCC / Xcom-232i parameters, read at the gateway address


#: Per family: (multicast address or None, first unicast address, last unicast address).
FAMILY_ADDRESSES: dict[Family, tuple[int | None, int, int]] = {
    Family.XTENDER: (ADDRESS_XT_MULTICAST, ADDRESS_XT_FIRST, ADDRESS_XT_LAST),
    Family.VARIOTRACK: (ADDRESS_VT_MULTICAST, ADDRESS_VT_FIRST, ADDRESS_VT_LAST),
    Family.VARIOSTRING: (ADDRESS_VS_MULTICAST, ADDRESS_VS_FIRST, ADDRESS_VS_LAST),
    Family.BSP: (ADDRESS_BSP_MULTICAST, ADDRESS_BSP, ADDRESS_BSP),
    Family.XCOM_CAN_BMS: (ADDRESS_BSP_MULTICAST, ADDRESS_BSP, ADDRESS_BSP),
    Family.RCC: (None, ADDRESS_GATEWAY, ADDRESS_GATEWAY),
}


def family_of_address(address: int) -> Family | None:
    """The family a unicast, multicast or phase address belongs to (BSP for 600/601)."""
    if is_phase(address):
        return Family.XTENDER
    for family, (multicast, first, last) in FAMILY_ADDRESSES.items():
        if address == multicast or first <= address <= last:
            return family
    return None


def device_index(address: int) -> int:
    """1-based index of a unicast device within its family (Xtender 103 -> 3)."""
    family = family_of_address(address)
    if family is None or is_phase(address) or is_multicast(address):
        raise ValueError(f"address {address} is not a single device")
    return address - FAMILY_ADDRESSES[family][1] + 1


_DEVICE_ALIASES = {
    "gateway": ADDRESS_GATEWAY,
    "xcom": ADDRESS_GATEWAY,
    "rcc": ADDRESS_GATEWAY,
    "bsp": ADDRESS_BSP,
    "bms": ADDRESS_BSP,
    "xt": ADDRESS_XT_MULTICAST,
    "vt": ADDRESS_VT_MULTICAST,
    "vs": ADDRESS_VS_MULTICAST,
    "l1": ADDRESS_PHASE_L1,
    "l2": ADDRESS_PHASE_L2,
    "l3": ADDRESS_PHASE_L3,
}


def parse_device(text: str | int) -> int:
    """Turn ``"xt1"``, ``"vs2"``, ``"bsp"``, ``"l2"``, ``"gateway"`` or ``"101"`` into an address."""
    if isinstance(text, int):
        return text
    word = text.strip().lower()
    if word.isdigit():
        return int(word)
    if word in _DEVICE_ALIASES:
        return _DEVICE_ALIASES[word]
    for prefix, to_address in (("xt", xt), ("vt", vt), ("vs", vs)):
        if word.startswith(prefix) and word[len(prefix) :].isdigit():
            return to_address(int(word[len(prefix) :]))
    raise ValueError(
        f"unknown device {text!r}: use an address (101), xt1-xt9, vt1-vt15, vs1-vs15, "
        "bsp, l1-l3, xt/vt/vs (multicast) or gateway"
    )


def device_name(address: int) -> str:
    """Short readable name of an address: 101 -> ``xt1``, 601 -> ``bsp``, 191 -> ``l1``."""
    if is_phase(address):
        return f"l{address - ADDRESS_PHASE_L1 + 1}"
    if address == ADDRESS_GATEWAY:
        return "gateway"
    if address in (ADDRESS_BSP, ADDRESS_BSP_MULTICAST):
        return "bsp"
    family = family_of_address(address)
    if family is None:
        return str(address)
    if is_multicast(address):
        return family.value
    return f"{family.value}{device_index(address)}"


# --- Device behaviour the simulator and the client rely on (sections 3.8, 4.5.4-4.5.10) ---
#: Per family, the parameter "Parameters saved in flash memory" (yes=1 / no=0).
FLASH_SAVE_PARAMETERS: dict[Family, int] = {
    Family.XTENDER: 1550,
    Family.VARIOTRACK: 10058,
    Family.VARIOSTRING: 14069,
}
#: RCC/Xcom-232i signal parameter that clears the restarted bit of frame_flags (section 3.8).
PARAM_CLEAR_RESTART_FLAG = 5104
#: RCC/Xcom-232i parameter holding the system date and time, INT32 seconds since 1970.
PARAM_DATE = 5002

# --- SD-card datalog layout (CSVFILES/LOG/LGyymmdd.CSV, as firmware 1.6.x writes it) -------
_DATALOG_FILE_NAME = re.compile(r"^LG(\d{2})(\d{2})(\d{2})\.CSV$", re.IGNORECASE)


def datalog_file_name(day: dt.date) -> str:
    """The datalogger's file of a local day: ``LGyymmdd.CSV``."""
    return f"LG{day:%y%m%d}.CSV"


def datalog_file_date(name: str) -> dt.date | None:
    """The day of an ``LGyymmdd.CSV`` name (None for other names and impossible dates)."""
    match = _DATALOG_FILE_NAME.match(name)
    if not match:
        return None
    yy, mm, dd = (int(g) for g in match.groups())
    try:
        return dt.date(2000 + yy, mm, dd)
    except ValueError:
        return None


#: Per family, in column order: (info number, columns) where columns is "phase" (one per
#: phase L1-L3), "device" (one per device) or "device+all" (one per device, then ALL).
DATALOG_INFOS: dict[Family, tuple[tuple[int, str], ...]] = {
    Family.XTENDER: tuple(
        (n, "phase")
        for n in (3090, 3113, 3116, 3098, 3097, 3110, 3122, 3010, 3028, 3020, 3086, 3054, 3055)
    )
    + tuple((n, "device") for n in (3092, 3095, 3119, 3101, 3103)),
    Family.VARIOSTRING: ((15061, "device+all"),)
    + tuple((n, "device") for n in (15013, 15065, 15058, 15054, 15057, 15002, 15111, 15088, 15089)),
    Family.VARIOTRACK: ((11043, "device+all"),)
    + tuple((n, "device") for n in (11016, 11045, 11041, 11040, 11039, 11038, 11082, 11061, 11062)),
    Family.BSP: tuple((n, "device") for n in (7030, 7031, 7032, 7033)),
}
#: The datalog's "Solar power (ALL)" column: all VarioTrack and VarioString PV power.
DATALOG_SOLAR_POWER_ALL = 17999
#: Parameters listed after the data (``P1107,v1,v2,v3,``), up to three Xtenders each.
DATALOG_PARAMETERS = (1107, 1567, 1138, 1108, 1140, 1155, 1156, 1163, 1164, 6001)
#: Day counters listed after the parameters (``I3081,v1,...``), per family.
DATALOG_DAY_INFOS = (3081, 3083, 7007, 7008, 9012, 9013, 11006, 11007, 15016, 15017)
