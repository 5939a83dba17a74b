"""Scan: which devices an installation has, with firmware versions from the catalog's infos."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..engine import (
    Operation,
)
from ..exceptions import (
    DeviceError,
    LinkError,
    XcomError,
    XcomTimeout,
)
from ..models import IDENTIFICATION_INFOS, DeviceType, describe_device
from ..protocol import (
    FAMILY_ADDRESSES,
    ErrorCode,
    Family,
    ObjectType,
    Property,
    device_name,
)

log = logging.getLogger("xcomlog.client")

SCAN_FAMILIES = (Family.XTENDER, Family.VARIOTRACK, Family.VARIOSTRING, Family.BSP)


class DeviceInfo(NamedTuple):
    """A device found by ``scan()``."""

    address: int
    family: Family
    name: str  # xt1, vt2, bsp...
    firmware: str | None  # "1.6.30", from the catalog's version infos
    id_type: int | None  # the model code of the "ID type" info
    fid: int | None  # the unique factory id, when the device reports it
    #: What the device is, from its identification infos (``xcomlog.models``), raw codes kept.
    device_type: DeviceType | None = None

    @property
    def model(self) -> str:
        """What the device is, for people: "XTH 8000-48", "VarioString VS-70", "BSP"."""
        if self.device_type is None:
            return describe_device(self.family, {}).description
        return self.device_type.description


def _is_link_problem(exc: Exception) -> bool:
    """A timeout or a dead link: not a device that lacks an info."""
    return isinstance(exc, (XcomTimeout, LinkError))


def _version(msb: float, lsb: float) -> str:
    """Software version from the SOFT msb/lsb infos (section 4.4.3): X.Y.Z."""
    high = int(msb) & 0xFFFF
    low = int(lsb) & 0xFFFF
    return f"{high >> 8}.{low >> 8}.{low & 0xFF}"


class ScanOperations:
    """The client's scan, a generator over the engine's I/O commands."""

    def _scan(
        self, families: Iterable[Family | str] | None = None, *, stop_at_gap: bool = True
    ) -> Operation[list[DeviceInfo]]:
        """Find the devices present: family, address, firmware from the catalog's version infos.

        An address that answers DEVICE_NOT_FOUND costs one request (no retries); with
        ``stop_at_gap`` the family's search ends there, since devices are numbered 1, 2...
        """
        chosen = SCAN_FAMILIES if families is None else tuple(Family(f) for f in families)
        devices: list[DeviceInfo] = []
        for family in chosen:
            infos = self._version_infos(family)
            if infos is None:
                log.warning("no version infos for %s in the catalog; skipped", family.value)
                continue
            _multicast, first, last = FAMILY_ADDRESSES[family]
            for address in range(first, last + 1):
                values: dict[str, Any] = {}
                codes: dict[int, float] = {}  # identification infos by number
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
                    codes[dp.number] = values[key]
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
                codes.update((yield from self._identification(found_family, address, codes)))
                kind = describe_device(found_family, codes)
                devices.append(
                    DeviceInfo(address, found_family, name, firmware, id_type, fid, kind)
                )
        return devices

    def _identification(
        self, family: Family, address: int, known: dict[int, float]
    ) -> Operation[dict[int, float]]:
        """The identification infos of ``family`` (``models.IDENTIFICATION_INFOS``) not yet
        read from ``address``; an info the device refuses is left out."""
        codes: dict[int, float] = {}
        for number in IDENTIFICATION_INFOS.get(family, ()):
            if number in known:
                continue
            found = [dp for dp in self.catalog.find(number) if dp.family is family]
            if not found or found[0].format is None:
                continue
            try:
                frame = yield from self._read_property(
                    ObjectType.USER_INFO, number, Property.VALUE, address
                )
                codes[number] = self.catalog.decode(found[0], frame.data)
            except (DeviceError, XcomError) as exc:
                if isinstance(exc, DeviceError) or not _is_link_problem(exc):
                    log.debug(
                        "%s: no identification info %d (%s)", device_name(address), number, exc
                    )
                    continue
                raise
        return codes

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
