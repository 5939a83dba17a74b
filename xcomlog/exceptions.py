"""The one exception hierarchy of xcomlog, raised alike by both codec implementations."""

from __future__ import annotations

from .protocol import error_meaning, error_name


class XcomError(Exception):
    """Base class of every error xcomlog raises on purpose."""


class FrameError(XcomError, ValueError):
    """Bytes that are not a valid Xcom frame."""


class StartByteError(FrameError):
    """The first byte is not the start byte 0xAA."""


class LengthError(FrameError):
    """The data_length field is impossible for any Xcom service."""


class TruncatedFrameError(FrameError):
    """Fewer bytes than the header's data_length announces."""


class ChecksumError(FrameError):
    """A header or data checksum does not match."""


class HeaderChecksumError(ChecksumError):
    """The header checksum does not match."""


class DataChecksumError(ChecksumError):
    """The data checksum does not match."""


class ValueFormatError(XcomError, ValueError):
    """A value cannot be packed or unpacked in the requested format."""


class DeviceError(XcomError):
    """A device answered with an error code (section 4.3 of the specification)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = int(code)
        self.name = error_name(self.code)
        self.meaning = error_meaning(self.code)
        text = f"{self.name} (0x{self.code:04X})"
        if self.meaning:
            text += f": {self.meaning}"
        if message:
            text = f"{message}: {text}"
        super().__init__(text)


class XcomTimeout(XcomError, TimeoutError):
    """No matching response arrived in time."""


class LinkError(XcomError, ConnectionError):
    """A link (serial port, socket) could not be opened or broke."""


class ValidationError(XcomError, ValueError):
    """A value is refused before anything is sent (format, range, access level)."""


class CatalogError(XcomError, LookupError):
    """A datapoint is unknown to the catalog or its number is ambiguous."""


class StorageError(XcomError, OSError):
    """The dataset cannot be written (disk full, folder not writable, journal locked)."""


class ConfigError(XcomError, ValueError):
    """A configuration file or option is wrong; the message names the file and the key."""


class DatalogError(XcomError, ValueError):
    """An SD-card datalog file cannot be read (not a datalog, header cut or unreadable)."""


class BrokerError(XcomError, ConnectionError):
    """The MQTT broker refuses us for good (bad credentials, refused TLS handshake)."""
