"""The logger's hook: a DatasetWriter stand-in that also feeds an MqttBridge.

The logger already hands every row it stores to its writer (labels, values, messages,
parameters, devices, events). Wrapping the writer is the whole wiring: each call goes to
the dataset first, then to MQTT, and a fault on the MQTT side is logged, never raised
into the read loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from ..protocol import ADDRESS_GATEWAY, MULTICAST_ADDRESSES, family_of_address
from .bridge import MqttBridge

log = logging.getLogger("xcomlog.mqtt")


class MqttWriterTee:
    """Forwards everything to ``writer`` and the logged rows to ``bridge``."""

    def __init__(self, writer, bridge: MqttBridge) -> None:
        self._writer = writer
        self.bridge = bridge
        self.faults = 0

    def __getattr__(self, name: str):
        return getattr(self._writer, name)

    def _safe(self, call, *args) -> None:
        try:
            call(*args)
        except Exception:  # noqa: BLE001 - MQTT must never stop the Parquet log
            self.faults += 1
            if self.faults <= 3 or self.faults % 1000 == 0:
                log.exception("MQTT: publishing failed (%d times so far)", self.faults)

    def describe(self, site: str, labels: Iterable) -> None:
        labels = list(labels)
        self._writer.describe(site, labels)
        self._safe(self.bridge.datapoints, site, labels)

    def append_values(self, site: str, time_ms, address, number, value) -> None:
        self._writer.append_values(site, time_ms, address, number, value)
        self._safe(self.bridge.values, site, time_ms, address, number, value)

    def append_parameters(self, site: str, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        self._writer.append_parameters(site, rows)
        self._safe(self.bridge.parameters, site, rows)

    def append_messages(self, site: str, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        self._writer.append_messages(site, rows)
        if rows:
            newest = max(rows, key=lambda r: (r.get("time_ms") or 0, r.get("logged_ms") or 0))
            self._safe(self.bridge.message, site, newest)

    def append_devices(self, site: str, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        self._writer.append_devices(site, rows)
        self._safe(self.bridge.devices, site, rows)

    def append_events(self, site: str, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        self._writer.append_events(site, rows)
        for row in rows:
            self._safe(self._event, site, row)

    def _event(self, site: str, row: Mapping) -> None:
        kind = row.get("kind")
        address = row.get("address")
        if kind == "link_down":
            self.bridge.link_lost(site)
            return
        # a multi-info timeout (at the gateway) says nothing of one device: the
        # bridge's watchdog notices devices whose values stop
        if (
            address is None
            or address == ADDRESS_GATEWAY
            or address in MULTICAST_ADDRESSES
            or family_of_address(address) is None
        ):
            return
        lost = kind == "timeout" or (
            kind == "device_error" and "NOT_FOUND" in str(row.get("detail", "")).upper()
        )
        if lost:
            self.bridge.device_lost(site, int(address))
        elif kind == "resumed":
            self.bridge.device_seen(site, int(address))
