"""Home Assistant MQTT discovery payloads for logged datapoints and writable parameters.

A retained JSON config at ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
tells Home Assistant about each entity. The one table below maps a catalog unit to the
unit Home Assistant expects and the device class whose documented units include it
(HA's sensor device classes: voltage V, current A, power W/kW, apparent_power VA,
energy Wh/kWh/MWh, frequency Hz, temperature °C, duration h/min/d/s, battery %). A unit
not listed there is passed through with no device class, as HA allows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .topics import node_id, point_id

#: catalog unit -> (unit HA expects, device class). One place for the allowed units.
UNITS: dict[str, tuple[str, str | None]] = {
    "V": ("V", "voltage"),
    "Vdc": ("V", "voltage"),
    "Vac": ("V", "voltage"),
    "mV": ("mV", "voltage"),
    "A": ("A", "current"),
    "Adc": ("A", "current"),
    "Aac": ("A", "current"),
    "W": ("W", "power"),
    "kW": ("kW", "power"),
    "VA": ("VA", "apparent_power"),
    "kVA": ("kVA", None),  # HA's apparent_power takes VA or mVA only
    "Wh": ("Wh", "energy"),
    "kWh": ("kWh", "energy"),
    "MWh": ("MWh", "energy"),
    "Hz": ("Hz", "frequency"),
    "°C": ("°C", "temperature"),
    "h": ("h", "duration"),
    "hours": ("h", "duration"),
    "min": ("min", "duration"),
    "minutes": ("min", "duration"),
    "Minutes": ("min", "duration"),
    "sec": ("s", "duration"),
    "Seconds": ("s", "duration"),
    "days": ("d", "duration"),
    "%": ("%", None),
}

#: Device classes Home Assistant documents for sensors and the units each accepts
#: (the subset our units use); tests check every UNITS entry against it.
HA_DEVICE_CLASS_UNITS: dict[str, frozenset[str]] = {
    "voltage": frozenset({"V", "mV", "µV", "kV", "MV"}),
    "current": frozenset({"A", "mA"}),
    "power": frozenset({"mW", "W", "kW", "MW", "GW", "TW"}),
    "apparent_power": frozenset({"mVA", "VA"}),
    "energy": frozenset({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"}),
    "frequency": frozenset({"Hz", "kHz", "MHz", "GHz"}),
    "temperature": frozenset({"°C", "°F", "K"}),
    "duration": frozenset({"d", "h", "min", "s", "ms", "µs"}),
    "battery": frozenset({"%"}),
}
#: State classes HA allows per device class (energy counters cannot be "measurement").
_TOTAL_ONLY = frozenset({"energy"})

_DAILY = re.compile(r"current day|today", re.IGNORECASE)
_PREVIOUS = re.compile(r"previous day|yesterday", re.IGNORECASE)
_COUNTER = re.compile(r"\btotal\b|counter", re.IGNORECASE)
_EXTREME = re.compile(r"^\s*(max|min)\b", re.IGNORECASE)  # "Max PV power for the current day"
_SOC = re.compile(r"state of charge", re.IGNORECASE)

ORIGIN_NAME = "xcomlog"


@dataclass(frozen=True)
class PointInfo:
    """What discovery needs to know of one logged datapoint of one device."""

    address: int
    number: int
    name: str
    unit: str
    kind: str = "info"  # info or parameter
    options: tuple[tuple[int, str], ...] = ()  # enum labels (empty for numbers)


def sensor_classes(point: PointInfo) -> dict[str, str]:
    """``unit_of_measurement``, ``device_class`` and ``state_class`` of a sensor (or
    ``device_class: enum`` and ``options`` for an enum)."""
    if point.options:
        return {"device_class": "enum"}
    out: dict[str, str] = {}
    unit, device_class = UNITS.get(point.unit, (point.unit, None))
    if device_class is None and unit == "%" and _SOC.search(point.name):
        device_class = "battery"
    if unit:
        out["unit_of_measurement"] = unit
    if device_class:
        out["device_class"] = device_class
    if _PREVIOUS.search(point.name):
        pass  # yesterday's figure: neither a measurement nor a growing total
    elif (_DAILY.search(point.name) or _COUNTER.search(point.name)) and not _EXTREME.search(
        point.name
    ):
        # daily counters restart at midnight, resettable ones when reset: HA's
        # total_increasing takes a drop as the start of a new cycle
        out["state_class"] = "total_increasing"
    elif device_class not in _TOTAL_ONLY:
        out["state_class"] = "measurement"
    return out


def device_block(
    site: str,
    device: str,
    *,
    model: str | None = None,
    sw_version: str | None = None,
    serial: str | None = None,
) -> dict:
    """The ``device`` mapping: a Studer device, linked to its site's gateway."""
    block: dict = {
        "identifiers": [node_id(site, device)],
        "name": f"{site} {device}",
        "manufacturer": "Studer-Innotec",
    }
    if model:
        block["model"] = model
    if sw_version:
        block["sw_version"] = sw_version
    if serial:
        block["serial_number"] = serial
    if device != "gateway":
        block["via_device"] = node_id(site, "gateway")
    return block


def availability(site_status: str, device_status: str | None) -> dict:
    """Both the site's (logger alive) and the device's (answering) topics must say online."""
    topics = [{"topic": site_status}]
    if device_status:
        topics.append({"topic": device_status})
    return {
        "availability": topics,
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def config_topic(
    discovery_prefix: str, component: str, site: str, device: str, object_id: str
) -> str:
    return f"{discovery_prefix}/{component}/{node_id(site, device)}/{object_id}/config"


def origin(version: str) -> dict:
    return {"name": ORIGIN_NAME, "sw_version": version}


def entity_config(
    point: PointInfo,
    *,
    site: str,
    device: str,
    state_topic: str,
    device_info: Mapping,
    avail: Mapping,
    version: str,
    command_topic: str | None = None,
    writable: Mapping | None = None,
) -> tuple[str, dict]:
    """(component, config) of one datapoint: a sensor, or a number/select/switch/button
    when ``command_topic`` is given (``writable`` holds min, max, step, signal, bool)."""
    oid = point_id(point.number, point.name)
    config: dict = {
        "name": f"{point.name} ({point.number})",
        "unique_id": f"{node_id(site, device)}_{point.number}",
        "object_id": f"{node_id(site, device)}_{oid}",
        "state_topic": state_topic,
        "device": dict(device_info),
        "origin": origin(version),
        **avail,
    }
    labels = [label for _, label in point.options]
    if command_topic is None:
        config.update(sensor_classes(point))
        if point.options:
            config["options"] = labels
        return "sensor", config
    config["command_topic"] = command_topic
    config["entity_category"] = "config"
    writable = writable or {}
    if writable.get("signal"):
        del config["state_topic"]
        config["payload_press"] = "1"
        return "button", config
    if writable.get("bool"):
        on = dict(point.options).get(1, "Yes")
        off = dict(point.options).get(0, "No")
        config.update(payload_on=on, payload_off=off, state_on=on, state_off=off)
        return "switch", config
    if point.options:
        config["options"] = labels
        return "select", config
    unit, device_class = UNITS.get(point.unit, (point.unit, None))
    if unit:
        config["unit_of_measurement"] = unit
    if device_class and device_class != "duration":
        config["device_class"] = device_class
    for key in ("min", "max", "step"):
        if writable.get(key) is not None:
            config[key] = writable[key]
    config["mode"] = "box"
    return "number", config


def dumps(config: Mapping) -> str:
    return json.dumps(config, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
