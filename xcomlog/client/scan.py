"""Scan: which devices an installation has, with firmware versions from the catalog's infos."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

from ..engine import (
    Operation,
)
from ..exceptions import DeviceError
from ..identification import identification_points, identify
from ..models import DeviceType, describe_device
from ..protocol import (
    FAMILY_ADDRESSES,
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
            if "soft_msb" not in identification_points(self.catalog, family):
                log.warning("no version infos for %s in the catalog; skipped", family.value)
                continue
            _multicast, first, last = FAMILY_ADDRESSES[family]
            for address in range(first, last + 1):
                found = yield from identify(
                    self._session, self.catalog, address, family, patient=True
                )
                if found is None:  # DEVICE_NOT_FOUND
                    if stop_at_gap:
                        break
                    continue
                said_nothing = found.firmware is None and found.id_type is None
                if family is Family.BSP and said_nothing and found.serial is None:
                    # The battery address answers but not with the BSP's identification:
                    # an Xcom-CAN BMS (it has no version infos of its own).
                    if (yield from self._answers_bms_info(address)):
                        bms = yield from identify(
                            self._session, self.catalog, address, Family.XCOM_CAN_BMS, patient=True
                        )
                        found = bms or found._replace(family=Family.XCOM_CAN_BMS)
                name = "bms" if found.family is Family.XCOM_CAN_BMS else device_name(address)
                fid = int(found.serial) if found.serial is not None else None
                devices.append(
                    DeviceInfo(
                        address,
                        found.family,
                        name,
                        found.firmware,
                        found.id_type,
                        fid,
                        found.device_type,
                    )
                )
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
