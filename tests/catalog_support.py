"""Shared by the catalog and device-model tests: short family names and the generator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from xcomlog.protocol import Family

REPO = Path(__file__).resolve().parent.parent

XT, VT, VS, BSP, BMS, RCC = (
    Family.XTENDER,
    Family.VARIOTRACK,
    Family.VARIOSTRING,
    Family.BSP,
    Family.XCOM_CAN_BMS,
    Family.RCC,
)


def load_generator() -> ModuleType:
    """tools/build_catalog.py imported as the module ``build_catalog`` (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "build_catalog", REPO / "tools" / "build_catalog.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_catalog"] = module
    spec.loader.exec_module(module)
    return module
