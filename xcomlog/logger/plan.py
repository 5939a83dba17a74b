"""The polling plan: the configuration compiled once into ready-to-send request frames.

User infos are packed into multi-info frames of at most 76 items, each item carrying
the aggregation that selects its device (1-15: the device index). Parameters, and user
infos of gateways without the multi-info service, are single reads. Every frame is
encoded here, once, as a ``PlannedRead`` (the engine's ``Request`` plus the points its
answer carries); the read loop sends them and the engine matches their answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import codec
from ..engine import Request, multi_info_aggregation
from ..exceptions import CatalogError, ConfigError, ValidationError
from ..protocol import (
    ADDRESS_GATEWAY,
    CHECKSUM_SIZE,
    FORMAT_SIZES,
    HEADER_SIZE,
    MESSAGE_DATA_SIZE,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_REQUEST_ITEM_SIZE,
    MULTI_INFO_RESPONSE_HEADER_SIZE,
    MULTI_INFO_RESPONSE_ITEM_SIZE,
    SERVICE_HEADER_SIZE,
    Family,
    Format,
    ObjectType,
    Property,
    Service,
)
from .config import (
    ENERGY_INFOS,
    ESSENTIAL_INFOS,
    DeviceSpec,
    GroupConfig,
    PointSpec,
    SiteConfig,
    _family_word,
    parse_device_spec,
)

log = logging.getLogger("xcomlog.logger")

#: Request kinds.
MULTI = 0  # multi-info frame of user infos
INFO = 1  # single user info read
PARAM = 2  # single parameter read
MESSAGE = 3  # message object read at the gateway

_FRAME_OVERHEAD = HEADER_SIZE + SERVICE_HEADER_SIZE + CHECKSUM_SIZE


@dataclass(frozen=True)
class Point:
    """One resolved datapoint of one device."""

    address: int
    number: int
    family: Family
    kind: str  # "info" or "parameter"
    name: str
    unit: str
    format: Format | None
    short: str = field(default="", compare=False)  # the RCC's short name, for the status line

    @property
    def label(self) -> tuple:
        """The label row the dataset stores: (address, number, name, unit, family, kind)."""
        return (self.address, self.number, self.name, self.unit, self.family.value, self.kind)


@dataclass(eq=False, kw_only=True)
class PlannedRead(Request):
    """An engine ``Request`` of the plan, with what is needed to use its answer."""

    kind: int
    response_size: int  # bytes of a successful answer, for wire accounting
    points: tuple[Point, ...]
    # multi-info only: the expected answer items, in request order
    ids: np.ndarray | None = None  # uint16
    aggregations: np.ndarray | None = None  # uint8
    addresses: np.ndarray | None = None  # uint16
    fallback: tuple[PlannedRead, ...] = ()  # single reads when multi-info is refused

    @property
    def values(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:  # short: plans hold thousands of these
        kind = ("multi", "info", "param", "message")[self.kind]
        return f"PlannedRead({kind}, dst={self.dst}, object={self.object_id}, values={self.values})"


@dataclass
class GroupPlan:
    """The requests of one group, sent one after the other every ``interval`` seconds."""

    name: str
    interval: float
    offset: float
    requests: list[PlannedRead]
    single_infos: bool = False  # multi-info replaced by single reads

    @property
    def values(self) -> int:
        return sum(r.values for r in self.requests)

    @property
    def wire_bytes(self) -> int:
        """Bytes on the wire for one cycle, requests plus successful answers."""
        return sum(len(r.frame) + r.response_size for r in self.requests)

    def infos_without_multi(self) -> None:
        """Use single user-info reads for this group (gateway without multi-info)."""
        if self.single_infos:
            return
        requests: list[PlannedRead] = []
        for request in self.requests:
            requests.extend(request.fallback if request.kind == MULTI else (request,))
        self.requests = requests
        self.single_infos = True


@dataclass
class SitePlan:
    """Everything one site polls, compiled from its configuration and its devices."""

    site: str
    src: int
    devices: tuple[DeviceSpec, ...]
    groups: list[GroupPlan]
    points: dict[tuple[int, int], Point] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _message_requests: dict[int, PlannedRead] = field(default_factory=dict)

    @property
    def labels(self) -> list[tuple]:
        """Label rows of every point, for DatasetWriter.describe."""
        return [self.points[key].label for key in sorted(self.points)]

    def message_request(self, index: int = 0) -> PlannedRead:
        """The read of message ``index`` at the gateway (0: the newest), encoded once."""
        request = self._message_requests.get(index)
        if request is None:
            request = PlannedRead(
                Service.READ,
                ObjectType.MESSAGE,
                index,
                Property.NONE,
                src=self.src,
                dst=ADDRESS_GATEWAY,
                kind=MESSAGE,
                response_size=_FRAME_OVERHEAD + MESSAGE_DATA_SIZE,
                points=(),
            )
            self._message_requests[index] = request
        return request


# --- resolving points -----------------------------------------------------------------------


def _in_scope(devices: Sequence[DeviceSpec], group: GroupConfig, where: str) -> list[DeviceSpec]:
    """The site's devices a group applies to."""
    if group.devices is None:
        return list(devices)
    chosen: list[DeviceSpec] = []
    for word in group.devices:
        family = _family_word(word)
        if family is not None and word not in ("gateway", "xcom"):
            chosen.extend(d for d in devices if d.family is family)
        else:
            spec = parse_device_spec(word, where)
            chosen.extend(d for d in devices if d == spec)
    return [d for d in devices if d in chosen]


def _point_scope(devices: list[DeviceSpec], spec: PointSpec) -> list[DeviceSpec]:
    if spec.address is not None:
        return [d for d in devices if d.address == spec.address and d.family is spec.family]
    if spec.family is not None:
        return [d for d in devices if d.family is spec.family]
    return devices


def _make_point(device: DeviceSpec, dp) -> Point:
    return Point(
        device.address,
        int(dp.number),
        device.family,
        dp.kind,
        dp.name,
        dp.unit or "",
        dp.format,
        getattr(dp, "short_name", "") or "",
    )


def _readable(dp) -> bool:
    return dp.kind in ("info", "parameter") and dp.format is not None


def resolve_points(
    catalog, devices: Sequence[DeviceSpec], group: GroupConfig, where: str, warnings: list[str]
) -> list[Point]:
    """Every (device, datapoint) a group asks for, in order, without duplicates."""
    scope = _in_scope(devices, group, where)
    out: dict[tuple[int, int], Point] = {}

    def add(device: DeviceSpec, dp) -> None:
        if _readable(dp):
            out.setdefault((device.address, int(dp.number)), _make_point(device, dp))

    for spec in group.points:
        targets = _point_scope(scope, spec)
        if spec.preset is not None:
            for device in targets:
                if spec.preset in ("essential", "energy"):
                    table = ESSENTIAL_INFOS if spec.preset == "essential" else ENERGY_INFOS
                    for number in table.get(device.family, ()):
                        for dp in catalog.find(number):
                            if dp.family is device.family and dp.kind == "info":
                                add(device, dp)
                else:
                    kind = "info" if spec.preset == "all-infos" else "parameter"
                    for dp in catalog.datapoints(family=device.family, kind=kind):
                        add(device, dp)
            continue
        if spec.number is not None:
            entries = [dp for dp in catalog.find(spec.number) if _readable(dp)]
            if not entries:
                raise ConfigError(
                    f"{where}: {spec.text!r}: no user info or parameter {spec.number} in the catalog"
                )
        else:
            entries = _by_name(catalog, spec.name or "", where, spec.text)
        families = {dp.family for dp in entries}
        matched = False
        for device in targets:
            for dp in entries:
                if dp.family is device.family:
                    add(device, dp)
                    matched = True
        if not matched:
            names = ", ".join(sorted(f.value for f in families))
            warnings.append(
                f"{where}: {spec.text!r} ({names}) matches no device of the site; skipped"
            )
    return list(out.values())


def _by_name(catalog, name: str, where: str, text: str) -> list:
    wanted = name.strip().lower()
    found = catalog.search(name, limit=50)
    exact = [
        dp
        for dp in found
        if _readable(dp)
        and (dp.name.strip().lower() == wanted or (dp.short_name or "").strip().lower() == wanted)
    ]
    if exact:
        return exact
    hints = ", ".join(f"{dp.number} {dp.name!r}" for dp in found[:5] if _readable(dp))
    raise ConfigError(
        f"{where}: no datapoint named {text!r}" + (f"; did you mean: {hints}" if hints else "")
    )


# --- encoding -------------------------------------------------------------------------------


def _single_request(point: Point, src: int, parameter_property: int) -> PlannedRead:
    if point.kind == "info":
        kind, object_type, prop = INFO, ObjectType.USER_INFO, Property.VALUE
    else:
        kind, object_type, prop = PARAM, ObjectType.PARAMETER, parameter_property
    size = FORMAT_SIZES.get(point.format, 4) if point.format is not None else 4
    return PlannedRead(
        Service.READ,
        int(object_type),
        point.number,
        int(prop),
        src=src,
        dst=point.address,
        kind=kind,
        response_size=_FRAME_OVERHEAD + size,
        points=(point,),
    )


def _multi_request(points: Sequence[Point], src: int) -> PlannedRead:
    ids = np.array([p.number for p in points], dtype=np.uint16)
    aggregations = np.array([multi_info_aggregation(p.address) for p in points], dtype=np.uint8)
    addresses = np.array([p.address for p in points], dtype=np.uint16)
    frame = codec.encode_multi_info_request(
        list(zip(ids.tolist(), aggregations.tolist(), strict=True)), src=src, dst=ADDRESS_GATEWAY
    )
    n = len(points)
    return PlannedRead(
        Service.READ,
        int(ObjectType.MULTI_INFO),
        MULTI_INFO_OBJECT_ID,
        int(Property.VALUE),
        src=src,
        dst=ADDRESS_GATEWAY,
        frame=frame,
        kind=MULTI,
        response_size=(
            _FRAME_OVERHEAD + MULTI_INFO_RESPONSE_HEADER_SIZE + MULTI_INFO_RESPONSE_ITEM_SIZE * n
        ),
        points=tuple(points),
        ids=ids,
        aggregations=aggregations,
        addresses=addresses,
        fallback=tuple(_single_request(p, src, Property.VALUE) for p in points),
    )


def multi_info_wire_bytes(n: int) -> int:
    """Request plus response bytes of one multi-info exchange of ``n`` items."""
    request = _FRAME_OVERHEAD + MULTI_INFO_REQUEST_ITEM_SIZE * n
    response = _FRAME_OVERHEAD + MULTI_INFO_RESPONSE_HEADER_SIZE + MULTI_INFO_RESPONSE_ITEM_SIZE * n
    return request + response


def _chunks(items: Sequence[Point], size: int) -> Iterable[Sequence[Point]]:
    """Split into the fewest frames, filled evenly (7 frames of 72 rather than 6x76 + 1x12)."""
    if not items:
        return
    count = -(-len(items) // size)
    base, extra = divmod(len(items), count)
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        yield items[start:end]
        start = end


def compile_plan(
    site: SiteConfig,
    devices: Sequence[DeviceSpec] | None = None,
    catalog=None,
    *,
    multi_info: bool = True,
) -> SitePlan:
    """Compile a site's groups for its devices (the configured ones, or those discovered).

    Raises ConfigError for datapoints the catalog does not know; datapoints that match
    no device of the site are skipped with a warning (kept in ``plan.warnings``).
    """
    if catalog is None:
        from ..catalog import load_catalog

        catalog = load_catalog()
    devices = tuple(devices if devices is not None else (site.devices or ()))
    if not devices:
        raise ConfigError(f"site {site.name!r}: no devices to poll (none configured or found)")
    plan = SitePlan(site.name, site.src, devices, [])
    for group in site.groups:
        where = f"site {site.name!r} group {group.name!r}"
        try:
            points = resolve_points(catalog, devices, group, where, plan.warnings)
        except CatalogError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        infos = sorted((p for p in points if p.kind == "info"), key=lambda p: (p.address, p.number))
        params = sorted(
            (p for p in points if p.kind == "parameter"), key=lambda p: (p.address, p.number)
        )
        try:
            requests = [
                _multi_request(chunk, site.src) for chunk in _chunks(infos, MULTI_INFO_MAX_ITEMS)
            ]
        except ValidationError as exc:  # a device multi-info cannot select
            raise ConfigError(f"{where}: {exc}") from None
        requests += [_single_request(p, site.src, site.parameter_property) for p in params]
        if not requests:
            plan.warnings.append(f"{where}: nothing to read for the devices {_names(devices)}")
            continue
        group_plan = GroupPlan(group.name, group.interval, group.offset, requests)
        if not multi_info:
            group_plan.infos_without_multi()
        plan.groups.append(group_plan)
        for p in points:
            plan.points.setdefault((p.address, p.number), p)
    if not plan.groups:
        raise ConfigError(
            f"site {site.name!r}: nothing to log for the devices {_names(devices)}: "
            + "; ".join(plan.warnings)
        )
    for warning in plan.warnings:
        log.warning("%s", warning)
    return plan


def _names(devices: Iterable[DeviceSpec]) -> str:
    return ", ".join(d.name for d in devices) or "none"
