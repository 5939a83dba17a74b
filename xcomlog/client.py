"""The Xcom client: read and write any value of an installation over any transport.

``XcomClient`` (blocking) and ``AsyncXcomClient`` (asyncio) expose the same operations.
Each operation is written once, below in ``_Operations``, as a generator over the I/O
commands of the protocol engine (``xcomlog.engine``); the two classes only drive those generators::

    from xcomlog.client import XcomClient
    with XcomClient("tcp://192.168.1.10:4001") as xcom:
        xcom.read_info(3000, address=101)          # battery voltage of Xtender 1
        xcom.write_param(1138, 12.0, address=101)  # RAM only; flash=True to save it

Values are typed through the datapoint catalog (``xcomlog.catalog``); writes are
validated against it before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from . import codec
from .engine import (
    Operation,
    PolitePolicy,
    Request,
    Session,
    multi_info_aggregation,
    run_async,
    run_sync,
)
from .exceptions import (
    CatalogError,
    DeviceError,
    LinkError,
    ValidationError,
    XcomError,
    XcomTimeout,
)
from .links import AsyncTransport, Transport, open_transport
from .protocol import (
    ADDRESS_DTE,
    ADDRESS_GATEWAY,
    CUSTOM_DATALOG_FIELD_MAX,
    FAMILY_ADDRESSES,
    FILE_OBJECT_DIRECTORY,
    FILE_OBJECT_FILE,
    GUID_SIZE,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_RESPONSE_HEADER_SIZE,
    MULTI_INFO_RESPONSE_ITEM_SIZE,
    NO_MULTI_INFO_ERRORS,
    NO_SUCH_MESSAGE_ERRORS,
    RESPONSE_TIMEOUT_S,
    STRING_ENCODING,
    AccessLevel,
    ErrorCode,
    Family,
    Format,
    FrameFlag,
    ObjectType,
    Property,
    Service,
    device_name,
    family_of_address,
)
from .records import Frame

log = logging.getLogger("xcomlog.client")

T = TypeVar("T")

_VALUE_PROPERTIES = frozenset(
    {Property.VALUE_QSP, Property.MIN_QSP, Property.MAX_QSP, Property.UNSAVED_VALUE_QSP}
)
_TRANSFER_ANSWERS = frozenset(
    {
        Property.NONE,
        Property.SD_START,
        Property.SD_DATABLOCK,
        Property.SD_ACK_CONTINUE,
        Property.SD_NACK_RETRY,
        Property.SD_ABORT,
        Property.SD_FINISH,
    }
)
_SCAN_FAMILIES = (Family.XTENDER, Family.VARIOTRACK, Family.VARIOSTRING, Family.BSP)


class DeviceInfo(NamedTuple):
    """A device found by ``scan()``."""

    address: int
    family: Family
    name: str  # xt1, vt2, bsp...
    firmware: str | None  # "1.6.30", from the catalog's version infos
    id_type: int | None  # the model code of the "ID type" info
    fid: int | None  # the unique factory id, when the device reports it


class MessageRecord(NamedTuple):
    """One message of the gateway's log, decoded with the catalog's texts."""

    index: int
    number: int
    text: str
    severity: str
    source: int  # address of the device that sent it
    device: str  # readable source name (xt1, vs2...)
    timestamp: int  # as stored: seconds since 1970 on the installation's clock
    value: bytes

    @property
    def time(self) -> dt.datetime:
        """The timestamp as a naive datetime on the installation's (local) clock."""
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=self.timestamp)


def _version(msb: float, lsb: float) -> str:
    """Software version from the SOFT msb/lsb infos (section 4.4.3): X.Y.Z."""
    high = int(msb) & 0xFFFF
    low = int(lsb) & 0xFFFF
    return f"{high >> 8}.{low >> 8}.{low & 0xFF}"


def _first_address(family: Family) -> int:
    return FAMILY_ADDRESSES[family][1]


class _Operations:
    """Every client operation, written once as a generator over session I/O commands."""

    def _setup(
        self,
        *,
        timeout: float,
        retries: int,
        src: int,
        polite: PolitePolicy | None,
        catalog: Any,
        open_timeout: float | None,
        **session_options: Any,
    ) -> None:
        self._session = Session(
            src=src, timeout=timeout, retries=retries, polite=polite, **session_options
        )
        self._catalog = catalog
        self.open_timeout = open_timeout
        #: Download transfers restart from the beginning at most this often.
        self.file_restarts = 3

    # Properties shared by both clients ---------------------------------------------------
    @property
    def session(self) -> Session:
        return self._session

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from .catalog import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    @property
    def last_frame_flags(self) -> FrameFlag | None:
        """Frame flags of the last answer (messages pending, restarted, SD card...)."""
        return self._session.last_frame_flags

    @property
    def messages_pending(self) -> bool:
        """The last answer said new messages are waiting (read them with read_messages)."""
        return self._session.messages_pending

    @property
    def restarted(self) -> bool:
        """The last answer carried the gateway's restarted flag."""
        return self._session.restarted

    @property
    def sd_card_present(self) -> bool:
        """The last answer said an SD card is in the gateway."""
        return self._session.sd_card_present

    @property
    def stats(self) -> dict[str, float]:
        """Counters: requests, retries, timeouts, busy, skipped frames, decoder errors."""
        out = self._session.stats_dict()
        out.update({f"link_{k}": v for k, v in self.transport.stats().items()})
        return out

    # Catalog helpers -----------------------------------------------------------------------
    def _datapoint(self, number: int, kind: str, address: int | None) -> tuple[Any, int]:
        """The catalog entry of ``number`` (of ``kind``) for ``address``, and the address."""
        every = self.catalog.find(number)
        found = [dp for dp in every if dp.kind == kind]
        if not found and every and kind == "parameter":
            raise ValidationError(f"{number} is a user info ({every[0].name}): it is read-only")
        if not found:
            raise CatalogError(
                f"{kind} {number} is not in the catalog (pass fmt= to use it anyway)"
            )
        if address is None:
            families = {dp.family for dp in found}
            if len(families) > 1:
                names = ", ".join(sorted(f.value for f in families))
                raise CatalogError(f"{kind} {number} exists for {names}: give an address")
            dp = found[0]
            return dp, _first_address(dp.family)
        family = family_of_address(address)
        matching = [dp for dp in found if dp.family == family]
        if not matching and family == Family.BSP:
            matching = [dp for dp in found if dp.family == Family.XCOM_CAN_BMS]
        if len(matching) == 1:
            return matching[0], address
        if not matching and len(found) == 1:
            return found[0], address  # let the device judge an unusual address
        raise CatalogError(
            f"{kind} {number} is not defined for {device_name(address)} "
            f"(catalog families: {', '.join(sorted(dp.family.value for dp in found))})"
        )

    def _info_format(
        self, number: int, address: int | None, fmt: Format | None
    ) -> tuple[Any, int, Format]:
        if fmt is not None:
            if address is None:
                raise ValidationError("an address is needed when fmt= is given")
            return None, address, Format(fmt)
        dp, address = self._datapoint(number, "info", address)
        if dp.format is None:
            raise ValidationError(f"info {number} has no readable value")
        return dp, address, dp.format

    def _decode(self, dp: Any, fmt: Format, data: bytes) -> Any:
        if dp is not None:
            return self.catalog.decode(dp, data)
        return codec.unpack_value(fmt, data)

    def _typed(self, number: int, address: int, value: float) -> Any:
        """A multi-info float32 as the Python type of the datapoint's format."""
        try:
            dp, _ = self._datapoint(number, "info", address)
        except CatalogError:
            return float(value)
        fmt = dp.format
        number_value = float(value)
        if fmt == Format.BOOL and number_value in (0.0, 1.0):
            return bool(number_value)
        if (
            fmt in (Format.SHORT_ENUM, Format.LONG_ENUM, Format.INT32, Format.FORMAT, Format.ERROR)
            and math.isfinite(number_value)
            and number_value.is_integer()
        ):
            return int(number_value)
        return number_value

    # Raw exchanges -------------------------------------------------------------------------
    def _request(self, frame: bytes | Request) -> Operation[Frame]:
        """Send a request (encoded bytes or a ``Request``) and return its matching answer."""
        request = frame if isinstance(frame, Request) else Request.from_frame(bytes(frame))
        return (yield from self._session.exchange(request))

    def _read_property(
        self, object_type: int, object_id: int, property_id: int, address: int, data: bytes = b""
    ) -> Operation[Frame]:
        """READ_PROPERTY of any object; returns the answer frame (its ``data`` is the value)."""
        request = Request(
            Service.READ,
            object_type,
            object_id,
            property_id,
            data,
            dst=address,
            src=self._session.src,
        )
        return (yield from self._session.exchange(request))

    def _write_property(
        self, object_type: int, object_id: int, property_id: int, data: bytes, address: int
    ) -> Operation[Frame]:
        """WRITE_PROPERTY of any object; returns the answer frame."""
        request = Request(
            Service.WRITE,
            object_type,
            object_id,
            property_id,
            data,
            dst=address,
            src=self._session.src,
        )
        return (yield from self._session.exchange(request))

    # User infos and parameters -------------------------------------------------------------
    def _read_info(
        self, number: int, address: int | None = None, *, fmt: Format | None = None
    ) -> Operation[Any]:
        """Value of user info ``number`` at ``address`` (default: its family's first device).

        Typed through the catalog (float for FLOAT infos); ``fmt`` reads an info the
        catalog does not know.
        """
        dp, address, fmt = self._info_format(number, address, fmt)
        frame = yield from self._read_property(
            ObjectType.USER_INFO, number, Property.VALUE, address
        )
        return self._decode(dp, fmt, frame.data)

    def _read_param(
        self,
        number: int,
        address: int | None = None,
        prop: Property | int = Property.VALUE_QSP,
        *,
        fmt: Format | None = None,
    ) -> Operation[Any]:
        """A property of parameter ``number``: value (default), min, max, level or unsaved value."""
        prop = Property(prop)
        if fmt is not None:
            if address is None:
                raise ValidationError("an address is needed when fmt= is given")
            dp = None
            fmt = Format(fmt)
        else:
            dp, address = self._datapoint(number, "parameter", address)
            fmt = dp.format
        if prop in _VALUE_PROPERTIES and fmt is None:
            raise ValidationError(
                f"parameter {number} ({dp.name if dp else ''}) has only an access level, no value"
            )
        frame = yield from self._read_property(ObjectType.PARAMETER, number, prop, address)
        if prop == Property.LEVEL_QSP:
            raw = int.from_bytes(frame.data[:4], "little") if frame.data else 0
            try:
                return AccessLevel(raw)
            except ValueError:
                return raw
        if prop not in _VALUE_PROPERTIES:
            return frame.data
        return self._decode(dp, fmt, frame.data)

    def _write_param(
        self,
        number: int,
        value: Any,
        address: int | None = None,
        *,
        flash: bool = False,
        fmt: Format | None = None,
    ) -> Operation[None]:
        """Write parameter ``number``: to RAM (unsaved value) unless ``flash=True``.

        Flash survives a restart but endures only about 1000 writes per parameter
        (section 4.5.4), so it is never the default. The value is validated against the
        catalog (format, range, menu options, level) before anything is sent.
        """
        prop = Property.VALUE_QSP if flash else Property.UNSAVED_VALUE_QSP
        if fmt is not None:
            if address is None:
                raise ValidationError("an address is needed when fmt= is given")
            data = codec.pack_value(Format(fmt), value)
        else:
            dp, address = self._datapoint(number, "parameter", address)
            if dp.format is None:
                raise ValidationError(f"parameter {number} ({dp.name}) has no value to write")
            value = self.catalog.validate(dp, value)
            data = codec.pack_value(dp.format, value)
        yield from self._write_property(ObjectType.PARAMETER, number, prop, data, address)
        return None

    def _read_infos(
        self,
        items: Iterable[tuple[int, int] | tuple[int, int, int]],
        *,
        on_error: str = "raise",
    ) -> Operation[dict[tuple[int, int], Any]]:
        """Many user infos at once: ``{(address, number): value}``.

        Items are ``(number, address)`` or ``(number, address, aggregation)``. They go in
        multi-info requests of at most 76 (section 4.9); a gateway without that service
        is read one info at a time instead. Multi-info values are float32 on the wire and
        come back as the datapoint's type. ``on_error="skip"`` leaves out infos a device
        refuses (single reads only) instead of raising.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        wanted: list[tuple[int, int, int]] = []
        for item in items:
            if len(item) == 3:
                number, address, aggregation = item  # type: ignore[misc]
            else:
                number, address = item  # type: ignore[misc]
                aggregation = multi_info_aggregation(address)
            wanted.append((int(number), int(address), int(aggregation)))
        result: dict[tuple[int, int], Any] = {}
        session = self._session
        position = 0
        if session.multi_info_supported is not False:
            while position < len(wanted):
                batch = wanted[position : position + MULTI_INFO_MAX_ITEMS]
                try:
                    frame = yield from self._multi_info(batch)
                except DeviceError as exc:
                    if exc.code in NO_MULTI_INFO_ERRORS and session.multi_info_supported is None:
                        log.info(
                            "the gateway has no multi-info service (%s): single reads", exc.name
                        )
                        session.multi_info_supported = False
                        break
                    raise
                session.multi_info_supported = True
                decoded = codec.decode_multi_info(frame.data)
                for (number, address, _), value in zip(batch, decoded.values.tolist(), strict=True):
                    result[(address, number)] = self._typed(number, address, value)
                position += len(batch)
        for number, address, _ in wanted[position:]:
            try:
                result[(address, number)] = yield from self._read_info(number, address)
            except (DeviceError, CatalogError, ValidationError) as exc:
                if on_error == "raise":
                    raise
                log.debug("skipped info %d at %s: %s", number, device_name(address), exc)
        return result

    def _multi_info(self, batch: Sequence[tuple[int, int, int]]) -> Operation[Frame]:
        pairs = [(number, aggregation) for number, _, aggregation in batch]
        data = codec.pack_multi_info_request(pairs)
        expected = len(pairs)

        def same_items(frame: Frame) -> bool:
            # Another client's multi-info answer has the same header: compare the items.
            body = frame.data
            if (
                len(body)
                != MULTI_INFO_RESPONSE_HEADER_SIZE + MULTI_INFO_RESPONSE_ITEM_SIZE * expected
            ):
                return False
            step = MULTI_INFO_RESPONSE_ITEM_SIZE
            start = MULTI_INFO_RESPONSE_HEADER_SIZE
            for i in range(expected):
                offset = start + i * step
                if body[offset : offset + 3] != data[3 * i : 3 * i + 3]:
                    return False
            return True

        request = Request(
            Service.READ,
            ObjectType.MULTI_INFO,
            MULTI_INFO_OBJECT_ID,
            Property.VALUE,
            data,
            dst=ADDRESS_GATEWAY,
            src=self._session.src,
            check=same_items,
        )
        return (yield from self._session.exchange(request))

    # Messages, GUID, datalog field -----------------------------------------------------------
    def _read_messages(
        self, count: int | None = None, *, since: int | dt.datetime | None = None
    ) -> Operation[list[MessageRecord]]:
        """The gateway's message log, newest first (section 4.6).

        Index 0 is the newest message and sets the gateway's read pointer (and clears the
        pending flag); indexes 1, 2... walk back from it. ``count`` limits how many are
        read; ``since`` stops at the first message older than it (a POSIX time on the
        installation clock, or a naive datetime on that clock).
        """
        if isinstance(since, dt.datetime):
            since = int((since - dt.datetime(1970, 1, 1)).total_seconds())
        limit = None if count is None else max(0, int(count))
        out: list[MessageRecord] = []
        if limit == 0:
            return out
        try:
            first = yield from self._read_property(
                ObjectType.MESSAGE, 0, Property.NONE, ADDRESS_GATEWAY
            )
        except DeviceError as exc:
            if exc.code in NO_SUCH_MESSAGE_ERRORS:
                return out  # an empty log
            raise
        message = codec.decode_message(first.data)
        remaining = message.total
        index = 0
        while True:
            if since is not None and message.timestamp < since:
                break
            out.append(self._message_record(index, message))
            index += 1
            if limit is not None and len(out) >= limit:
                break
            if index > remaining:
                break
            try:
                frame = yield from self._read_property(
                    ObjectType.MESSAGE, index, Property.NONE, ADDRESS_GATEWAY
                )
            except DeviceError as exc:
                if exc.code in NO_SUCH_MESSAGE_ERRORS:
                    break
                raise
            message = codec.decode_message(frame.data)
        return out

    def _message_record(self, index: int, message: Any) -> MessageRecord:
        info = None
        try:
            info = self.catalog.messages.get(message.message_type)
        except Exception:  # a missing catalog must not lose the message
            log.debug("no catalog for message texts", exc_info=True)
        text = info.text if info is not None else f"Message {message.message_type}"
        severity = info.severity if info is not None else ""
        return MessageRecord(
            index,
            message.message_type,
            text,
            severity,
            message.source,
            device_name(message.source),
            message.timestamp,
            bytes(message.value),
        )

    def _read_guid(self) -> Operation[uuid.UUID]:
        """The installation's GUID (section 6.1), sent little-endian."""
        frame = yield from self._read_property(ObjectType.GUID, 0, Property.NONE, ADDRESS_GATEWAY)
        if len(frame.data) != GUID_SIZE:
            raise ValidationError(f"GUID answer has {len(frame.data)} bytes, expected {GUID_SIZE}")
        return uuid.UUID(bytes_le=bytes(frame.data))

    def _write_datalog_field(self, text: str) -> Operation[None]:
        """Set the custom datalog field (section 4.7): at most 250 ISO-8859-15 bytes."""
        try:
            data = text.encode(STRING_ENCODING)
        except UnicodeEncodeError as exc:
            raise ValidationError(f"datalog field not encodable in ISO-8859-15: {exc}") from None
        if len(data) > CUSTOM_DATALOG_FIELD_MAX:
            raise ValidationError(
                f"datalog field has {len(data)} bytes, at most {CUSTOM_DATALOG_FIELD_MAX} allowed"
            )
        yield from self._write_property(
            ObjectType.CUSTOM_DATALOG_FIELD, 0, Property.VALUE, data, ADDRESS_GATEWAY
        )
        return None

    # File transfer (section 4.8) -------------------------------------------------------------
    def _list_datalog_files(self) -> Operation[list[str]]:
        """Names of the datalog files on the gateway's SD card (``LGYYMMDD.CSV``)."""
        data = yield from self._transfer(FILE_OBJECT_DIRECTORY, b"")
        text = data.decode("ascii", errors="replace")
        return [
            name.strip() for name in text.replace("\r", "\n").split("\n") if name.strip("\0 \t")
        ]

    def _download_datalog_file(self, name: str) -> Operation[bytes]:
        """The content of one datalog file from the SD card."""
        name = name.strip()
        if not name or any(c in name for c in "/\\\r\n\0"):
            raise ValidationError(f"invalid datalog file name {name!r}")
        try:
            data = name.encode("ascii") + b"\n"
        except UnicodeEncodeError:
            raise ValidationError(f"datalog file name {name!r} is not ASCII") from None
        return (yield from self._transfer(FILE_OBJECT_FILE, data))

    def _transfer_request(
        self, object_id: int, prop: int, data: bytes = b"", check: Any = None
    ) -> Request:
        return Request(
            Service.READ,
            ObjectType.DATALOG_TRANSFER,
            object_id,
            prop,
            data,
            dst=ADDRESS_GATEWAY,
            src=self._session.src,
            response_properties=_TRANSFER_ANSWERS,
            check=check,
        )

    def _transfer(self, object_id: int, start_data: bytes) -> Operation[bytes]:
        """Run a transfer to its end, restarting it (after an abort) a few times if needed."""
        restarts = 0
        while True:
            try:
                return (yield from self._transfer_once(object_id, start_data))
            except (XcomTimeout, LinkError, _TransferLost) as exc:
                if restarts >= self.file_restarts:
                    if isinstance(exc, _TransferLost):
                        raise XcomTimeout(f"file transfer failed: {exc}") from None
                    raise
                restarts += 1
                log.info("file transfer restarts (%s)", exc)
                try:
                    yield from self._session.exchange(
                        self._transfer_request(object_id, Property.SD_ABORT), retries=0
                    )
                except XcomError:
                    pass

    def _transfer_once(self, object_id: int, start_data: bytes) -> Operation[bytes]:
        """One START...FINISH sequence: ACK after each good block, NACK when one is lost.

        The protocol numbers no blocks, so two cases look alike: the answer to our ACK
        was lost (the gateway moved on) or the ACK itself was (it did not). A NACK tells
        them apart: it makes the gateway send again the block it is at, and if that is
        the block we already hold, our ACK never arrived and is sent again. After a NACK
        a second copy of a block may still be on its way: until the next block arrives,
        a copy of the block just stored is skipped, never stored twice. (A file with two
        identical consecutive 512-byte blocks would defeat this; datalog lines all carry
        their own time.)
        """
        blocks: list[bytes] = []
        last: list[bytes | None] = [None]

        def not_a_copy(frame: Frame) -> bool:
            return not (
                last[0] is not None
                and frame.property_id == Property.SD_DATABLOCK
                and frame.data == last[0]
            )

        start = self._transfer_request(object_id, Property.SD_START, start_data)
        ack = self._transfer_request(object_id, Property.SD_ACK_CONTINUE)
        ack_after_nack = self._transfer_request(
            object_id, Property.SD_ACK_CONTINUE, check=not_a_copy
        )
        nack = self._transfer_request(object_id, Property.SD_NACK_RETRY)
        session = self._session
        request = start
        failures = 0
        copies_possible = False
        while True:
            try:
                frame = yield from session.exchange(request, retries=0)
            except (XcomTimeout, LinkError) as exc:
                failures += 1
                if failures > session.retries + 2:
                    raise
                if isinstance(exc, LinkError):
                    session.mark_broken()
                if request is not start:
                    request = nack  # START again simply restarts the file
                    copies_possible = True
                continue
            except DeviceError as exc:
                if (
                    exc.code in (ErrorCode.OBJECT_PROPERTY_INVALID, ErrorCode.INVALID_FRAME)
                    and request is not start
                ):
                    raise _TransferLost(str(exc)) from None
                raise
            if request is nack and not not_a_copy(frame):
                request = ack_after_nack  # the gateway is still at our block: ACK again
                continue
            failures = 0
            if frame.property_id == Property.SD_FINISH:
                blocks.append(bytes(frame.data))
                return b"".join(blocks)
            if frame.property_id != Property.SD_DATABLOCK:
                raise _TransferLost(
                    f"unexpected transfer answer property 0x{frame.property_id:02X}"
                )
            if request is ack or request is ack_after_nack:
                # An answer to an ACK comes after every copy sent before it.
                copies_possible = False
            blocks.append(bytes(frame.data))
            last[0] = bytes(frame.data)
            request = ack_after_nack if copies_possible else ack

    # Scan -------------------------------------------------------------------------------------
    def _scan(
        self, families: Iterable[Family | str] | None = None, *, stop_at_gap: bool = True
    ) -> Operation[list[DeviceInfo]]:
        """Find the devices present: family, address, firmware from the catalog's version infos.

        An address that answers DEVICE_NOT_FOUND costs one request (no retries); with
        ``stop_at_gap`` the family's search ends there, since devices are numbered 1, 2...
        """
        chosen = _SCAN_FAMILIES if families is None else tuple(Family(f) for f in families)
        devices: list[DeviceInfo] = []
        for family in chosen:
            infos = self._version_infos(family)
            if infos is None:
                log.warning("no version infos for %s in the catalog; skipped", family.value)
                continue
            _multicast, first, last = FAMILY_ADDRESSES[family]
            for address in range(first, last + 1):
                values: dict[str, Any] = {}
                present = True
                for key, dp in infos.items():
                    if dp is None:
                        continue
                    try:
                        frame = yield from self._read_property(
                            ObjectType.USER_INFO, dp.number, Property.VALUE, address
                        )
                    except DeviceError as exc:
                        if exc.code == ErrorCode.DEVICE_NOT_FOUND:
                            present = False
                            break
                        continue  # the device exists but lacks this info
                    try:
                        values[key] = self.catalog.decode(dp, frame.data)
                    except XcomError:
                        continue
                if not present:
                    if stop_at_gap:
                        break
                    continue
                firmware = None
                if "soft_msb" in values and "soft_lsb" in values:
                    firmware = _version(values["soft_msb"], values["soft_lsb"])
                fid = None
                if "fid_msb" in values and "fid_lsb" in values:
                    fid = ((int(values["fid_msb"]) & 0xFFFF) << 16) | (
                        int(values["fid_lsb"]) & 0xFFFF
                    )
                id_type = int(values["id_type"]) if "id_type" in values else None
                found_family = family
                if family is Family.BSP and not values:
                    # The battery address answers but not with the BSP's identification:
                    # an Xcom-CAN BMS (it has no version infos of its own).
                    if (yield from self._answers_bms_info(address)):
                        found_family = Family.XCOM_CAN_BMS
                name = "bms" if found_family is Family.XCOM_CAN_BMS else device_name(address)
                devices.append(DeviceInfo(address, found_family, name, firmware, id_type, fid))
        return devices

    def _answers_bms_info(self, address: int) -> Operation[bool]:
        """True if ``address`` answers an info only the Xcom-CAN BMS has."""
        bsp = {dp.number for dp in self.catalog.datapoints(family=Family.BSP, kind="info")}
        only_bms = [
            dp
            for dp in self.catalog.datapoints(family=Family.XCOM_CAN_BMS, kind="info")
            if dp.number not in bsp and dp.format is not None
        ]
        if not only_bms:
            return False
        try:
            yield from self._read_property(
                ObjectType.USER_INFO, only_bms[0].number, Property.VALUE, address
            )
        except DeviceError:
            return False
        return True

    def _version_infos(self, family: Family) -> dict[str, Any] | None:
        """The catalog's identification infos of a family (SOFT msb/lsb, ID type, FID)."""
        wanted = {
            "soft_msb": "id soft msb",
            "soft_lsb": "id soft lsb",
            "id_type": "id type",
            "fid_msb": "id fid msb",
            "fid_lsb": "id fid lsb",
        }
        found: dict[str, Any] = {}
        for dp in self.catalog.datapoints(family=family, kind="info"):
            name = dp.name.strip().lower()
            for key, text in wanted.items():
                if name == text and key not in found:
                    found[key] = dp
        if "soft_msb" not in found:
            return None
        return found


class _TransferLost(XcomError):
    """The gateway lost track of a file transfer: start it again."""


def _sync_op(method: Callable[..., Operation[T]]) -> Callable[..., T]:
    @functools.wraps(method)
    def run(self: XcomClient, *args: Any, **kwargs: Any) -> T:
        self._ensure_open()
        return run_sync(self.transport, method(self, *args, **kwargs))

    run.__name__ = method.__name__.lstrip("_")
    return run


def _async_op(method: Callable[..., Operation[T]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(self: AsyncXcomClient, *args: Any, **kwargs: Any) -> T:
        await self._ensure_open()
        async with self._lock:
            return await run_async(self.transport, method(self, *args, **kwargs))

    run.__name__ = method.__name__.lstrip("_")
    return run


_OPERATIONS = (
    "request",
    "read_property",
    "write_property",
    "read_info",
    "read_param",
    "write_param",
    "read_infos",
    "read_messages",
    "read_guid",
    "write_datalog_field",
    "list_datalog_files",
    "download_datalog_file",
    "scan",
)


def _client_options(
    timeout: float,
    retries: int,
    src: int,
    polite: PolitePolicy | None,
    catalog: Any,
    open_timeout: float | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    return dict(
        timeout=timeout,
        retries=retries,
        src=src,
        polite=polite,
        catalog=catalog,
        open_timeout=open_timeout,
        **options,
    )


class XcomClient(_Operations):
    """Blocking Xcom client over any ``Transport`` (or a transport URL).

    ``timeout`` is per try (the specification's 2 s), ``retries`` the extra tries after
    a timeout or a broken link; more tuning (backoff, busy_timeout, reconnect_timeout)
    goes to ``xcomlog.engine.Session``. Use as a context manager, or ``open``/``close``.
    """

    def __init__(
        self,
        transport: Transport | str,
        *,
        timeout: float = RESPONSE_TIMEOUT_S,
        retries: int = 2,
        src: int = ADDRESS_DTE,
        polite: PolitePolicy | None = None,
        catalog: Any = None,
        open_timeout: float | None = None,
        **session_options: Any,
    ) -> None:
        if isinstance(transport, str):
            transport = open_transport(transport)
        if not isinstance(transport, Transport):
            raise TypeError(
                f"XcomClient needs a blocking Transport, got {type(transport).__name__}"
            )
        self.transport = transport
        self._setup(
            **_client_options(timeout, retries, src, polite, catalog, open_timeout, session_options)
        )

    def open(self) -> XcomClient:
        if not self.transport.is_open:
            self.transport.open(self.open_timeout)
        return self

    def _ensure_open(self) -> None:
        if not self.transport.is_open and not self._session._broken:
            self.transport.open(self.open_timeout)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> XcomClient:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<XcomClient {self.transport.describe()}>"

    request = _sync_op(_Operations._request)
    read_property = _sync_op(_Operations._read_property)
    write_property = _sync_op(_Operations._write_property)
    read_info = _sync_op(_Operations._read_info)
    read_param = _sync_op(_Operations._read_param)
    write_param = _sync_op(_Operations._write_param)
    read_infos = _sync_op(_Operations._read_infos)
    read_messages = _sync_op(_Operations._read_messages)
    read_guid = _sync_op(_Operations._read_guid)
    write_datalog_field = _sync_op(_Operations._write_datalog_field)
    list_datalog_files = _sync_op(_Operations._list_datalog_files)
    download_datalog_file = _sync_op(_Operations._download_datalog_file)
    scan = _sync_op(_Operations._scan)


class AsyncXcomClient(_Operations):
    """asyncio Xcom client: the same operations as ``XcomClient``, awaitable.

    Takes an ``AsyncTransport``, a blocking ``Transport`` (converted with its
    ``as_async()``) or a URL. Concurrent calls on one client are serialised (one request
    at a time per link, as the protocol requires); drive many links concurrently with one
    client each.
    """

    def __init__(
        self,
        transport: AsyncTransport | Transport | str,
        *,
        timeout: float = RESPONSE_TIMEOUT_S,
        retries: int = 2,
        src: int = ADDRESS_DTE,
        polite: PolitePolicy | None = None,
        catalog: Any = None,
        open_timeout: float | None = None,
        **session_options: Any,
    ) -> None:
        import asyncio

        if isinstance(transport, str):
            transport = open_transport(transport)
        if isinstance(transport, Transport):
            transport = transport.as_async()
        if not isinstance(transport, AsyncTransport):
            raise TypeError(
                f"AsyncXcomClient needs an AsyncTransport, got {type(transport).__name__}"
            )
        self.transport = transport
        self._lock = asyncio.Lock()
        self._setup(
            **_client_options(timeout, retries, src, polite, catalog, open_timeout, session_options)
        )

    async def open(self) -> AsyncXcomClient:
        if not self.transport.is_open:
            await self.transport.open(self.open_timeout)
        return self

    async def _ensure_open(self) -> None:
        if not self.transport.is_open and not self._session._broken:
            await self.transport.open(self.open_timeout)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncXcomClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncXcomClient {self.transport.describe()}>"

    request = _async_op(_Operations._request)
    read_property = _async_op(_Operations._read_property)
    write_property = _async_op(_Operations._write_property)
    read_info = _async_op(_Operations._read_info)
    read_param = _async_op(_Operations._read_param)
    write_param = _async_op(_Operations._write_param)
    read_infos = _async_op(_Operations._read_infos)
    read_messages = _async_op(_Operations._read_messages)
    read_guid = _async_op(_Operations._read_guid)
    write_datalog_field = _async_op(_Operations._write_datalog_field)
    list_datalog_files = _async_op(_Operations._list_datalog_files)
    download_datalog_file = _async_op(_Operations._download_datalog_file)
    scan = _async_op(_Operations._scan)


assert all(hasattr(XcomClient, name) and hasattr(AsyncXcomClient, name) for name in _OPERATIONS)
assert inspect.iscoroutinefunction(AsyncXcomClient.read_info)

__all__ = [
    "AsyncXcomClient",
    "DeviceInfo",
    "MessageRecord",
    "PolitePolicy",
    "XcomClient",
]
