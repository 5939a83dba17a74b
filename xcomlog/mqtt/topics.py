"""Topic names a person can read: ``<prefix>/<site>/<device>/<number>_<slug>``."""

from __future__ import annotations

import re
from functools import lru_cache

_NOT_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=8192)
def slug(name: str, limit: int = 48) -> str:
    """``"State of Charge"`` -> ``state_of_charge`` (lower case, digits, single ``_``)."""
    text = _NOT_WORD.sub("_", name.lower()).strip("_")
    return text[:limit].rstrip("_") or "value"


@lru_cache(maxsize=65536)
def point_id(number: int, name: str) -> str:
    """The readable id of a datapoint: ``7002_state_of_charge``."""
    return f"{int(number)}_{slug(name)}"


def state_topic(prefix: str, site: str, device: str, number: int, name: str) -> str:
    return f"{prefix}/{site}/{device}/{point_id(number, name)}"


def command_topic(state: str) -> str:
    """Where Home Assistant (or anyone) sends a new value of a writable parameter."""
    return f"{state}/set"


def result_topic(state: str) -> str:
    """Where the outcome of a command is published (JSON: ok, value or error)."""
    return f"{state}/result"


def site_status_topic(prefix: str, site: str) -> str:
    """``online``/``offline`` of the logger for this site (the last will says offline)."""
    return f"{prefix}/{site}/status"


def device_status_topic(prefix: str, site: str, device: str) -> str:
    """``online`` while the device answers, ``offline`` when it stops."""
    return f"{prefix}/{site}/{device}/status"


def message_topic(prefix: str, site: str) -> str:
    """The latest device message (alarm, warning) of the site: JSON text and severity."""
    return f"{prefix}/{site}/message"


def node_id(site: str, device: str) -> str:
    """Home Assistant node id (``[a-zA-Z0-9_-]``) of a device of a site."""
    return f"xcomlog_{slug(site, 64)}_{slug(device, 32)}"
