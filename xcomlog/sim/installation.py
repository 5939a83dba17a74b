"""The virtual installation: which devices the simulator answers for, set in code or a file.

An :class:`Installation` is a small value object: counts of Xtenders (with their phases),
VarioTracks, VarioStrings, a BSP or Xcom-CAN BMS, plus a few physical sizes that drive the
moving values. It loads from TOML or JSON so ``xcomlog sim --config site.toml`` works.

Real hardware it can play: a 12, 24 or 48 V battery (``system_voltage``: battery voltages,
the battery-voltage parameters' limits and defaults, the "Voltage of the system"
parameters and the ID batt voltage infos follow it), a model per device (``models``:
served through the appendix's identification infos, see :mod:`xcomlog.models`) and the
gateway's firmware version (``gateway_version``: before 1.6.74 the gateway does not know
the multi-info service).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ValidationError
from ..models import model_codes
from ..protocol import (
    ADDRESS_BSP,
    ADDRESS_GATEWAY,
    MULTI_INFO_MIN_GATEWAY_VERSION,
    Family,
    guid_to_bytes,
    vs,
    vt,
    xt,
)

#: Families of the optional battery device at address 601.
BATTERY_DEVICES = {"bsp": Family.BSP, "bms": Family.XCOM_CAN_BMS}

#: The model of a device whose family the installation's ``models`` do not name.
DEFAULT_MODELS = {
    Family.VARIOTRACK: "VT-80",
    Family.VARIOSTRING: "VS-120",
    Family.BSP: "BSP 1200",
    Family.XCOM_CAN_BMS: "Xcom-CAN BMS",
    Family.RCC: "Xcom-232i",
}
#: The default Xtender of each system voltage.
DEFAULT_XTENDERS = {12: "XTH 3000-12", 24: "XTH 5000-24", 48: "XTH 8000-48"}
SYSTEM_VOLTAGES = (12, 24, 48)


def _inventory_name(family: Family, model: str) -> str:
    """The model as the SD-card datalog's device list writes it ("VarioString VS70")."""
    if family is Family.VARIOSTRING:
        return "VarioString " + model.upper().replace("VARIOSTRING", "").replace("-", "").strip()
    if family is Family.VARIOTRACK:
        return "VarioTrack"
    if family is Family.BSP:
        return "BSP"
    return model


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.6.50"`` -> (1, 6, 50); ValidationError for anything else."""
    parts = str(text).strip().split(".")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or not all(0 <= n <= 255 for n in numbers):
        raise ValidationError(f"a firmware version is X.Y.Z (0..255 each), got {text!r}")
    return numbers  # type: ignore[return-value]


@dataclass(frozen=True)
class Device:
    """One simulated device: its bus address, family, 1-based index and (Xtenders) phase."""

    address: int
    family: Family
    index: int
    phase: int | None = None
    model: str = ""
    software: tuple[int, int, int] = (1, 6, 30)
    fid: int = 0
    #: Identification infos the device answers with ({3124: 1.0, 3125: 8000.0, ...}).
    codes: Mapping[int, float] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """Short readable name such as ``xt1``, ``vs2``, ``bsp`` or ``gateway``."""
        from ..protocol import device_name

        return device_name(self.address)


@dataclass(frozen=True)
class Installation:
    """A virtual Studer installation; the default is what ``xcomlog sim`` and the demo use.

    ``phases`` gives the phase (1-3) of each Xtender; when omitted every Xtender is on L1.
    ``battery`` is ``"bsp"``, ``"bms"`` (Xcom-CAN BMS) or ``None``. Sizes are per device.
    ``timezone`` is the zone of the installation's clock: Studer devices keep local wall
    time, so their timestamps are local time written as if it were UTC.
    ``system_voltage`` is 12, 24 or 48 (default: the Xtender models', else 48);
    ``battery_cells`` defaults to one 2 V cell per 2 V of it. ``models`` names device
    models (``["XTH 8000-48", "XTM 4000-48", "VS-70"]``): each model goes to the next
    device of its family, the last one of a family repeating for the devices left;
    families without a model get ``DEFAULT_MODELS``. ``gateway_version`` is the
    Xcom-232i's firmware.
    """

    xtenders: int = 2
    variotracks: int = 1
    variostrings: int = 2
    battery: str | None = "bsp"
    phases: tuple[int, ...] | None = None
    site: str = "sim"
    timezone: str = "UTC"
    battery_ah: float = 400.0
    battery_cells: int | None = None
    system_voltage: int | None = None
    models: tuple[str, ...] = ()
    gateway_version: str = "1.6.74"
    pv_peak_kw: float = 3.0
    load_kw: float = 1.2
    grid: bool = True
    guid: str | None = None
    sd_card: bool = True
    sd_days: int = 3
    messages: int = 12
    replay: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def check(name: str, value: int, low: int, high: int) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValidationError(f"installation: {name} must be {low}..{high}, got {value!r}")

        check("xtenders", self.xtenders, 0, 9)
        check("variotracks", self.variotracks, 0, 15)
        check("variostrings", self.variostrings, 0, 15)
        self._resolve_system_voltage()
        check("battery_cells", self.cells, 1, 64)
        # Answered on every multi-info request: decided once.
        supported = parse_version(self.gateway_version) >= MULTI_INFO_MIN_GATEWAY_VERSION
        object.__setattr__(self, "_multi_info", supported)
        check("sd_days", self.sd_days, 0, 366)
        check("messages", self.messages, 0, 100_000)
        if self.battery is not None and self.battery not in BATTERY_DEVICES:
            raise ValidationError(
                f"installation: battery must be one of {sorted(BATTERY_DEVICES)} or none, "
                f"got {self.battery!r}"
            )
        if self.phases is not None:
            phases = tuple(self.phases)
            if len(phases) != self.xtenders:
                raise ValidationError(
                    f"installation: phases lists {len(phases)} Xtenders, xtenders is {self.xtenders}"
                )
            for p in phases:
                if p not in (1, 2, 3):
                    raise ValidationError(f"installation: a phase must be 1, 2 or 3, got {p!r}")
            object.__setattr__(self, "phases", phases)
        for name in ("battery_ah", "pv_peak_kw", "load_kw"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValidationError(f"installation: {name} must be a number >= 0, got {value!r}")
        if self.guid is not None:
            try:
                raw = bytes.fromhex(self.guid.replace("-", ""))
            except ValueError:
                raw = b""
            if len(raw) != 16:
                raise ValidationError(
                    f"installation: guid must be 32 hex digits, got {self.guid!r}"
                )
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise ValidationError(f"installation: unknown timezone {self.timezone!r}") from None
        self._model_plan()  # every model is known, fits a device and the voltage

    def _resolve_system_voltage(self) -> None:
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        object.__setattr__(self, "models", tuple(self.models))
        xt_volts = set()
        for model in self.models:
            family, codes = model_codes(model)
            if family is Family.XTENDER:
                xt_volts.add(int(codes[3127]))
        if len(xt_volts) > 1:
            raise ValidationError(
                f"installation: the Xtender models are for {sorted(xt_volts)} V batteries: "
                "one system voltage only"
            )
        volts = self.system_voltage
        if volts is None:
            volts = xt_volts.pop() if xt_volts else 48
        if volts not in SYSTEM_VOLTAGES:
            raise ValidationError(
                f"installation: system_voltage must be 12, 24 or 48, got {self.system_voltage!r}"
            )
        object.__setattr__(self, "_voltage", int(volts))

    @property
    def nominal_voltage(self) -> int:
        """The battery's system voltage: ``system_voltage``, else the Xtender models', else 48."""
        return self._voltage  # type: ignore[attr-defined,no-any-return]

    @property
    def cells(self) -> int:
        """Battery cells in series: ``battery_cells``, else one 2 V cell per 2 V."""
        return self.battery_cells if self.battery_cells is not None else self.nominal_voltage // 2

    def _model_plan(self) -> dict[Family, list[str]]:
        """The model of every device, per family, in device order."""
        counts = {
            Family.XTENDER: self.xtenders,
            Family.VARIOTRACK: self.variotracks,
            Family.VARIOSTRING: self.variostrings,
            Family.RCC: 1,
        }
        if self.battery_family is not None:
            counts[self.battery_family] = 1
        given: dict[Family, list[str]] = {}
        for model in self.models:
            family, _ = model_codes(model, self.nominal_voltage)
            given.setdefault(family, []).append(" ".join(str(model).split()))
        plan: dict[Family, list[str]] = {}
        for family, count in counts.items():
            models = given.pop(family, [])
            if models and not count:
                given[family] = models
                continue
            if len(models) > count:
                raise ValidationError(
                    f"installation: {len(models)} {family.value} models for {count} device(s)"
                )
            default = DEFAULT_XTENDERS[self.nominal_voltage] if family is Family.XTENDER else ""
            default = default or DEFAULT_MODELS[family]
            last = models[-1] if models else default
            plan[family] = models + [last] * (count - len(models))
        if given:
            family = next(iter(given))
            raise ValidationError(
                f"installation: model {given[family][0]!r} is a {family.value} device, "
                "and the installation has none"
            )
        return plan

    @property
    def supports_multi_info(self) -> bool:
        """False for gateways before firmware 1.6.74: they answer SERVICE_NOT_SUPPORTED."""
        return self._multi_info  # type: ignore[attr-defined,no-any-return]

    def device_catalog(self, catalog: Any) -> Any:
        """The catalog with the battery-voltage limits of this installation's system voltage."""
        view = getattr(catalog, "for_system_voltage", None)
        return view(self.nominal_voltage) if view is not None else catalog

    def parameter_default(self, dp: Any, default: Any) -> Any:
        """A parameter's value at start: the "Voltage of the system" parameters (BSP {6057},
        VarioTrack {10001}) say this installation's voltage, the others keep ``default``."""
        if dp.name == "Voltage of the system" and dp.options:
            for key, label in dp.options.items():
                if label == f"{self.nominal_voltage}V":
                    return key
        return default

    # --- devices -------------------------------------------------------------------

    @property
    def battery_family(self) -> Family | None:
        """BSP or XCOM_CAN_BMS when a battery device answers at 601, else None."""
        return None if self.battery is None else BATTERY_DEVICES[self.battery]

    def xt_phase(self, index: int) -> int:
        """Phase (1-3) of Xtender ``index`` (1-based)."""
        return self.phases[index - 1] if self.phases else 1

    @property
    def devices(self) -> tuple[Device, ...]:
        """Every device on the bus, gateway last, in address order per family."""
        seed = zlib.crc32(self.site.encode())
        plan = self._model_plan()
        out: list[Device] = []

        def device(address: int, family: Family, index: int, phase: int | None = None) -> Device:
            fid = (zlib.crc32(address.to_bytes(2, "little"), seed) | 0x01000000) & 0x7FFFFFFF
            model = plan[family][index - 1]
            _, codes = model_codes(model, self.nominal_voltage)
            extra: dict[str, Any] = {}
            if family is Family.RCC:
                extra["software"] = parse_version(self.gateway_version)
            name = _inventory_name(family, model)
            return Device(address, family, index, phase, name, fid=fid, codes=codes, **extra)

        for i in range(1, self.xtenders + 1):
            out.append(device(xt(i), Family.XTENDER, i, self.xt_phase(i)))
        for i in range(1, self.variotracks + 1):
            out.append(device(vt(i), Family.VARIOTRACK, i))
        for i in range(1, self.variostrings + 1):
            out.append(device(vs(i), Family.VARIOSTRING, i))
        fam = self.battery_family
        if fam is not None:
            out.append(device(ADDRESS_BSP, fam, 1))
        out.append(device(ADDRESS_GATEWAY, Family.RCC, 1))
        return tuple(out)

    def guid_bytes(self) -> bytes:
        """The 16 GUID bytes: the configured one, else derived from the site name.

        A configured ``guid`` is the text a client shows: it goes on the wire as one
        128-bit little-endian integer (section 6.1.4, ``protocol.guid_to_bytes``).
        """
        if self.guid is not None:
            return guid_to_bytes(self.guid)
        a = zlib.crc32(self.site.encode())
        words = [zlib.crc32(bytes([i]), a) for i in range(4)]
        return b"".join(w.to_bytes(4, "little") for w in words)

    # --- files ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Installation:
        """Build from a mapping (a parsed file); unknown keys are an error that names them."""
        if "installation" in data and isinstance(data["installation"], Mapping):
            data = data["installation"]
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        aliases = {"xt": "xtenders", "vt": "variotracks", "vs": "variostrings", "bsp": "battery"}
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            key = aliases.get(key, key)
            if key not in names:
                unknown.append(key)
                continue
            if key == "battery" and value in (False, "none", "", "no"):
                value = None
            elif key == "battery" and value is True:
                value = "bsp"
            if key in ("phases", "models") and value is not None:
                value = (value,) if isinstance(value, str) else tuple(value)
            kwargs[key] = value
        if unknown:
            raise ValidationError(
                f"installation: unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(names))}"
            )
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"installation: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Installation:
        """Load a ``.toml`` or ``.json`` file (keys at top level or in ``[installation]``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read installation file {path}: {exc}") from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}: invalid JSON: {exc}") from None
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef]
                except ModuleNotFoundError:
                    raise ValidationError(
                        f"{path}: reading TOML needs Python 3.11+ (or tomli); use a .json file"
                    ) from None
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValidationError(f"{path}: invalid TOML: {exc}") from None
        if not isinstance(data, Mapping):
            raise ValidationError(f"{path}: expected a table of settings")
        return cls.from_dict(data)
