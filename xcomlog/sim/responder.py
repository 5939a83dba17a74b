"""Request -> response logic of the simulated Xcom-232i and the devices behind it.

:class:`Simulator` answers every service of the specification from the catalog: user
infos, parameters (with flash-write accounting), multicast and phase addresses, multi
infos, messages, GUID, the custom datalog field and the SD-card file transfer, with the
specification's error code for every wrong request. ``handle`` is pure and in-process;
the links in :mod:`xcomlog.sim.links` carry it over a pty, TCP or UDP.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import codec
from ..exceptions import CatalogError, DeviceError, FrameError, ValidationError, ValueFormatError
from ..protocol import (
    ADDRESS_GATEWAY,
    ADDRESS_PHASE_L1,
    AGGREGATION_DEVICE_MAX,
    AGGREGATION_DEVICE_MIN,
    CUSTOM_DATALOG_FIELD_MAX,
    FILE_BLOCK_SIZE,
    FILE_OBJECT_DIRECTORY,
    FILE_OBJECT_FILE,
    FLASH_SAVE_PARAMETERS,
    FORMAT_SIZES,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_REQUEST_ITEM_SIZE,
    PARAM_CLEAR_RESTART_FLAG,
    PARAM_DATE,
    STRING_ENCODING,
    AccessLevel,
    Aggregation,
    ErrorCode,
    Family,
    Format,
    FrameFlag,
    MultiInfoFlag,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
    family_of_address,
    is_multicast,
    is_phase,
)
from .faults import FaultConfig, FaultInjector
from .installation import Device, Installation
from .messages import MessageLog, seed_history
from .sdcard import SdCard
from .values import ValueModel

log = logging.getLogger("xcomlog.sim")

_INFO_READ_PROPERTIES = frozenset({Property.VALUE, Property.VALUE_QSP, Property.UNSAVED_VALUE_QSP})
_PARAM_PROPERTIES = frozenset(
    {
        Property.VALUE_QSP,
        Property.MIN_QSP,
        Property.MAX_QSP,
        Property.LEVEL_QSP,
        Property.UNSAVED_VALUE_QSP,
    }
)
_CLOCK_PROPERTIES = frozenset({Property.VALUE_QSP, Property.UNSAVED_VALUE_QSP})
_INT_FORMATS = frozenset(
    {Format.SHORT_ENUM, Format.LONG_ENUM, Format.INT32, Format.FORMAT, Format.ERROR}
)
_RESPONSE_FLAG = int(ServiceFlag.RESPONSE)
_DATALOGGER_SUPPORTED = int(FrameFlag.DATALOGGER_SUPPORTED)
_SD_CARD_PRESENT = int(FrameFlag.SD_CARD_PRESENT)
_NEW_DATALOG_FILE = int(FrameFlag.NEW_DATALOG_FILE)
_RESTARTED = int(FrameFlag.RESTARTED)
_MESSAGE_PENDING = int(FrameFlag.MESSAGE_PENDING)
#: Another DTE on a shared link (foreign frames are addressed to it).
OTHER_CLIENT = 2
#: Reads whose answer never changes within a second are cached up to this many entries.
_CACHE_LIMIT = 4096


#: How often each severity of message shows up: mostly notices, some warnings, few errors.
_SEVERITY_WEIGHTS = {"": 14, "Warning": 5, "Error": 1, "Halted": 0}


def _message_pool(messages: dict) -> list[int]:
    """Message numbers repeated by weight, so ``rng.choice`` draws a plausible mix."""
    pool: list[int] = []
    for number in sorted(messages):
        severity = getattr(messages[number], "severity", "")
        pool.extend([number] * _SEVERITY_WEIGHTS.get(severity, 1))
    return pool or sorted(messages)


class _Refusal(Exception):
    """Internal: the request is answered with this error code."""

    def __init__(self, code: int) -> None:
        self.code = int(code)


def _normalize(fmt: Format | None, value: Any) -> Any:
    """``value`` as the wire would give it back (float32 rounding, int for enums)."""
    if fmt is None:
        return None
    if fmt in _INT_FORMATS:
        return int(round(float(value)))
    if fmt is Format.BOOL:
        return bool(round(float(value)))
    if fmt is Format.FLOAT:
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    return value


class _Param:
    """RAM and flash value of one parameter on one device, and its level."""

    __slots__ = ("flash", "ram", "level")

    def __init__(self, value: Any, level: AccessLevel) -> None:
        self.flash = value
        self.ram = value
        self.level = level


class _Transfer:
    """An SD-card transfer in progress: the data and the block last sent."""

    __slots__ = ("object_id", "data", "offset", "last_property", "name")

    def __init__(self, object_id: int, data: bytes, name: str) -> None:
        self.object_id = object_id
        self.data = data
        self.offset = 0
        self.last_property = Property.SD_DATABLOCK
        self.name = name


class Simulator:
    """A virtual Xcom-232i with its installation. See the module docstring.

    ``strict`` answers reads at multicast addresses with the specification's
    SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED instead of the first device's value.
    ``start_time`` (posix seconds) and ``speed`` run a simulated clock (``speed=60`` makes
    a minute pass every second); by default the simulator follows the wall clock.
    ``restarted`` is the restarted bit at start-up (a real gateway sets it; write the
    signal parameter {5104} to clear it).
    """

    def __init__(
        self,
        installation: Installation | None = None,
        *,
        strict: bool = False,
        faults: FaultConfig | None = None,
        seed: int = 0,
        catalog: Any = None,
        start_time: float | None = None,
        speed: float = 1.0,
        access_level: AccessLevel = AccessLevel.QSP,
        restarted: bool = True,
        message_every_s: float = 900.0,
    ) -> None:
        if catalog is None:
            from ..catalog import load_catalog

            catalog = load_catalog()
        self.installation = installation or Installation()
        self.catalog = catalog = self.installation.device_catalog(catalog)  # 12/24/48 V limits
        self.strict = strict
        self.seed = seed
        self.access_level = AccessLevel(access_level)
        self.message_every_s = message_every_s
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._faults = faults or FaultConfig()
        self.injector = FaultInjector(self._faults, seed)
        self._speed = float(speed)
        self._m0 = time.monotonic()
        self._t0 = time.time() if start_time is None else float(start_time)
        self._clock_offset = 0.0

        inst = self.installation
        self.devices: dict[int, Device] = {d.address: d for d in inst.devices}
        self._family_devices: dict[Family, list[Device]] = {}
        for d in inst.devices:
            self._family_devices.setdefault(d.family, []).append(d)
        self._infos: dict[Family, dict[int, Any]] = {}
        self._params: dict[Family, dict[int, Any]] = {}
        for family in self._family_devices:
            self._infos[family] = {
                dp.number: dp for dp in catalog.datapoints(family=family, kind="info")
            }
            self._params[family] = {
                dp.number: dp for dp in catalog.datapoints(family=family, kind="parameter")
            }
            # Menus answer level_qsp like parameters do.
            for dp in catalog.datapoints(family=family, kind="menu"):
                self._params[family].setdefault(dp.number, dp)
        # Multi-info: which present family holds each info number (7xxx: BSP or BMS).
        self._multi_family: dict[int, Family] = {}
        for family, infos in self._infos.items():
            for number in infos:
                self._multi_family.setdefault(number, family)
        self.model = ValueModel(
            inst, {f: list(v.values()) for f, v in self._infos.items()}, seed=seed
        )
        self._pinned: dict[tuple[int, int], Any] = {}
        self._replay: Callable[[int, int, float], float | None] | None = None
        if inst.replay:
            from .replay import Replay

            self._replay = Replay(inst.replay, inst, self._infos).value
        self._param_state: dict[tuple[int, int], _Param] = {}
        self.flash_writes: dict[tuple[int, int], int] = {}
        self.requests = 0
        self.restarted = restarted
        self.custom_datalog_field = ""
        self.messages = MessageLog()
        self.sdcard = SdCard(self) if inst.sd_card else None
        self._transfers: dict[int, _Transfer] = {}
        self._second = -1
        self._date = None
        self._cache: dict[tuple, bytes] = {}
        self._multi_values: dict[tuple[int, int], float] = {}
        self._flags = 0
        self._next_message = 0.0
        now = self.now()
        types = _message_pool(getattr(catalog, "messages", {}) or {})
        sources = [d.address for d in inst.devices if d.family is not Family.RCC]
        seed_history(
            self.messages, inst.messages, int(self.device_time(now)), types, sources, self._rng
        )
        self._message_types = types
        self._message_sources = sources
        self._next_message = (
            now + self._rng.expovariate(1.0 / message_every_s) if message_every_s else 0.0
        )
        self._tick(now)

    # --- clock ---------------------------------------------------------------------

    def now(self) -> float:
        """Simulated posix time (UTC seconds)."""
        return self._t0 + (time.monotonic() - self._m0) * self._speed + self._clock_offset

    def set_time(self, t: float, speed: float | None = None) -> None:
        """Jump the simulated clock to posix time ``t`` (optionally changing its speed)."""
        with self._lock:
            self._t0 = float(t)
            self._m0 = time.monotonic()
            self._clock_offset = 0.0
            if speed is not None:
                self._speed = float(speed)
            self._second = -1
            self._tick(self.now())

    def device_time(self, t: float | None = None) -> int:
        """The devices' clock: local wall time of the installation as posix seconds."""
        return self.model.plant.device_time(self.now() if t is None else t)

    # --- faults --------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The active FaultConfig; assigning a new one re-seeds the injector."""
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        with self._lock:
            self._faults = config
            self.injector = FaultInjector(config, self.seed)

    # --- public helpers for tests and tools ----------------------------------------

    def value(self, address: int, number: int) -> Any:
        """What a read of info or parameter ``number`` at ``address`` would serve now."""
        with self._lock:
            self._tick(self.now())
            targets = self._resolve(address, Service.READ, lenient=True)
            device = targets[0]
            if number in self._infos.get(device.family, {}):
                dp = self._infos[device.family][number]
                return _normalize(dp.format or Format.FLOAT, self._info_value(device, number))
            if number in self._params.get(device.family, {}):
                return self._param(device, number).flash
            raise CatalogError(f"no info or parameter {number} on {device.name}")

    def set_value(self, address: int, number: int, value: Any) -> None:
        """Pin user info ``number`` of the device(s) at ``address`` to ``value`` until cleared."""
        with self._lock:
            for device in self._resolve(address, Service.WRITE, lenient=True):
                if number not in self._infos.get(device.family, {}):
                    raise CatalogError(f"no info {number} on {device.name}")
                self._pinned[(device.address, number)] = value
            self._invalidate()

    def clear_value(self, address: int | None = None, number: int | None = None) -> None:
        """Remove pins (all of them, or those matching ``address`` and/or ``number``)."""
        with self._lock:
            for key in list(self._pinned):
                if (address is None or key[0] == address) and (number is None or key[1] == number):
                    del self._pinned[key]
            self._invalidate()

    def add_message(self, message_type: int, source: int, timestamp: int | None = None) -> None:
        """A device reports a message: stored in the log, the pending flag is set."""
        with self._lock:
            self.messages.add(
                message_type, source, self.device_time() if timestamp is None else timestamp
            )
            self._invalidate()

    def restart(self) -> None:
        """Simulate a restart of the gateway: the restarted flag is set again."""
        with self._lock:
            self.restarted = True
            self._transfers.clear()
            self._invalidate()

    def parameter(self, address: int, number: int) -> tuple[Any, Any]:
        """(flash value, RAM value) of a parameter on one device."""
        with self._lock:
            device = self._resolve(address, Service.READ, lenient=True)[0]
            if number not in self._params.get(device.family, {}):
                raise CatalogError(f"no parameter {number} on {device.name}")
            state = self._param(device, number)
            return state.flash, state.ram

    @property
    def frame_flags(self) -> int:
        """The frame_flags byte the next response carries."""
        with self._lock:
            self._tick(self.now())
            return self._flags

    # --- the request path ----------------------------------------------------------

    def handle(self, request: bytes) -> list[bytes]:
        """Byte chunks answering one request frame (empty: no answer, e.g. bad checksum)."""
        try:
            frame = codec.decode_frame(request)
        except FrameError:
            out: list[bytes] = []
            for frame in codec.StreamDecoder().feed(request):
                out.extend(self.handle_frame(frame))
            return out
        return self.handle_frame(frame)

    def handle_frame(self, frame: Any) -> list[bytes]:
        """Byte chunks answering one decoded request, faults applied."""
        if frame.service_flags & _RESPONSE_FLAG:
            return []  # a response (another client's, or an echo) is not a request
        injector = self.injector
        with self._lock:
            self.requests += 1
            if not self._faults._active:  # type: ignore[attr-defined]
                return [self.respond(frame)]
            if injector.restart_due():
                self.restart()
                return []
            if injector.busy():
                response = self._error(frame, ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
            else:
                response = self.respond(frame)
            foreign = None
            if self._faults.foreign_frames:
                foreign = self._foreign_response(frame)
            return injector.mangle(response, frame.src, foreign)

    def respond(self, frame: Any) -> bytes:
        """The one response frame for a decoded request (no faults)."""
        now = self.now()
        if int(now) != self._second:
            self._tick(now)
        else:
            self._update_flags()
        key = (
            frame.src,
            frame.dst,
            frame.service_id,
            frame.object_type,
            frame.object_id,
            frame.property_id,
            frame.data,
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            data, cacheable = self._dispatch(frame)
        except _Refusal as refusal:
            return self._error(frame, refusal.code)
        response = codec.encode_response(
            frame.service_id,
            frame.object_type,
            frame.object_id,
            frame.property_id if not isinstance(data, tuple) else data[0],
            data if not isinstance(data, tuple) else data[1],
            src=frame.dst,
            dst=frame.src,
            frame_flags=self._flags,
        )
        if cacheable and len(self._cache) < _CACHE_LIMIT:
            self._cache[key] = response
        return response

    def _error(self, frame: Any, code: int) -> bytes:
        return codec.encode_response(
            frame.service_id,
            frame.object_type,
            frame.object_id,
            frame.property_id,
            src=frame.dst,
            dst=frame.src,
            frame_flags=self._flags,
            error_code=int(code),
        )

    def _dispatch(self, frame: Any) -> tuple[Any, bool]:
        """(property data or (property_id, data), cacheable) for a request; _Refusal on error."""
        service = frame.service_id
        if service not in (Service.READ, Service.WRITE):
            raise _Refusal(ErrorCode.SERVICE_NOT_SUPPORTED)
        otype = frame.object_type
        if otype == ObjectType.USER_INFO:
            return self._user_info(frame), True
        if otype == ObjectType.PARAMETER:
            return self._parameter(frame), False
        if otype == ObjectType.MULTI_INFO:
            self._gateway_only(frame)
            if not self.installation.supports_multi_info:  # gateway firmware before 1.6.74
                raise _Refusal(ErrorCode.SERVICE_NOT_SUPPORTED)
            return self._multi_info(frame), True
        if otype == ObjectType.MESSAGE:
            self._gateway_only(frame)
            return self._message(frame), False
        if otype == ObjectType.GUID:
            self._gateway_only(frame)
            if service != Service.READ:
                raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
            return self.installation.guid_bytes(), True
        if otype == ObjectType.CUSTOM_DATALOG_FIELD:
            self._gateway_only(frame)
            return self._custom_field(frame), False
        if otype == ObjectType.DATALOG_TRANSFER:
            self._gateway_only(frame)
            return self._file_transfer(frame), False
        if otype == ObjectType.SCREEN:
            self._gateway_only(frame)
            raise _Refusal(ErrorCode.SCOM_ERROR_OBJECT_NOT_SUPPORTED)
        raise _Refusal(ErrorCode.TYPE_NOT_SUPPORTED)

    def _gateway_only(self, frame: Any) -> None:
        if frame.dst != ADDRESS_GATEWAY:
            if family_of_address(frame.dst) is None:
                raise _Refusal(ErrorCode.DEVICE_NOT_FOUND)
            raise _Refusal(ErrorCode.TYPE_NOT_SUPPORTED)

    # --- addressing ----------------------------------------------------------------

    def _resolve(self, address: int, service: int, lenient: bool = False) -> list[Device]:
        """The devices a request at ``address`` reaches (raises _Refusal or DeviceError)."""
        try:
            return self._targets(address, service, lenient)
        except _Refusal as refusal:
            if lenient:
                raise DeviceError(refusal.code, f"address {address}") from None
            raise

    def _targets(self, address: int, service: int, lenient: bool = False) -> list[Device]:
        device = self.devices.get(address)
        if device is not None:
            return [device]
        if is_multicast(address):
            family = family_of_address(address)
            if family is Family.BSP:
                family = self.installation.battery_family
            devices = self._family_devices.get(family, []) if family else []
            if not devices:
                raise _Refusal(ErrorCode.DEVICE_NOT_FOUND)
            if service == Service.READ:
                if self.strict and not lenient:
                    raise _Refusal(ErrorCode.SCOM_ERROR_MULTICAST_READ_NOT_SUPPORTED)
                return devices[:1]
            return devices
        if is_phase(address):
            n = address - ADDRESS_PHASE_L1 + 1
            devices = [d for d in self._family_devices.get(Family.XTENDER, []) if d.phase == n]
            if not devices:
                raise _Refusal(ErrorCode.DEVICE_NOT_FOUND)
            return devices[:1] if service == Service.READ else devices
        raise _Refusal(ErrorCode.DEVICE_NOT_FOUND)

    # --- user infos ----------------------------------------------------------------

    def _info_value(self, device: Device, number: int) -> float:
        key = (device.address, number)
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        return self.value_at(device.address, number, self.now())

    def value_at(self, address: int, number: int, t: float) -> float:
        """Info ``number`` of the device at ``address`` at posix time ``t`` (replay, else model)."""
        if self._replay is not None:
            replayed = self._replay(address, number, t)
            if replayed is not None:
                return replayed
        return self.model.value(address, number, t)

    def _user_info(self, frame: Any) -> bytes:
        targets = self._targets(frame.dst, frame.service_id)
        device = targets[0]
        infos = self._infos.get(device.family, {})
        dp = infos.get(frame.object_id)
        if dp is None:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        if frame.service_id == Service.WRITE:
            raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
        if frame.property_id not in _INFO_READ_PROPERTIES:
            raise _Refusal(ErrorCode.PROPERTY_NOT_SUPPORTED)
        return self._pack_info(dp, self._info_value(device, frame.object_id))

    def _pack_info(self, dp: Any, value: Any) -> bytes:
        fmt = dp.format or Format.FLOAT
        try:
            if fmt in _INT_FORMATS or fmt is Format.BOOL:
                return codec.pack_value(fmt, int(round(float(value))))
            if fmt is Format.STRING:
                return codec.pack_value(fmt, value if isinstance(value, str) else f"{value:g}")
            return codec.pack_value(fmt, float(value))
        except (ValueFormatError, ValueError, TypeError, OverflowError):
            raise _Refusal(ErrorCode.READ_PROPERTY_FAILED) from None

    # --- multi infos ---------------------------------------------------------------

    def _multi_info(self, frame: Any) -> bytes:
        if frame.object_id != MULTI_INFO_OBJECT_ID:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        if frame.service_id != Service.READ:
            raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
        data = frame.data
        if (
            not data
            or len(data) % MULTI_INFO_REQUEST_ITEM_SIZE
            or len(data) // 3 > MULTI_INFO_MAX_ITEMS
        ):
            raise _Refusal(ErrorCode.INVALID_DATA_LENGTH)
        items = codec.unpack_multi_info_request(data)
        values = self._multi_values
        out = []
        for item in items:
            v = values.get(item)
            if v is None:
                v = self._aggregate(item[0], item[1])
                values[item] = v
            out.append(v)
        ids = [i for i, _ in items]
        aggs = [a for _, a in items]
        return codec.pack_multi_info_response(self._multi_flags, self.device_time(), ids, aggs, out)

    def _aggregate(self, number: int, aggregation: int) -> float:
        family = self._multi_family.get(number)
        if family is None:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        devices = self._family_devices[family]
        if aggregation == Aggregation.MASTER:
            return float(self._info_value(devices[0], number))
        if AGGREGATION_DEVICE_MIN <= aggregation <= AGGREGATION_DEVICE_MAX:
            for d in devices:
                if d.index == aggregation:
                    return float(self._info_value(d, number))
            raise _Refusal(ErrorCode.DEVICE_NOT_FOUND)
        if aggregation in (Aggregation.AVERAGE, Aggregation.SUM):
            total = sum(float(self._info_value(d, number)) for d in devices)
            return total / len(devices) if aggregation == Aggregation.AVERAGE else total
        raise _Refusal(ErrorCode.INVALID_SERVICE_ARGUMENT)

    # --- parameters ----------------------------------------------------------------

    def _param(self, device: Device, number: int) -> _Param:
        key = (device.address, number)
        state = self._param_state.get(key)
        if state is None:
            dp = self._params[device.family][number]
            default = self.installation.parameter_default(dp, self._default(dp))
            state = _Param(default, dp.access_level)
            self._param_state[key] = state
        return state

    @staticmethod
    def _default(dp: Any) -> Any:
        fmt = dp.format
        if fmt is None:
            return None
        for candidate in (dp.default, dp.minimum, 0):
            if candidate is None:
                continue
            try:
                return _normalize(fmt, candidate) if fmt is not Format.STRING else str(candidate)
            except (TypeError, ValueError):
                continue
        return "" if fmt is Format.STRING else 0

    def _parameter(self, frame: Any) -> bytes:
        targets = self._targets(frame.dst, frame.service_id)
        params = self._params.get(targets[0].family, {})
        dp = params.get(frame.object_id)
        if dp is None:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        prop = frame.property_id
        if prop not in _PARAM_PROPERTIES:
            raise _Refusal(ErrorCode.PROPERTY_NOT_SUPPORTED)
        if frame.service_id == Service.READ:
            return self._read_parameter(targets[0], dp, prop)
        self._write_parameter(targets, dp, prop, frame.data)
        return b""

    def _read_parameter(self, device: Device, dp: Any, prop: int) -> bytes:
        state = self._param(device, dp.number)
        if prop == Property.LEVEL_QSP:
            return codec.pack_value(Format.SHORT_ENUM, int(state.level))
        fmt = dp.format
        if fmt is None:  # a menu has a level, no value
            raise _Refusal(ErrorCode.PROPERTY_NOT_SUPPORTED)
        if dp.number == PARAM_DATE and device.family is Family.RCC and prop in _CLOCK_PROPERTIES:
            value = self.device_time()  # the clock, whichever value property reads it
        elif prop == Property.VALUE_QSP:
            value = state.flash
        elif prop == Property.UNSAVED_VALUE_QSP:
            value = state.ram
        elif prop == Property.MIN_QSP:
            value = self._limit(dp, "minimum", min)
        else:
            value = self._limit(dp, "maximum", max)
        try:
            return codec.pack_value(fmt, value)
        except ValueFormatError:
            raise _Refusal(ErrorCode.READ_PROPERTY_FAILED) from None

    @staticmethod
    def _limit(dp: Any, which: str, pick: Callable) -> Any:
        limit = getattr(dp, which, None)
        if limit is None and dp.options:
            limit = pick(dp.options)
        if limit is None:
            return "" if dp.format is Format.STRING else 0
        return _normalize(dp.format, limit)

    def _write_parameter(self, targets: list[Device], dp: Any, prop: int, data: bytes) -> None:
        if prop in (Property.MIN_QSP, Property.MAX_QSP):
            raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
        if prop == Property.LEVEL_QSP:
            if len(data) != 2:
                raise _Refusal(ErrorCode.INVALID_DATA_LENGTH)
            new_level = int.from_bytes(data, "little")
            if new_level not in AccessLevel._value2member_map_:
                raise _Refusal(ErrorCode.INVALID_DATA)
            if self.access_level < AccessLevel.QSP:
                raise _Refusal(ErrorCode.ACCESS_DENIED)
            for device in targets:
                self._param(device, dp.number).level = AccessLevel(new_level)
                self._count_flash(device, dp.number)
            return
        fmt = dp.format
        if fmt is None:
            raise _Refusal(ErrorCode.PROPERTY_NOT_SUPPORTED)
        current_level = self._param(targets[0], dp.number).level
        if current_level == AccessLevel.VIEW_ONLY or dp.access_level == AccessLevel.VIEW_ONLY:
            raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
        if current_level > self.access_level:
            raise _Refusal(ErrorCode.ACCESS_DENIED)
        value = self._check_value(dp, fmt, data)
        if getattr(dp, "is_signal", False):
            self._signal(targets, dp)
            return
        for device in targets:
            self._store(device, dp, prop, value)
        self._invalidate()

    def _check_value(self, dp: Any, fmt: Format, data: bytes) -> Any:
        size = FORMAT_SIZES.get(fmt)
        if size is not None and len(data) != size:
            raise _Refusal(ErrorCode.INVALID_DATA_LENGTH)
        if fmt is Format.STRING and len(data) > CUSTOM_DATALOG_FIELD_MAX:
            raise _Refusal(ErrorCode.DATA_TOO_BIG)
        try:
            value = codec.unpack_value(fmt, data)
        except ValueFormatError:
            raise _Refusal(ErrorCode.INVALID_DATA) from None
        if getattr(dp, "is_signal", False):
            if value != 1:
                raise _Refusal(ErrorCode.INVALID_DATA)
            return value
        if fmt is Format.FLOAT and value != value:  # NaN
            raise _Refusal(ErrorCode.INVALID_DATA)
        low, high = dp.minimum, dp.maximum
        if fmt in (Format.FLOAT, Format.INT32) and not dp.options and low is not None:
            # Some parameters give no real range (5002 Date: min = max = 0).
            slack = 1e-6 * max(1.0, abs(low), abs(high or 0.0))
            if high is not None and low < high:
                if value < low - slack:
                    raise _Refusal(ErrorCode.DATA_TOO_SMALL)
                if value > high + slack:
                    raise _Refusal(ErrorCode.DATA_TOO_BIG)
        try:
            self.catalog.validate(dp, value)
        except ValidationError:
            raise _Refusal(ErrorCode.INVALID_DATA) from None
        return value

    def _store(self, device: Device, dp: Any, prop: int, value: Any) -> None:
        state = self._param(device, dp.number)
        number = dp.number
        if number == PARAM_DATE and device.family is Family.RCC:
            self._clock_offset += float(value) - self.device_time()
            return
        if prop == Property.UNSAVED_VALUE_QSP:
            state.ram = value
            return
        save_number = FLASH_SAVE_PARAMETERS.get(device.family)
        if number == save_number:
            # Writing "no" is stored in flash only when it changes (section 4.5.4).
            if value or state.flash != value:
                self._count_flash(device, number)
                state.flash = value
            state.ram = value
            return
        saving = True
        if save_number is not None and save_number in self._params.get(device.family, {}):
            saving = bool(self._param(device, save_number).ram)
        state.ram = value
        if saving:
            state.flash = value
            self._count_flash(device, number)

    def _count_flash(self, device: Device, number: int) -> None:
        key = (device.address, number)
        self.flash_writes[key] = self.flash_writes.get(key, 0) + 1

    def _signal(self, targets: list[Device], dp: Any) -> None:
        for device in targets:
            if device.family is Family.RCC and dp.number == PARAM_CLEAR_RESTART_FLAG:
                self.restarted = False
        self._invalidate()

    # --- messages, GUID, custom datalog field --------------------------------------

    def _message(self, frame: Any) -> bytes:
        if frame.service_id != Service.READ:
            raise _Refusal(ErrorCode.PROPERTY_IS_READ_ONLY)
        result = self.messages.read(frame.object_id)
        self._update_flags()
        if result is None:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        remaining, message = result
        return codec.pack_message(
            remaining, message.message_type, message.source, message.timestamp, message.value
        )

    def _custom_field(self, frame: Any) -> bytes:
        if frame.service_id != Service.WRITE:
            raise _Refusal(ErrorCode.SERVICE_NOT_SUPPORTED)
        if frame.object_id != 0 and frame.object_id != 1:
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        if frame.property_id != Property.VALUE:
            raise _Refusal(ErrorCode.PROPERTY_NOT_SUPPORTED)
        if len(frame.data) > CUSTOM_DATALOG_FIELD_MAX:
            raise _Refusal(ErrorCode.DATA_TOO_BIG)
        self.custom_datalog_field = bytes(frame.data).decode(STRING_ENCODING)
        return b""

    # --- SD-card file transfer -----------------------------------------------------

    def _file_transfer(self, frame: Any) -> tuple[int, bytes]:
        if self.sdcard is None:
            raise _Refusal(ErrorCode.FILE_OR_DIR_NOT_PRESENT)
        object_id = frame.object_id
        if object_id not in (FILE_OBJECT_DIRECTORY, FILE_OBJECT_FILE):
            raise _Refusal(ErrorCode.OBJECT_ID_NOT_FOUND)
        prop = frame.property_id
        client = frame.src
        if prop == Property.SD_START:
            if object_id == FILE_OBJECT_DIRECTORY:
                names = self.sdcard.names(self.now())
                transfer = _Transfer(
                    object_id, "".join(n + "\n" for n in names).encode("ascii"), ""
                )
            else:
                name = bytes(frame.data).split(b"\0")[0].decode("ascii", "replace").strip()
                content = self.sdcard.read(name, self.now())
                if content is None:
                    raise _Refusal(ErrorCode.FILE_OR_DIR_NOT_PRESENT)
                transfer = _Transfer(object_id, content, name)
            self._transfers[client] = transfer
            return self._send_block(client, transfer)
        transfer = self._transfers.get(client)
        if prop not in (
            Property.SD_ACK_CONTINUE,
            Property.SD_NACK_RETRY,
            Property.SD_ABORT,
            Property.SD_DATABLOCK,
        ):
            raise _Refusal(
                ErrorCode.OBJECT_PROPERTY_INVALID
                if prop in (0, Property.SD_FINISH)
                else ErrorCode.PROPERTY_NOT_SUPPORTED
            )
        if transfer is None or transfer.object_id != object_id:
            raise _Refusal(ErrorCode.OBJECT_PROPERTY_INVALID)
        if prop == Property.SD_ABORT:
            del self._transfers[client]
            return Property.SD_FINISH, b""
        if prop == Property.SD_ACK_CONTINUE:
            if transfer.last_property == Property.SD_FINISH:
                del self._transfers[client]
                raise _Refusal(ErrorCode.OBJECT_PROPERTY_INVALID)
            transfer.offset += FILE_BLOCK_SIZE
        return self._send_block(client, transfer)

    def _send_block(self, client: int, transfer: _Transfer) -> tuple[int, bytes]:
        block = transfer.data[transfer.offset : transfer.offset + FILE_BLOCK_SIZE]
        last = transfer.offset + FILE_BLOCK_SIZE >= len(transfer.data)
        transfer.last_property = Property.SD_FINISH if last else Property.SD_DATABLOCK
        if last and transfer.object_id == FILE_OBJECT_FILE and self.sdcard is not None:
            self.sdcard.mark_read(transfer.name)
            self._update_flags()
        return transfer.last_property, block

    # --- time passing ----------------------------------------------------------------

    def _invalidate(self) -> None:
        self._cache.clear()
        self._multi_values.clear()
        self._update_flags()

    def _update_flags(self) -> None:
        # Plain ints, not IntFlag arithmetic: this runs for every request.
        flags = _DATALOGGER_SUPPORTED
        sdcard = self.sdcard
        if sdcard is not None:
            flags |= _SD_CARD_PRESENT | (_NEW_DATALOG_FILE if sdcard.new_file else 0)
        if self.restarted:
            flags |= _RESTARTED
        if self.messages.pending:
            flags |= _MESSAGE_PENDING
        if flags != self._flags:
            self._flags = flags
            self._cache.clear()

    @property
    def _multi_flags(self) -> int:
        flags = 0
        present = self._family_devices
        if Family.XTENDER in present:
            flags |= MultiInfoFlag.XT_PRESENT
        if Family.BSP in present or Family.XCOM_CAN_BMS in present:
            flags |= MultiInfoFlag.BSP_PRESENT
        if Family.VARIOTRACK in present:
            flags |= MultiInfoFlag.VT_PRESENT
        if Family.VARIOSTRING in present:
            flags |= MultiInfoFlag.VS_PRESENT
        return int(flags)

    def _tick(self, now: float) -> None:
        """Once per simulated second: new values, new messages, a new datalog day."""
        self._second = int(now)
        self._cache.clear()
        self._multi_values.clear()
        if self.message_every_s and self._message_types and now >= self._next_message:
            while now >= self._next_message:
                self._next_message += self._rng.expovariate(1.0 / self.message_every_s)
            self.messages.add(
                self._rng.choice(self._message_types),
                self._rng.choice(self._message_sources),
                self.device_time(now),
            )
        if self.sdcard is not None:
            self.sdcard.tick(now)
        self._update_flags()

    def _foreign_response(self, frame: Any) -> bytes | None:
        """A response to another client's request, as a shared Moxa would relay it."""
        infos = self._infos.get(Family.XTENDER) or next(iter(self._infos.values()), {})
        devices = self._family_devices.get(Family.XTENDER) or next(
            iter(self._family_devices.values())
        )
        if not infos:
            return None
        number = self._rng.choice(list(infos))
        device = devices[0]
        try:
            data = self._pack_info(infos[number], self._info_value(device, number))
        except _Refusal:
            return None
        return codec.encode_response(
            Service.READ,
            ObjectType.USER_INFO,
            number,
            Property.VALUE,
            data,
            src=device.address,
            dst=OTHER_CLIENT if frame.src != OTHER_CLIENT else OTHER_CLIENT + 1,
            frame_flags=self._flags,
        )

    # --- links -----------------------------------------------------------------------

    def serve_tcp(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        baud: int | None = None,
        shared: bool = False,
    ):
        """A TCP server link (Moxa TCP-server mode); ``link.address`` is where to connect.

        ``shared=True``: every client receives every response (several clients sharing one
        serial port through the NPort).
        """
        from .links import TcpServerLink

        return TcpServerLink(self, host, port, baud=baud, shared=shared)

    def connect_tcp(self, host: str, port: int, *, baud: int | None = None, retry_s: float = 0.5):
        """A TCP client link (Moxa TCP-client mode) connecting out to a listening logger."""
        from .links import TcpClientLink

        return TcpClientLink(self, host, port, baud=baud, retry_s=retry_s)

    def serve_udp(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reply_port: int | None = None,
        baud: int | None = None,
    ):
        """A UDP link; answers go to the client's host at ``reply_port`` (Xcom-LAN)."""
        from .links import UdpLink

        return UdpLink(self, host, port, reply_port=reply_port, baud=baud)

    def serve_pty(self, baud: int | None = None):
        """A pseudo-terminal link; ``link.path`` is the tty to open with pyserial."""
        from .links import PtyLink

        return PtyLink(self, baud=baud)
