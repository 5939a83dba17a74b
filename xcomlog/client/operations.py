"""Every client operation, written once as a generator over the engine's I/O commands.

Values, parameters, multi-infos, messages, GUID and the datalog field are here; the scan
(``scan``) and SD-card file transfers (``transfer``) are mixed in. ``OPERATIONS`` names
the operations the blocking and asyncio clients expose (``xcomlog.client``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from .. import codec
from ..engine import (
    Operation,
    PolitePolicy,
    Request,
    Session,
    multi_info_aggregation,
)
from ..exceptions import (
    CatalogError,
    DeviceError,
    ValidationError,
)
from ..protocol import (
    ADDRESS_GATEWAY,
    CUSTOM_DATALOG_FIELD_MAX,
    FAMILY_ADDRESSES,
    GUID_SIZE,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_RESPONSE_HEADER_SIZE,
    MULTI_INFO_RESPONSE_ITEM_SIZE,
    NO_MULTI_INFO_ERRORS,
    NO_SUCH_MESSAGE_ERRORS,
    STRING_ENCODING,
    AccessLevel,
    Family,
    Format,
    FrameFlag,
    ObjectType,
    Property,
    Service,
    device_name,
    family_of_address,
    guid_from_bytes,
    parse_device,
)
from ..records import Frame
from .scan import ScanOperations
from .system_voltage import SystemVoltageOperations, check_system_voltage
from .transfer import FileTransferOperations

log = logging.getLogger("xcomlog.client")

T = TypeVar("T")

_VALUE_PROPERTIES = frozenset(
    {Property.VALUE_QSP, Property.MIN_QSP, Property.MAX_QSP, Property.UNSAVED_VALUE_QSP}
)

#: The operations both clients expose: each is the generator ``ClientOperations._<name>``.
OPERATIONS = (
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
    "detect_system_voltage",
)


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


def _first_address(family: Family) -> int:
    return FAMILY_ADDRESSES[family][1]


def _write_targets(address: int | str | Sequence[int | str] | None) -> list[int]:
    """The addresses a write names: one device, a list, or a multicast; never a default."""
    words = (
        [] if address is None else [address] if isinstance(address, (int, str)) else list(address)
    )
    if not words:
        raise ValidationError(
            "a write names its target: address= a device (101 or 'xt1'), a list "
            "([101, 102]) or a multicast to a family (100 or 'xt')"
        )
    targets: list[int] = []
    for word in words:
        if isinstance(word, bool):
            raise ValidationError(f"address {word!r} is not a device")
        try:
            targets.append(parse_device(word))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    if len(set(targets)) != len(targets):
        raise ValidationError(f"the write lists a device twice: {address!r}")
    return targets


class ClientOperations(ScanOperations, FileTransferOperations, SystemVoltageOperations):
    """Every client operation, written once as a generator over the engine's I/O commands."""

    def _setup(
        self,
        *,
        timeout: float,
        retries: int,
        src: int,
        polite: PolitePolicy | None,
        catalog: Any,
        open_timeout: float | None,
        system_voltage: int | None = None,
        **session_options: Any,
    ) -> None:
        self._session = Session(
            src=src, timeout=timeout, retries=retries, polite=polite, **session_options
        )
        self._catalog = catalog
        self.open_timeout = open_timeout
        self._system_voltage: int | None = None
        self._system_voltage_asked = False
        if system_voltage is not None:
            self._system_voltage = check_system_voltage(system_voltage, "system_voltage")

    @property
    def system_voltage(self) -> int | None:
        """12, 24 or 48: given (``system_voltage=``) or found before the first write that
        needs it (``detect_system_voltage``); None until then."""
        return self._system_voltage

    # Properties shared by both clients ---------------------------------------------------
    @property
    def session(self) -> Session:
        return self._session

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from ..catalog import load_catalog

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
        address: int | str | Sequence[int | str] | None = None,
        *,
        flash: bool = False,
        fmt: Format | None = None,
    ) -> Operation[None]:
        """Write parameter ``number`` to ``address``: RAM (unsaved value) unless ``flash=True``.

        ``address`` names the target, there is no default: a device (``101`` or
        ``"xt1"``), a list of them (``[101, 102]``, written in turn) or a multicast to a
        whole family (``100`` or ``"xt"``). Flash survives a restart but endures only about
        1000 writes per parameter (section 4.5.4), so it is never the default. The value
        is validated against the catalog (format, range, menu options, level) before
        anything is sent; battery-voltage limits are those of the installation's system
        voltage (``system_voltage=``, else found from the installation on first need).
        """
        targets = _write_targets(address)
        prop = Property.VALUE_QSP if flash else Property.UNSAVED_VALUE_QSP
        writes: list[tuple[int, bytes]] = []
        for target in targets:
            if fmt is not None:
                writes.append((target, codec.pack_value(Format(fmt), value)))
                continue
            dp, target = self._datapoint(number, "parameter", target)
            if dp.format is None:
                raise ValidationError(f"parameter {number} ({dp.name}) has no value to write")
            volts = None
            if dp.scales_with_system_voltage:
                volts = yield from self._known_system_voltage()
            checked = self.catalog.validate(dp, value, system_voltage=volts)
            writes.append((target, codec.pack_value(dp.format, checked)))
        for target, data in writes:  # every target checked before the first is sent
            yield from self._write_property(ObjectType.PARAMETER, number, prop, data, target)
        return None

    def _known_system_voltage(self) -> Operation[int | None]:
        """The system voltage: given, found once from the installation, else None (48 V)."""
        if self._system_voltage is None and not self._system_voltage_asked:
            if (yield from self._detect_system_voltage()) is None:
                log.warning(
                    "no device tells the system voltage: checking against the appendix's "
                    "48 V limits (give system_voltage= / --system-voltage)"
                )
        return self._system_voltage

    def _read_infos(
        self,
        items: Iterable[tuple[int, int] | tuple[int, int, int]],
        *,
        on_error: str = "raise",
    ) -> Operation[dict[tuple[int, ...], Any]]:
        """Many user infos at once: ``{item: value}``, keyed and ordered as requested.

        Items are ``(number, address)`` or ``(number, address, aggregation)``; each key is
        the item as passed (``read_infos([(3000, 101)])`` gives ``{(3000, 101): 51.2}``).
        They go in multi-info requests of at most 76 (section 4.9); a gateway without
        that service is read one info at a time instead. Multi-info values are float32 on
        the wire and come back as the datapoint's type. ``on_error="skip"`` leaves out
        infos a device refuses (single reads only) instead of raising.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        keys: list[tuple[int, ...]] = []
        wanted: list[tuple[int, int, int]] = []
        for item in items:
            if len(item) == 3:
                number, address, aggregation = item  # type: ignore[misc]
            else:
                number, address = item  # type: ignore[misc]
                aggregation = multi_info_aggregation(address)
            keys.append(tuple(item))
            wanted.append((int(number), int(address), int(aggregation)))
        found: dict[int, Any] = {}  # position in the request -> value
        session = self._session
        position = 0
        if session.multi_info_supported is not False:
            while position < len(wanted):
                batch = wanted[position : position + MULTI_INFO_MAX_ITEMS]
                try:
                    frame = yield from self._multi_info(batch)
                except DeviceError as exc:
                    if exc.code in NO_MULTI_INFO_ERRORS and session.multi_info_supported is None:
                        # said once per session: the gateway's firmware will not change
                        log.warning(
                            "the gateway has no multi-info service (%s; firmware before "
                            "1.6.74): reading user infos one by one",
                            exc.name,
                        )
                        session.multi_info_supported = False
                        break
                    raise
                session.multi_info_supported = True
                decoded = codec.decode_multi_info(frame.data)
                for i, ((number, address, _), value) in enumerate(
                    zip(batch, decoded.values.tolist(), strict=True), start=position
                ):
                    found[i] = self._typed(number, address, value)
                position += len(batch)
        for i in range(position, len(wanted)):
            number, address, _ = wanted[i]
            try:
                found[i] = yield from self._read_info(number, address)
            except (DeviceError, CatalogError, ValidationError) as exc:
                if on_error == "raise":
                    raise
                log.debug("skipped info %d at %s: %s", number, device_name(address), exc)
        return {keys[i]: found[i] for i in range(len(wanted)) if i in found}

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
        """The installation's GUID (section 6.1): one 128-bit little-endian integer."""
        frame = yield from self._read_property(ObjectType.GUID, 0, Property.NONE, ADDRESS_GATEWAY)
        if len(frame.data) != GUID_SIZE:
            raise ValidationError(f"GUID answer has {len(frame.data)} bytes, expected {GUID_SIZE}")
        return guid_from_bytes(frame.data)

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
