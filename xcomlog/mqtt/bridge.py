"""The logger's one entry point to MQTT: values, messages and device changes in, topics out.

The logger calls (from its event loop, never waiting on the network):

- ``datapoints(site, labels)`` once its plan is known: what is logged (discovery);
- ``devices(site, rows)`` with what it configured or scanned (model, firmware, serial);
- ``values(site, time_ms, addresses, numbers, values)`` with each decoded batch;
- ``parameters(site, rows)``, ``message(site, record)``;
- ``device_seen(site, address)`` / ``device_lost(site, address)``, ``link_lost(site)``;

and runs ``await bridge.run(stop)`` as a task beside its sites. Values are rate-limited
per datapoint (at most every ``interval``, sooner past a dead band, never repeated while
unchanged: the retained topic holds it) with numpy, so the
cost per value stays small; the rest happens only for the values actually published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..protocol import ADDRESS_GATEWAY, Format, device_name, family_of_address
from . import discovery, topics
from .publisher import MqttPublisher
from .settings import MqttSettings
from .writes import WriteCallable, WriteGate, parse_command_topic, writable_info

log = logging.getLogger("xcomlog.mqtt")

#: A device is offline once it produced nothing for this many of its usual gaps ...
STALE_GAPS = 3.0
#: ... and at least this long (seconds).
STALE_FLOOR_S = 30.0
#: How often the background task looks for devices that went quiet (seconds).
WATCH_PERIOD_S = 1.0


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("xcomlog")
    except Exception:  # noqa: BLE001
        return "0"


def _possible_devices() -> list[str]:
    """Names of every device an installation can have (node ids of discovery topics)."""
    from ..protocol import FAMILY_ADDRESSES, PHASE_ADDRESSES

    names = {"gateway", "bms"}
    for _multicast, first, last in FAMILY_ADDRESSES.values():
        names.update(device_name(a) for a in range(first, last + 1))
    names.update(device_name(a) for a in PHASE_ADDRESSES)
    return sorted(names)


@dataclass
class _Device:
    name: str
    address: int
    family: str = ""
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    online: bool | None = None
    last_ms: int = 0
    gap_ms: float = 0.0


@dataclass
class _Site:
    """Everything MQTT keeps for one site: its connection, slots and devices."""

    name: str
    publisher: MqttPublisher
    gate: WriteGate
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))  # sorted
    order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # key -> slot
    last_t: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    last_v: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    scale: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))  # max |value|
    exact: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # any change counts
    slot_device: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    slot_topic: list[str] = field(default_factory=list)
    slot_exact: list[bool] = field(default_factory=list)
    slot_device_list: list[int] = field(default_factory=list)
    slot_labels: list[dict[int, str] | None] = field(default_factory=list)
    slot_of: dict[int, int] = field(default_factory=dict)  # key -> slot
    devices: dict[int, _Device] = field(default_factory=dict)
    device_index: list[int] = field(default_factory=list)  # slot_device value -> address
    points: dict[tuple[int, int], discovery.PointInfo] = field(default_factory=dict)
    configs: set[str] = field(default_factory=set)  # discovery topics we publish
    planned: bool = False  # datapoints() called: stale configs can be removed
    foreign_configs: set[str] = field(default_factory=set)
    stale_index: bool = False  # slots added since the key index was built
    layouts: dict[bytes, tuple[np.ndarray, list[int]]] = field(default_factory=dict)
    task: asyncio.Task | None = None


#: Frame layouts (key sequences) remembered per site; single reads make one each.
LAYOUT_CACHE = 4096


def _column(x, dtype, n: int) -> np.ndarray:
    """``x`` as an array of ``n`` items: a scalar (one time for a frame) is broadcast.
    ``np.broadcast_to`` costs microseconds a call, so arrays skip it."""
    arr = np.asarray(x, dtype=dtype)
    return arr if arr.shape == (n,) else np.broadcast_to(arr, (n,))


class MqttBridge:
    """Publishes what the logger reads; one broker connection (with last will) per site."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        catalog=None,
        write: WriteCallable | None = None,
        system_voltage: Callable[[str], int | None] | None = None,
        version: str | None = None,
    ) -> None:
        self.settings = settings
        self._catalog = catalog
        self.write = write
        #: The installation's system voltage of a site (12, 24, 48; None: not known yet).
        self.system_voltage = system_voltage
        self.version = version or _version()
        self.interval_ms = int(settings.interval * 1000)
        self.sites: dict[str, _Site] = {}
        self._stop: asyncio.Event | None = None
        self._jobs: set[asyncio.Task] = set()
        self.published_values = 0

    @property
    def catalog(self):
        if self._catalog is None:
            from ..catalog import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    # -- sites --------------------------------------------------------------------------------

    def _site(self, name: str) -> _Site:
        site = self.sites.get(name)
        if site is not None:
            return site
        s = self.settings
        status = topics.site_status_topic(s.prefix, name)
        subscriptions = [f"{s.prefix}/{name}/+/+/set"]
        if s.discovery:
            # our own retained configs come back: those of datapoints no longer logged
            # are removed (one filter per possible device: never other sites' configs)
            subscriptions += [
                f"{s.discovery_prefix}/+/{topics.node_id(name, device)}/+/config"
                for device in _possible_devices()
            ]
        publisher = MqttPublisher(
            s.broker,
            will_topics=[status],
            # unique unless configured: two loggers of one site name must not evict each other
            client_id=f"{s.client_id or 'xcomlog-' + uuid.uuid4().hex[:8]}-{name}",
            subscriptions=subscriptions,
        )
        site = _Site(
            name,
            publisher,
            WriteGate(s.writes, s.flash, self.catalog, self.write, self.system_voltage),
        )
        publisher.on_message = lambda topic, payload, site=site: self._on_message(
            site, topic, payload
        )
        self.sites[name] = site
        if s.discovery:
            self._publish_gateway(site)
        if self._stop is not None:
            site.task = asyncio.get_running_loop().create_task(publisher.run(self._stop))
        return site

    async def check(self, sites: Iterable[str] = ()) -> None:
        """Connect once before logging starts: a BrokerError names bad credentials or a
        refused TLS handshake. An unreachable broker only logs a warning."""
        probe = MqttPublisher(
            self.settings.broker, client_id=f"{self.settings.client_id or 'xcomlog'}-check"
        )
        await probe.check()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every site's connection and watch for devices that went quiet, until stop."""
        self._stop = stop
        loop = asyncio.get_running_loop()
        for site in self.sites.values():
            if site.task is None:
                site.task = loop.create_task(site.publisher.run(stop))
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), WATCH_PERIOD_S)
            except asyncio.TimeoutError:
                pass
            self._watch(int(time.time() * 1000))
        tasks = [s.task for s in self.sites.values() if s.task is not None]
        if tasks:
            # each connection says offline before it closes; a dead broker does not hold us
            done, pending = await asyncio.wait(tasks, timeout=3.0)
            for task in pending:
                task.cancel()
        for job in list(self._jobs):
            job.cancel()

    # -- what is logged: discovery ------------------------------------------------------------

    def datapoints(self, site_name: str, labels: Iterable) -> None:
        """The datapoints a site logs: ``(address, number, name, unit, family[, kind])`` rows
        (the labels the logger gives its DatasetWriter). Publishes their discovery configs
        and removes configs of datapoints no longer logged."""
        site = self._site(site_name)
        for row in labels:
            row = tuple(row.values()) if isinstance(row, Mapping) else tuple(row)
            address, number, name, unit = (
                int(row[0]),
                int(row[1]),
                str(row[2] or ""),
                str(row[3] or ""),
            )
            kind = str(row[5]) if len(row) > 5 and row[5] else "info"
            if len(row) > 4 and row[4]:
                self._device(site, address).family = str(getattr(row[4], "value", row[4]))
            options = self._options(site, number, address)
            point = discovery.PointInfo(
                address, number, name or f"value {number}", unit, kind, options
            )
            site.points[(address, number)] = point
            self._slot(site, address, number)
            self._device(site, address)
        site.planned = True
        if self.settings.discovery:
            for point in site.points.values():
                self._publish_point(site, point)
            self._publish_writables(site)
            self._prune(site)

    def devices(self, site_name: str, rows: Iterable) -> None:
        """Devices configured or scanned: mappings or objects with address (and family,
        model, firmware, serial when known). Refreshes their HA device entries."""
        site = self._site(site_name)
        changed: set[int] = set()
        for row in rows:
            get = row.get if isinstance(row, Mapping) else lambda k, r=row: getattr(r, k, None)
            address = int(get("address"))
            dev = self._device(site, address)
            before = (dev.family, dev.model, dev.firmware, dev.serial, dev.name)
            family = get("family")
            dev.family = str(getattr(family, "value", family) or dev.family)
            dev.model = str(get("model") or get("id_type") or "") or dev.model
            dev.firmware = str(get("firmware") or "") or dev.firmware
            serial = get("serial") or get("fid")
            dev.serial = str(serial) if serial else dev.serial
            if get("device"):
                dev.name = str(get("device"))
            if (dev.family, dev.model, dev.firmware, dev.serial, dev.name) != before:
                changed.add(address)
        if changed and site.planned and self.settings.discovery:
            for point in site.points.values():
                if point.address in changed:
                    self._publish_point(site, point)
            self._publish_writables(site)

    def _datapoint(self, site: _Site, number: int, address: int):
        """The catalog's datapoint, by the device's family when known (BSP and BMS
        share address 601); CatalogError when the catalog has none."""
        dev = site.devices.get(address)
        if dev is not None and dev.family:
            # limits at the installation's system voltage (HA's number min/max)
            volts = self.system_voltage(site.name) if self.system_voltage is not None else None
            return self.catalog.get(number, dev.family, system_voltage=volts)
        return self.catalog.at(number, address)

    def _options(self, site: _Site, number: int, address: int) -> tuple[tuple[int, str], ...]:
        try:
            dp = self._datapoint(site, number, address)
        except Exception:  # noqa: BLE001 - unknown to the catalog: a plain number
            return ()
        if dp.options and not dp.bit_field:
            return tuple(sorted(dp.options.items()))
        return ()

    def _device(self, site: _Site, address: int) -> _Device:
        dev = site.devices.get(address)
        if dev is None:
            family = family_of_address(address)
            dev = _Device(device_name(address), address, family.value if family else "")
            site.devices[address] = dev
        return dev

    def _device_info(self, site: _Site, dev: _Device) -> dict:
        model = dev.model
        if model is None:
            model = {
                "xt": "Xtender",
                "vt": "VarioTrack",
                "vs": "VarioString",
                "bsp": "BSP",
                "bms": "Xcom-CAN BMS",
            }.get(dev.family)
        return discovery.device_block(
            site.name, dev.name, model=model, sw_version=dev.firmware, serial=dev.serial
        )

    def _avail(self, site: _Site, device: str | None) -> dict:
        s = self.settings
        return discovery.availability(
            topics.site_status_topic(s.prefix, site.name),
            topics.device_status_topic(s.prefix, site.name, device) if device else None,
        )

    def _publish_config(
        self, site: _Site, component: str, device: str, object_id: str, config: dict
    ) -> None:
        topic = discovery.config_topic(
            self.settings.discovery_prefix, component, site.name, device, object_id
        )
        site.configs.add(topic)
        site.publisher.publish(topic, discovery.dumps(config))

    def _publish_point(self, site: _Site, point: discovery.PointInfo) -> None:
        if point.kind == "parameter" and point.number in self.settings.writes:
            return  # published as a writable entity
        self._publish_entity(site, self._device(site, point.address), point)

    def _publish_entity(
        self, site: _Site, dev: _Device, point: discovery.PointInfo, writable: dict | None = None
    ) -> None:
        """The discovery config of ``point``'s entity: a sensor, or a control with a
        command topic when ``writable`` (``writable_info``) is given."""
        state = topics.state_topic(
            self.settings.prefix, site.name, dev.name, point.number, point.name
        )
        command = {} if writable is None else {"command_topic": topics.command_topic(state)}
        component, config = discovery.entity_config(
            point,
            site=site.name,
            device=dev.name,
            state_topic=state,
            device_info=self._device_info(site, dev),
            avail=self._avail(site, dev.name),
            version=self.version,
            writable=writable,
            **command,
        )
        self._publish_config(
            site, component, dev.name, topics.point_id(point.number, point.name), config
        )

    def _publish_writables(self, site: _Site) -> None:
        for number in sorted(self.settings.writes):
            for address, dev in list(site.devices.items()):
                if address == ADDRESS_GATEWAY:
                    continue
                try:
                    dp = self._datapoint(site, number, address)
                except Exception:  # noqa: BLE001 - this family has no such parameter
                    continue
                if not dp.is_writable:
                    continue
                options = (
                    tuple(sorted(dp.options.items())) if dp.options and not dp.bit_field else ()
                )
                point = discovery.PointInfo(address, number, dp.name, dp.unit, "parameter", options)
                site.points.setdefault((address, number), point)
                self._slot(site, address, number)
                self._publish_entity(site, dev, point, writable_info(dp))

    def _publish_gateway(self, site: _Site) -> None:
        """The gateway device: the site's latest message and its status."""
        s = self.settings
        msg_topic = topics.message_topic(s.prefix, site.name)
        config = {
            "name": "Latest message",
            "unique_id": f"{topics.node_id(site.name, 'gateway')}_message",
            "object_id": f"{topics.node_id(site.name, 'gateway')}_message",
            "state_topic": msg_topic,
            "value_template": "{{ value_json.text }}",
            "json_attributes_topic": msg_topic,
            "device": discovery.device_block(site.name, "gateway", model="Xcom-232i / Xcom-LAN"),
            "origin": discovery.origin(self.version),
            **self._avail(site, None),
        }
        self._publish_config(site, "sensor", "gateway", "message", config)

    def _prune(self, site: _Site) -> None:
        """Clear retained configs of ours that name datapoints no longer logged."""
        for topic in sorted(site.foreign_configs - site.configs):
            log.info("MQTT: %s no longer logged: removing %s", site.name, topic)
            site.publisher.publish(topic, b"")
        site.foreign_configs.clear()

    # -- values ---------------------------------------------------------------------------------

    def _slot(self, site: _Site, address: int, number: int) -> int:
        key = (address << 16) | number
        slot = site.slot_of.get(key)
        if slot is not None:
            return slot
        point = site.points.get((address, number))
        if point is None:
            try:
                dp = self._datapoint(site, number, address)
                point = discovery.PointInfo(
                    address, number, dp.name, dp.unit, dp.kind, self._options(site, number, address)
                )
            except Exception:  # noqa: BLE001
                point = discovery.PointInfo(address, number, f"value {number}", "")
            site.points[(address, number)] = point
        dev = self._device(site, address)
        if address not in site.device_index:
            site.device_index.append(address)
        slot = len(site.slot_topic)
        site.slot_of[key] = slot
        site.slot_topic.append(
            topics.state_topic(self.settings.prefix, site.name, dev.name, number, point.name)
        )
        site.slot_labels.append(dict(point.options) if point.options else None)
        exact = bool(point.options)
        try:
            fmt = self._datapoint(site, number, address).format
            exact = exact or fmt in (Format.BOOL, Format.SHORT_ENUM, Format.LONG_ENUM, Format.INT32)
        except Exception:  # noqa: BLE001
            pass
        site.slot_exact.append(exact)
        site.slot_device_list.append(site.device_index.index(address))
        site.stale_index = True
        return slot

    @staticmethod
    def _index(site: _Site) -> None:
        """Rebuild the sorted key -> slot index after new slots were added."""
        keys = np.fromiter(site.slot_of.keys(), np.uint32, len(site.slot_of))
        slots = np.fromiter(site.slot_of.values(), np.int64, len(site.slot_of))
        order = np.argsort(keys)
        site.keys, site.order = keys[order], slots[order]
        grow = len(site.slot_topic) - len(site.last_t)
        if grow > 0:  # new slots: never published yet
            site.last_t = np.concatenate([site.last_t, np.full(grow, np.iinfo(np.int64).min // 2)])
            site.last_v = np.concatenate([site.last_v, np.full(grow, np.nan)])
            site.scale = np.concatenate([site.scale, np.zeros(grow)])
        site.exact = np.array(site.slot_exact, dtype=bool)
        site.slot_device = np.array(site.slot_device_list, dtype=np.int64)
        site.stale_index = False

    def _layout(self, site: _Site, k: np.ndarray, key: bytes) -> tuple[np.ndarray, list[int]]:
        """The slots of a batch's keys (address << 16 | number) and the devices they
        belong to, kept per key sequence: a site's frames carry the same items every
        cycle, so the lookup is done once per frame layout, not once per frame."""
        keys = site.keys
        pos = np.searchsorted(keys, k)
        hit = pos < len(keys)
        hit[hit] = keys[pos[hit]] == k[hit]
        if not hit.all():
            for new in np.unique(k[~hit]).tolist():
                self._slot(site, new >> 16, new & 0xFFFF)
            self._index(site)
            pos = np.searchsorted(site.keys, k)
        slots = site.order[pos]  # slot numbers never change once given
        layout = (slots, np.unique(site.slot_device[slots]).tolist())
        if len(site.layouts) >= LAYOUT_CACHE:
            site.layouts.clear()
        site.layouts[key] = layout
        return layout

    def values(self, site_name: str, time_ms, addresses, numbers, values) -> None:
        """A batch of logged values (numpy columns or scalars broadcast). Publishes those
        whose interval is over or that moved past the dead band; marks their devices seen."""
        site = self.sites.get(site_name) or self._site(site_name)
        v = np.asarray(values, dtype=np.float32).reshape(-1)
        n = len(v)
        if n == 0:
            return
        a = _column(addresses, np.uint32, n)
        k = (a << 16) | _column(numbers, np.uint32, n)
        t = _column(time_ms, np.int64, n)
        if site.stale_index:
            self._index(site)
        key = k.tobytes()
        layout = site.layouts.get(key)
        if layout is None:
            layout = self._layout(site, k, key)
        slots, devices = layout
        self._seen_devices(site, devices, t)
        finite = np.isfinite(v)
        last_v = site.last_v[slots]
        moved = np.abs(v - last_v)
        # the band is a share of the largest magnitude seen, so noise around 0 stays inside
        scale = np.maximum(site.scale[slots], np.abs(np.where(finite, v, 0.0)))
        site.scale[slots] = scale
        band = np.where(site.exact[slots], 0.0, self.settings.deadband * scale)
        # a value that did not change is not sent again: its retained topic holds it
        due = finite & (
            ((t - site.last_t[slots] >= self.interval_ms) & (moved > 0))
            | (moved > band)
            | np.isnan(last_v)
        )
        if not due.any():
            return
        idx = np.flatnonzero(due)
        s_due = slots[idx]
        site.last_t[s_due] = t[idx]
        site.last_v[s_due] = v[idx]
        publish = site.publisher.publish
        slot_topic, slot_labels = site.slot_topic, site.slot_labels
        for slot, value in zip(s_due.tolist(), v[idx], strict=True):
            labels = slot_labels[slot]
            if labels is not None:
                payload = labels.get(int(value)) or str(int(value))
            elif value.is_integer() and abs(value) < 1e15:
                payload = str(int(value))
            else:
                payload = str(value)  # numpy's shortest text that reads back as this float32
            publish(slot_topic[slot], payload)
        self.published_values += len(idx)

    def parameters(self, site_name: str, rows: Iterable[Mapping]) -> None:
        """Parameter values read by the logger: published like values (no rate limit)."""
        rows = [r for r in rows if r.get("value") is not None]
        if rows:
            self.values(
                site_name,
                np.array([r["time_ms"] for r in rows], np.int64),
                np.array([r["address"] for r in rows], np.uint16),
                np.array([r["number"] for r in rows], np.uint16),
                np.array([r["value"] for r in rows], np.float32),
            )

    # -- availability ---------------------------------------------------------------------

    def _seen_devices(self, site: _Site, devices: list[int], t: np.ndarray) -> None:
        newest = int(t.max())
        for i in devices:
            dev = site.devices[site.device_index[i]]
            if dev.last_ms and newest > dev.last_ms:
                gap = newest - dev.last_ms
                dev.gap_ms = max(gap, dev.gap_ms * 0.9)
            dev.last_ms = max(dev.last_ms, newest)
            if dev.online is not True:
                self._set_online(site, dev, True)

    def _set_online(self, site: _Site, dev: _Device, online: bool) -> None:
        dev.online = online
        site.publisher.publish(
            topics.device_status_topic(self.settings.prefix, site.name, dev.name),
            "online" if online else "offline",
        )

    def device_seen(self, site_name: str, address: int) -> None:
        """The device answered (again)."""
        site = self._site(site_name)
        dev = self._device(site, address)
        dev.last_ms = int(time.time() * 1000)
        if dev.online is not True:
            self._set_online(site, dev, True)

    def device_lost(self, site_name: str, address: int) -> None:
        """The device stopped answering (its requests time out or it is not found)."""
        site = self._site(site_name)
        if address == ADDRESS_GATEWAY:
            self.link_lost(site_name)
            return
        dev = self._device(site, address)
        if dev.online is not False:
            self._set_online(site, dev, False)

    def link_lost(self, site_name: str) -> None:
        """The link to the site is down: none of its devices answers."""
        site = self._site(site_name)
        for dev in site.devices.values():
            if dev.online is not False and dev.address != ADDRESS_GATEWAY:
                self._set_online(site, dev, False)

    def _watch(self, now_ms: int) -> None:
        for site in self.sites.values():
            for dev in site.devices.values():
                if dev.online and dev.last_ms:
                    limit = max(STALE_FLOOR_S * 1000, STALE_GAPS * dev.gap_ms)
                    if now_ms - dev.last_ms > limit:
                        self._set_online(site, dev, False)

    # -- messages -------------------------------------------------------------------------

    def message(self, site_name: str, record: Mapping) -> None:
        """A device message (alarm, warning): the latest is retained with text and severity."""
        site = self._site(site_name)
        address = record.get("address")
        body = {
            "text": record.get("text") or f"message {record.get('number')}",
            "severity": record.get("severity") or "",
            "number": record.get("number"),
            "device": device_name(int(address)) if address is not None else "",
            "time_ms": record.get("time_ms"),
        }
        site.publisher.publish(
            topics.message_topic(self.settings.prefix, site.name),
            json.dumps(body, ensure_ascii=False),
        )

    def _ours(self, site: _Site, payload: bytes) -> bool:
        """True when a discovery config was published by xcomlog for this site."""
        try:
            config = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(config, dict) or config.get("origin", {}).get("name") != "xcomlog":
            return False
        head = f"{self.settings.prefix}/{site.name}/"
        return any(
            str(config.get(key, "")).startswith(head) for key in ("state_topic", "command_topic")
        )

    # -- commands -------------------------------------------------------------------------

    def _on_message(self, site: _Site, topic: str, payload: bytes) -> None:
        if topic.startswith(self.settings.discovery_prefix + "/"):
            if payload and topic not in site.configs and self._ours(site, payload):
                if site.planned:
                    log.info("MQTT: %s no longer logged: removing %s", site.name, topic)
                    site.publisher.publish(topic, b"")
                else:
                    site.foreign_configs.add(topic)
            return
        parsed = parse_command_topic(topic, self.settings.prefix, site.name)
        if parsed is None:
            return
        device, number = parsed
        address = next((a for a, d in site.devices.items() if d.name == device), None)
        job = asyncio.get_running_loop().create_task(
            self._command(site, topic, device, address, number, payload)
        )
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _command(
        self, site: _Site, topic: str, device: str, address: int | None, number: int, payload: bytes
    ) -> None:
        family = site.devices[address].family if address in site.devices else None
        outcome = await site.gate.handle(site.name, device, address, number, payload, family)
        base = topic[: -len("/set")]
        site.publisher.publish(topics.result_topic(base), outcome.payload(), retain=False)
        if outcome.ok and address is not None:
            value = outcome.value
            self.values(site.name, int(time.time() * 1000), address, number, float(value))
